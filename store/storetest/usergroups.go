package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

// UserGroupBackend is what RunUserGroups needs: the owned-group records
// and the audit trail they are written with.
type UserGroupBackend interface {
	store.UserGroupState
	store.Backend
}

// RunUserGroups is the conformance suite for store.UserGroupState, the
// ownership of Cloudflare user groups. open must return an empty state
// that is closed when t ends.
func RunUserGroups(t *testing.T, open func(t *testing.T) UserGroupBackend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s UserGroupBackend)
	}{
		{"OwnedUserGroupsRoundTrip", testOwnedUserGroupsRoundTrip},
		{"OwnedUserGroupInvalidWritesNothing", testOwnedUserGroupInvalid},
		{"CopyKeepsOwnedUserGroups", func(t *testing.T, s UserGroupBackend) { testCopyOwnedUserGroups(t, s, open(t)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func testOwnedUserGroupsRoundTrip(t *testing.T, s UserGroupBackend) {
	other := "fedcba9876543210fedcba9876543210"
	if gs, err := s.OwnedUserGroups(acct); err != nil || len(gs) != 0 {
		t.Fatalf("OwnedUserGroups on an empty store = %+v, %v", gs, err)
	}
	// An intent (no group id yet), then the confirmed record replaces it.
	intent := store.OwnedUserGroup{AccountID: acct, Key: "ops", Name: "scimflare-ops", UpdatedAt: at(0)}
	noErr(t, "PutOwnedUserGroup intent", s.PutOwnedUserGroup(intent))
	owned := intent
	owned.GroupID, owned.UpdatedAt = "g-1", at(1)
	rec := store.AuditRecord{Time: at(1), Actor: "schedule", Action: "create_group", AccountID: acct, Email: "-", Reason: "mapping ops"}
	noErr(t, "PutOwnedUserGroup", s.PutOwnedUserGroup(owned, rec))
	noErr(t, "PutOwnedUserGroup other account", s.PutOwnedUserGroup(store.OwnedUserGroup{AccountID: other, Key: "ops", GroupID: "g-9", Name: "x-ops", UpdatedAt: at(1)}))
	noErr(t, "PutOwnedUserGroup dev", s.PutOwnedUserGroup(store.OwnedUserGroup{AccountID: acct, Key: "dev", GroupID: "g-2", Name: "scimflare-dev", UpdatedAt: at(2)}))

	gs, err := s.OwnedUserGroups(acct)
	noErr(t, "OwnedUserGroups", err)
	if len(gs) != 2 || gs[0].Key != "dev" || gs[1].Key != "ops" {
		t.Fatalf("OwnedUserGroups = %+v, want dev then ops", gs)
	}
	if got := gs[1]; got.GroupID != "g-1" || got.Name != "scimflare-ops" || !got.UpdatedAt.Equal(at(1)) || got.AccountID != acct {
		t.Fatalf("ops read back as %+v, want %+v", got, owned)
	}
	if au := auditOf(t, s, time.Time{}); len(au) != 1 || au[0].Action != "create_group" {
		t.Fatalf("audit after PutOwnedUserGroup = %+v, want the create_group record", au)
	}

	noErr(t, "DeleteOwnedUserGroup", s.DeleteOwnedUserGroup(acct, "ops", store.AuditRecord{Time: at(3), Actor: "schedule", Action: "forget_group", AccountID: acct, Email: "-"}))
	noErr(t, "DeleteOwnedUserGroup of nothing", s.DeleteOwnedUserGroup(acct, "nothing"))
	gs, err = s.OwnedUserGroups(acct)
	noErr(t, "OwnedUserGroups", err)
	if len(gs) != 1 || gs[0].Key != "dev" {
		t.Fatalf("OwnedUserGroups after delete = %+v, want dev", gs)
	}
	if gs, err := s.OwnedUserGroups(other); err != nil || len(gs) != 1 || gs[0].GroupID != "g-9" {
		t.Fatalf("other account's groups = %+v, %v", gs, err)
	}
	if au := auditOf(t, s, time.Time{}); len(au) != 2 {
		t.Fatalf("audit after DeleteOwnedUserGroup has %d records, want 2", len(au))
	}
}

func testOwnedUserGroupInvalid(t *testing.T, s UserGroupBackend) {
	for name, g := range map[string]store.OwnedUserGroup{
		"no account": {Key: "ops", Name: "n"},
		"no key":     {AccountID: acct, Name: "n"},
		"no name":    {AccountID: acct, Key: "ops"},
	} {
		wantErr(t, "PutOwnedUserGroup with "+name, s.PutOwnedUserGroup(g), store.ErrInvalid)
	}
	// An invalid audit record fails the whole write.
	err := s.PutOwnedUserGroup(store.OwnedUserGroup{AccountID: acct, Key: "ops", Name: "n", GroupID: "g"}, store.AuditRecord{Time: at(0)})
	wantErr(t, "PutOwnedUserGroup with an invalid audit record", err, store.ErrInvalid)
	if gs, err := s.OwnedUserGroups(acct); err != nil || len(gs) != 0 {
		t.Fatalf("rejected writes left %+v, %v", gs, err)
	}
}

// testCopyOwnedUserGroups: store.Copy (scimflare migrate, backups) carries
// the ownership of user groups: without it a copied state would find its
// own groups foreign and never change them again.
func testCopyOwnedUserGroups(t *testing.T, src, dst UserGroupBackend) {
	Populate(t, src)
	g := store.OwnedUserGroup{AccountID: acct, Key: "ops", GroupID: "g-1", Name: "scimflare-ops", UpdatedAt: at(5)}
	noErr(t, "PutOwnedUserGroup", src.PutOwnedUserGroup(g))
	sum, err := store.Copy(context.Background(), src, dst)
	noErr(t, "Copy", err)
	if sum.UserGroups != 1 {
		t.Fatalf("Copy summary counts %d owned user groups, want 1", sum.UserGroups)
	}
	gs, err := dst.OwnedUserGroups(acct)
	noErr(t, "OwnedUserGroups of the copy", err)
	if len(gs) != 1 || gs[0].GroupID != "g-1" || gs[0].Name != "scimflare-ops" || !gs[0].UpdatedAt.Equal(at(5)) {
		t.Fatalf("copied owned user groups = %+v", gs)
	}
}
