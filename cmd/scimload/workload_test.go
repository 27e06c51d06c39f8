package main

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

func TestWorkloadLaysOutEveryMembershipOnce(t *testing.T) {
	for _, tc := range []struct{ users, groups, memberships, big int }{
		{100000, 2000, 1000000, 100000},
		{300, 20, 3000, 300},
		{10, 3, 30, 10},
		{10, 1, 4, 4},
		{7, 5, 0, 0},
		{5, 4, 12, 5},
	} {
		w, err := NewWorkload("p", tc.users, tc.groups, tc.memberships)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if w.BigCount() != tc.big || w.GroupSize(0) != tc.big {
			t.Errorf("%+v: biggest group has %d members, want %d", tc, w.BigCount(), tc.big)
		}
		total := 0
		for g := range tc.groups {
			seen := map[int]bool{}
			w.MembersOf(g, func(u int) {
				if u < 0 || u >= tc.users || seen[u] {
					t.Fatalf("%+v: group %d lists user %d twice or out of range", tc, g, u)
				}
				seen[u] = true
			})
			if g > 0 && len(seen) > w.GroupSize(0) {
				t.Errorf("%+v: group %d (%d) is bigger than group 0", tc, g, len(seen))
			}
			total += len(seen)
		}
		if total != tc.memberships {
			t.Errorf("%+v: %d memberships laid out", tc, total)
		}
	}
}

func TestWorkloadRejectsImpossibleSizes(t *testing.T) {
	for _, tc := range []struct{ users, groups, memberships int }{
		{0, 1, 0}, {1, 0, 0}, {1, 1, -1}, {3, 2, 7},
	} {
		if _, err := NewWorkload("p", tc.users, tc.groups, tc.memberships); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
}

func TestChurnKeepsMembershipCountAndSparesTheBiggestGroup(t *testing.T) {
	w, err := NewWorkload("p", 50, 6, 200)
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(w)
	before := m.Members()
	units := planChurn(m, rand.New(rand.NewPCG(1, 2)), 500)
	after := m.Members()
	count := func(ms [][]int) (n int) {
		for _, g := range ms {
			n += len(g)
		}
		return n
	}
	if count(after) != count(before) {
		t.Errorf("memberships %d -> %d", count(before), count(after))
	}
	if len(after[0]) != len(before[0]) {
		t.Errorf("biggest group changed: %d -> %d", len(before[0]), len(after[0]))
	}
	moves, requests := 0, 0
	for _, u := range units {
		requests += len(u.steps)
		for _, s := range u.steps {
			if s.user != u.user {
				t.Fatalf("unit of user %d has a step for user %d: it could race another worker", u.user, s.user)
			}
			if s.kind == kindMoveRemove {
				moves++
				if s.group == w.BigGroup() {
					t.Fatal("a move leaves the biggest group")
				}
			}
		}
	}
	if moves == 0 || requests < 500 {
		t.Errorf("%d moves, %d requests", moves, requests)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(d, 0.99); got != 99*time.Millisecond {
		t.Errorf("p99 of 1..100ms = %v", got)
	}
	if got := percentile(d, 0.50); got != 50*time.Millisecond {
		t.Errorf("p50 of 1..100ms = %v", got)
	}
	if got := percentile(d[:1], 0.99); got != time.Millisecond {
		t.Errorf("p99 of one sample = %v", got)
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("p50 of none = %v", got)
	}
}

func TestReadRSSOfThisProcess(t *testing.T) {
	rss, anon, err := readRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || anon <= 0 || anon > rss {
		t.Errorf("VmRSS %d KiB, RssAnon %d KiB", rss, anon)
	}
	if _, _, err := readRSS(-1); err == nil {
		t.Error("RSS of pid -1 read without error")
	}
}
