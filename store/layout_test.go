package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestAddMemberWritesConstantPages guards the layout: one member added to a
// big group must touch at most 3 pages more than one added to an empty
// group (a deeper tree), never a rewrite of a member list.
func TestAddMemberWritesConstantPages(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	small, err := s.CreateGroup(now, Group{DisplayName: "small"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	big, err := s.CreateGroup(now, Group{DisplayName: "big"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, s, 1500, big.ID)

	pagesToAdd := func(groupID, userName string) int64 {
		t.Helper()
		u, err := s.CreateUser(now, User{UserName: userName})
		if err != nil {
			t.Fatal(err)
		}
		st := s.DB().Stats()
		before := st.TxStats.GetWrite()
		_, err = s.UpdateGroup(groupID, now, 0, func(tx GroupTx) error {
			_, err := tx.AddMember(MemberRef{ID: u.ID, Type: MemberUser})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		st = s.DB().Stats()
		return st.TxStats.GetWrite() - before
	}
	smallPages, bigPages := pagesToAdd(small.ID, "a"), pagesToAdd(big.ID, "b")
	if n, _ := s.CountGroupMembers(big.ID); n != 1501 {
		t.Fatalf("big group has %d members, want 1501", n)
	}
	// A 1500-member list as one value would be ~60 KB (15+ pages); edges
	// add at most a level or two of B+tree depth.
	t.Logf("pages: small %d big %d", smallPages, bigPages)
	if bigPages > smallPages+3 {
		t.Fatalf("adding to a 1500-member group wrote %d pages, to a 0-member group %d", bigPages, smallPages)
	}
}

func TestOversizedNamesAreInvalid(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := strings.Repeat("x", 40000) // beyond bbolt's key limit
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, err := range map[string]error{
		"userName":    func() error { _, err := s.CreateUser(now, User{UserName: long}); return err }(),
		"externalId":  func() error { _, err := s.CreateUser(now, User{UserName: "u", ExternalID: long}); return err }(),
		"email":       func() error { _, err := s.CreateUser(now, User{UserName: "u", Email: long}); return err }(),
		"displayName": func() error { _, err := s.CreateGroup(now, Group{DisplayName: long}, nil); return err }(),
		"token":       s.PutToken(Token{Name: long}),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s of 40000 bytes: %v, want ErrInvalid", name, err)
		}
	}
	if n, _ := s.CountUsers(); n != 0 {
		t.Fatalf("CountUsers = %d after rejected creates", n)
	}
}

// TestIDsAreTimeOrdered guards what the write path's page economy relies
// on: ids made later sort later (48-bit milliseconds first), while staying
// 32 lowercase hex digits with 80 random bits, unique within a millisecond.
func TestIDsAreTimeOrdered(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var prev string
	for i := range 50 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		u, err := s.CreateUser(now, User{UserName: fmt.Sprintf("u%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.CreateGroup(now, Group{DisplayName: fmt.Sprintf("g%d", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{u.ID, g.ID} {
			if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
				t.Fatalf("id %q is not 32 lowercase hex digits", id)
			}
			if want := fmt.Sprintf("%012x", now.UnixMilli()); id[:12] != want {
				t.Fatalf("id %q does not start with the creation time %s", id, want)
			}
		}
		if u.ID <= prev || g.ID <= prev {
			t.Fatalf("ids made at %v (%s, %s) do not sort after %s", now, u.ID, g.ID, prev)
		}
		prev = max(u.ID, g.ID)
	}
	// Same millisecond: the random part alone must keep ids apart.
	seen := map[string]bool{}
	err = s.db.Update(func(tx *bolt.Tx) error {
		w := newWriteTx(tx)
		for range 10000 {
			id := w.newID(t0)
			if seen[id] {
				return fmt.Errorf("id %s made twice", id)
			}
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAppendBucketsStayDense guards the file size: users created over time
// and added to a group in creation order (an IdP's initial import) must
// leave the users and members pages mostly full, not half empty as bbolt's
// default split does.
func TestAppendBucketsStayDense(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := s.CreateGroup(t0, Group{DisplayName: "all"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n, chunk = 6000, 100
	for start := 0; start < n; start += chunk {
		err := s.db.Update(func(tx *bolt.Tx) error {
			w := newWriteTx(tx)
			for i := start; i < start+chunk; i++ {
				u, err := w.createUser(t0.Add(time.Duration(i)*time.Millisecond), User{UserName: fmt.Sprintf("user%d@example.com", i), Doc: []byte(`{"displayName":"Given Family"}`)})
				if err != nil {
					return err
				}
				if _, _, err := w.addMember(g.ID, MemberRef{ID: u.ID}, t0); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		// bbolt's default split leaves both near 0.5.
		for _, c := range []struct {
			name []byte
			min  float64
		}{{bucketUsers, 0.8}, {bucketMembers, 0.7}} {
			st := tx.Bucket(c.name).Stats()
			fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
			t.Logf("%s: %d leaf pages, %.2f full", c.name, st.LeafPageN, fill)
			if fill < c.min {
				t.Errorf("%s leaf pages are %.2f full after an in-order import, want >= %.2f", c.name, fill, c.min)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
