package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAddMemberWritesConstantPages guards the layout: one member added to a
// big group must touch as many pages as one added to a small group, never
// a rewrite of a member list.
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
