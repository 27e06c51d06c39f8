package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

const testToken = "scimload-test-token"

// serveSCIMFlare serves the real SCIM handler over a bbolt file in
// t.TempDir(), the way the daemon mounts it.
func serveSCIMFlare(t *testing.T) (*store.BoltStore, string) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h, err := newSCIMHandler(st, testToken)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return st, srv.URL + basePath
}

func smallConfig(url string) Config {
	return Config{
		URL: url, Token: testToken,
		Users: 40, Groups: 6, Memberships: 150, Chunk: 7, Concurrency: 4,
		Churn: 60, Lookups: 45, Phases: []string{phaseImport, phaseChurn, phaseLookup},
		Prefix: "t", Seed: 7,
	}
}

func TestRunAgainstSCIMFlareLeavesExactlyTheModelledState(t *testing.T) {
	st, url := serveSCIMFlare(t)
	cfg := smallConfig(url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, m, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Errors(); n > 0 {
		t.Fatalf("%d requests failed: %+v", n, res.Phases)
	}
	wantKinds := map[string][]opKind{
		phaseImport: {kindCreateUser, kindCreateGroup, kindAddMembers},
		phaseChurn:  {kindUpdateUser, kindDeactivate, kindMoveRemove, kindMoveAdd},
		phaseLookup: {kindUserNameEq, kindGetGroupNoMem, kindBigRemove, kindBigAdd},
	}
	for phase, kinds := range wantKinds {
		p := findPhase(res, phase)
		if p == nil || p.Ops == 0 || p.OpsPerSec <= 0 || p.P99ms <= 0 {
			t.Fatalf("phase %s missing or empty: %+v", phase, p)
		}
		for _, k := range kinds {
			if s := p.kindByName(string(k)); s == nil || s.Ops == 0 {
				t.Errorf("phase %s sent no %s request", phase, k)
			}
		}
	}
	if imp := findPhase(res, phaseImport); imp.kindByName(string(kindAddMembers)).Items != cfg.Memberships {
		t.Errorf("import carried %d memberships, want %d", imp.kindByName(string(kindAddMembers)).Items, cfg.Memberships)
	}
	if churn := findPhase(res, phaseChurn); churn.Ops < cfg.Churn {
		t.Errorf("churn sent %d requests, want at least %d", churn.Ops, cfg.Churn)
	}

	// The store holds exactly the users, their activity and the memberships
	// the run modelled.
	if n, err := st.CountUsers(); err != nil || n != cfg.Users {
		t.Fatalf("store holds %d users (%v), want %d", n, err, cfg.Users)
	}
	if n, err := st.CountGroups(); err != nil || n != cfg.Groups {
		t.Fatalf("store holds %d groups (%v), want %d", n, err, cfg.Groups)
	}
	deactivated := findPhase(res, phaseChurn).kindByName(string(kindDeactivate)).Ops
	inactive := 0
	userIndex := map[string]int{}
	for i := range cfg.Users {
		u, err := st.UserByUserName(m.w.UserName(i))
		if err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
		if u.ID != m.userIDs[i] {
			t.Fatalf("user %d has id %s, the run saw %s", i, u.ID, m.userIDs[i])
		}
		if u.Active != m.active[i] {
			t.Errorf("user %d active=%v, want %v", i, u.Active, m.active[i])
		}
		if !u.Active {
			inactive++
		}
		userIndex[u.ID] = i
	}
	if inactive != deactivated {
		t.Errorf("%d users are inactive, the churn deactivated %d", inactive, deactivated)
	}
	want := m.Members()
	total := 0
	for g := range cfg.Groups {
		grp, err := st.GroupByDisplayName(m.w.GroupName(g))
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		var got []int
		err = st.GroupMembers(grp.ID, func(ms store.Membership) bool {
			got = append(got, userIndex[ms.ID])
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		slices.Sort(want[g])
		if !slices.Equal(got, want[g]) {
			t.Errorf("group %d members %v, want %v", g, got, want[g])
		}
		total += len(got)
	}
	// Moves and the lookup phase's remove/add pairs keep the count.
	if total != cfg.Memberships {
		t.Errorf("store holds %d memberships, want %d", total, cfg.Memberships)
	}
	if n, _ := st.CountGroupMembers(m.groupIDs[0]); n != m.w.BigCount() {
		t.Errorf("biggest group has %d members, want %d", n, m.w.BigCount())
	}
}

func TestRunCountsRejectedRequestsByStatus(t *testing.T) {
	_, url := serveSCIMFlare(t)
	cfg := smallConfig(url)
	cfg.Token = "wrong"
	cfg.Phases = []string{phaseImport}
	res, _, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	imp := findPhase(res, phaseImport)
	if got := imp.kindByName(string(kindCreateUser)).Errors["401"]; got != cfg.Users {
		t.Errorf("401 errors on create_user: %d, want %d", got, cfg.Users)
	}
	// Memberships are not sent for groups and users that do not exist.
	if got := imp.kindByName(string(kindAddMembers)).Errors[errDependency]; got == 0 {
		t.Errorf("member chunks were sent although no user exists: %+v", imp.kindByName(string(kindAddMembers)))
	}
	if res.Errors() != imp.Ops {
		t.Errorf("%d of %d requests counted as failed", res.Errors(), imp.Ops)
	}
}

func TestRunWithoutImportDiscoversIDs(t *testing.T) {
	_, url := serveSCIMFlare(t)
	cfg := smallConfig(url)
	cfg.Phases = []string{phaseImport}
	if res, _, err := Run(context.Background(), cfg); err != nil || res.Errors() > 0 {
		t.Fatalf("import: %v %+v", err, res)
	}
	cfg.Phases = []string{phaseLookup}
	res, _, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors() > 0 || len(res.Phases) != 2 || res.Phases[0].Name != phaseDiscovr || res.Phases[0].Ops != cfg.Users+cfg.Groups {
		t.Fatalf("discover + lookup: %+v", res.Phases)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	base := smallConfig("http://127.0.0.1:1/scim/v2")
	for name, mutate := range map[string]func(*Config){
		"no url":          func(c *Config) { c.URL = "" },
		"not http":        func(c *Config) { c.URL = "ftp://x" },
		"zero chunk":      func(c *Config) { c.Chunk = 0 },
		"zero clients":    func(c *Config) { c.Concurrency = 0 },
		"unknown phase":   func(c *Config) { c.Phases = []string{"imports"} },
		"too many edges":  func(c *Config) { c.Memberships = c.Users*c.Groups + 1 },
		"no users":        func(c *Config) { c.Users = 0 },
		"negative lookup": func(c *Config) { c.Lookups = -1 },
	} {
		cfg := base
		mutate(&cfg)
		if _, _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: Run accepted %+v", name, cfg)
		}
	}
}
