package cloudflare_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// TestListMembersIncompleteFails: a listing whose answers do not add up is
// an error wrapping ErrIncompleteListing, never a shorter member list.
func TestListMembersIncompleteFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault cftest.Fault
	}{
		{"success false on HTTP 200", cftest.Fault{Listing: cftest.ListingUnsuccessful}},
		{"result null on page 2", cftest.Fault{Listing: cftest.ListingNullResult, Page: 2}},
		{"short page before total_count", cftest.Fault{Listing: cftest.ListingShortPage, Page: 1}},
		{"last page short: the sum differs from total_count", cftest.Fault{Listing: cftest.ListingShortPage, Page: 3}},
		{"a member id twice", cftest.Fault{Listing: cftest.ListingDuplicate, Page: 2}},
		{"total_count changes in both listings", cftest.Fault{Listing: cftest.ListingTotalChanged, Page: 2, Times: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
			addMembers(srv, 120, srv.RoleID(acct, "DNS"))
			tc.fault.Route = cftest.RouteMembers
			srv.Inject(tc.fault)
			got, err := c.ListMembers(context.Background(), acct)
			if !errors.Is(err, cloudflare.ErrIncompleteListing) || got != nil {
				t.Fatalf("ListMembers = %d members, %v; want ErrIncompleteListing", len(got), err)
			}
			if strings.Count(err.Error(), ":") > 6 || !strings.Contains(err.Error(), acct) {
				t.Errorf("error is not one clear sentence naming the account: %v", err)
			}
		})
	}
}

// TestListMembersRelistsOnceWhenTotalChanges: a total that moves once
// (someone invited a member mid-listing) is answered by one more listing.
func TestListMembersRelistsOnceWhenTotalChanges(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	want := addMembers(srv, 120, srv.RoleID(acct, "DNS"))
	srv.Inject(cftest.Fault{Route: cftest.RouteMembers, Page: 2, Listing: cftest.ListingTotalChanged})
	got, err := c.ListMembers(context.Background(), acct)
	if err != nil || !slices.Equal(emailsOf(got), want) {
		t.Fatalf("ListMembers = %d members, %v", len(got), err)
	}
	if n := srv.Calls(http.MethodGet, cftest.RouteMembers); n != 2+3 {
		t.Errorf("pages requested = %d, want 2 (then the change) + 3", n)
	}
}

// TestListMembersOrderedByEmail: the listing asks for email order, so the
// fake (creation order by default) serves it sorted.
func TestListMembersOrderedByEmail(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	for i := range 60 {
		srv.AddMember(acct, cftest.Member{Email: fmt.Sprintf("user%03d@example.com", 59-i), Roles: []string{srv.RoleID(acct, "DNS")}})
	}
	got, err := c.ListMembers(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, m := range got {
		emails = append(emails, m.Email)
	}
	if len(emails) != 60 || !slices.IsSorted(emails) {
		t.Fatalf("listing not in email order: %v", emails)
	}
}

// TestCatalogListingsIncompleteFail: roles, permission groups and resource
// groups obey the same rule.
func TestCatalogListingsIncompleteFail(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		route string
		lf    cftest.ListingFault
		list  func(*cloudflare.Client) error
	}{
		{cftest.RouteRoles, cftest.ListingNullResult, func(c *cloudflare.Client) error { _, err := c.ListRoles(ctx, acct); return err }},
		{cftest.RouteRoles, cftest.ListingShortPage, func(c *cloudflare.Client) error { _, err := c.ListRoles(ctx, acct); return err }},
		{cftest.RoutePermissionGroups, cftest.ListingUnsuccessful, func(c *cloudflare.Client) error { _, err := c.ListPermissionGroups(ctx, acct); return err }},
		{cftest.RoutePermissionGroups, cftest.ListingDuplicate, func(c *cloudflare.Client) error { _, err := c.ListPermissionGroups(ctx, acct); return err }},
		{cftest.RouteResourceGroups, cftest.ListingNullResult, func(c *cloudflare.Client) error { _, err := c.ListResourceGroups(ctx, acct); return err }},
		{cftest.RouteResourceGroups, cftest.ListingUnsuccessful, func(c *cloudflare.Client) error { _, err := c.ListResourceGroups(ctx, acct); return err }},
	} {
		t.Run(fmt.Sprint(tc.route, " ", tc.lf), func(t *testing.T) {
			c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
			srv.Inject(cftest.Fault{Route: tc.route, Listing: tc.lf})
			if err := tc.list(c); !errors.Is(err, cloudflare.ErrIncompleteListing) {
				t.Fatalf("err = %v, want ErrIncompleteListing", err)
			}
			if err := tc.list(c); err != nil {
				t.Fatalf("after the fault: %v", err)
			}
		})
	}
}

// TestMembersReadInTheirAccountsShape: against the fake, a role-holder's
// derived policies never show as Policies, on GET, list and PUT answers;
// a hand-made policy still does.
func TestMembersReadInTheirAccountsShape(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	ctx := context.Background()
	admin, dns := srv.RoleID(acct, "Administrator"), srv.RoleID(acct, "DNS")
	held := srv.AddMember(acct, cftest.Member{Email: "roles@example.com", Roles: []string{admin, dns}})
	hand := srv.AddMember(acct, cftest.Member{Email: "hand@example.com", Policies: []cftest.Policy{{
		PermissionGroups: []string{srv.PermissionGroupID(acct, "Billing")},
		ResourceGroups:   []string{srv.ResourceGroupID(acct, cftest.AccountScope(acct))},
	}}})
	check := func(where string, m cloudflare.Member, roles, own, derived int) {
		t.Helper()
		if len(m.Roles) != roles || len(m.Policies) != own || len(m.DerivedPolicies) != derived {
			t.Errorf("%s: %s has %d roles, %d policies, %d derived; want %d, %d, %d",
				where, m.Email, len(m.Roles), len(m.Policies), len(m.DerivedPolicies), roles, own, derived)
		}
	}
	got, err := c.GetMember(ctx, acct, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	check("GET", got, 2, 0, 2)
	for _, d := range got.DerivedPolicies {
		if d.ResourceGroups[0] != srv.ResourceGroupID(acct, cftest.AccountScope(acct)) {
			t.Errorf("derived policy on %v", d.ResourceGroups)
		}
	}
	// A policy on the account scope for a group no role of the member is
	// named after is the member's own, even when it mirrors a role.
	got, _ = c.GetMember(ctx, acct, hand.ID)
	check("GET", got, 0, 1, 0)
	list, err := c.ListMembers(ctx, acct)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	check("list", list[0], 0, 1, 0) // hand@ sorts first
	check("list", list[1], 2, 0, 2)
	put, err := c.UpdateMember(ctx, acct, held.ID, []string{dns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("PUT answer", put, 1, 0, 1)
	// A role added by hand in the dashboard reads the same way.
	srv.GrantRole(acct, "roles@example.com", "Billing")
	got, _ = c.GetMember(ctx, acct, held.ID)
	check("GET after a hand edit", got, 2, 0, 2)
}
