package cloudflare_test

import (
	"context"
	"errors"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// TestMemberWithoutGrants: a user-groups member is invited holding nothing
// of its own, and a temporary policy is taken back to nothing, both as the
// schema's policies shape with an empty list, which the fake (validating
// every request) accepts.
func TestMemberWithoutGrants(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	ctx := context.Background()
	m, err := c.InviteMemberWithoutGrants(ctx, acct, "ann@example.com")
	if err != nil || m.ID == "" || m.Status != "pending" {
		t.Fatalf("InviteMemberWithoutGrants = %+v, %v", m, err)
	}
	got, _ := srv.Member(acct, "ann@example.com")
	if len(got.Roles) != 0 || len(got.Policies) != 0 {
		t.Fatalf("invited member holds %+v", got)
	}
	if _, err := c.UpdateMember(ctx, acct, m.ID, nil, []cloudflare.Policy{accountPolicy(srv, "Administrator")}); err != nil {
		t.Fatal(err)
	}
	back, err := c.ClearMemberGrants(ctx, acct, m.ID)
	if err != nil || len(back.Policies) != 0 || len(back.Roles) != 0 {
		t.Fatalf("ClearMemberGrants = %+v, %v", back, err)
	}
	if got, _ := srv.Member(acct, "ann@example.com"); len(got.Policies) != 0 {
		t.Fatalf("cleared member still holds %+v", got.Policies)
	}
	if _, err := c.InviteMemberWithoutGrants(ctx, acct, "ann@example.com"); !errors.Is(err, cloudflare.ErrAlreadyMember) {
		t.Fatalf("second invite: %v, want ErrAlreadyMember", err)
	}
	srv.AssertValid(t)
}
