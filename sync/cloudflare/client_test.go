package cloudflare_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

const acct = "0123456789abcdef0123456789abcdef"

// recorder is an Observer that keeps what it saw.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	waits    []time.Duration
}

func (r *recorder) Attempt(method, route string, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
}

func (r *recorder) RateLimited(method, route string, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, wait)
}

func (r *recorder) seen() ([]int, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.statuses), slices.Clone(r.waits)
}

func setup(t *testing.T, cfg cloudflare.Config, opts cftest.Options) (*cloudflare.Client, *cftest.Server) {
	t.Helper()
	opts.Accounts = append(opts.Accounts, acct)
	srv := cftest.New(t, opts)
	cfg.BaseURL = srv.URL()
	cfg.Token = "test-token"
	cfg.HTTPClient = srv.HTTPClient()
	if cfg.Clock == nil {
		cfg.Clock = srv.Clock()
	}
	c, err := cloudflare.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, srv
}

func addMembers(srv *cftest.Server, n int, roleID string) []string {
	var emails []string
	for i := range n {
		e := fmt.Sprintf("user%03d@example.com", i)
		srv.AddMember(acct, cftest.Member{Email: e, Roles: []string{roleID}})
		emails = append(emails, e)
	}
	return emails
}

func emailsOf(ms []cloudflare.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Email)
	}
	slices.Sort(out)
	return out
}

func TestListMembersPages(t *testing.T) {
	for _, tc := range []struct {
		members, wantCalls int
	}{
		{0, 1}, {49, 1}, {50, 1}, {100, 2}, {120, 3},
	} {
		t.Run(fmt.Sprint(tc.members), func(t *testing.T) {
			c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
			want := addMembers(srv, tc.members, srv.RoleID(acct, "Administrator"))
			got, err := c.ListMembers(context.Background(), acct)
			if err != nil {
				t.Fatalf("ListMembers: %v", err)
			}
			if !slices.Equal(emailsOf(got), want) {
				t.Fatalf("got %d members, want %d", len(got), len(want))
			}
			if n := srv.Calls(http.MethodGet, cftest.RouteMembers); n != tc.wantCalls {
				t.Errorf("list pages requested = %d, want %d", n, tc.wantCalls)
			}
			for _, m := range got {
				if len(m.Roles) != 1 || m.Roles[0] != srv.RoleID(acct, "Administrator") || m.Status != "accepted" || m.ID == "" {
					t.Fatalf("member decoded wrong: %+v", m)
				}
			}
		})
	}
}

func TestCreateMemberWithRoles(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	role := srv.RoleID(acct, "Workers Platform Admin")
	m, err := c.CreateMember(context.Background(), acct, "new@example.com", []string{role}, nil)
	if err != nil {
		t.Fatalf("CreateMember: %v", err)
	}
	// Cloudflare's POST answer carries no roles (1b); the client reports
	// what was answered and invents nothing.
	if m.Status != "pending" || m.Email != "new@example.com" || len(m.Roles)+len(m.Policies)+len(m.DerivedPolicies) != 0 || m.ID == "" {
		t.Fatalf("created member = %+v", m)
	}
	got, err := c.GetMember(context.Background(), acct, m.ID)
	if err != nil || !slices.Equal(got.Roles, []string{role}) || len(got.Policies) != 0 || len(got.DerivedPolicies) != 1 {
		t.Fatalf("read back = %+v, %v; want the role, its derived policy apart", got, err)
	}
	stored, ok := srv.Member(acct, "new@example.com")
	if !ok || stored.ID != m.ID || !slices.Equal(stored.Roles, []string{role}) {
		t.Fatalf("fake holds %+v, %v", stored, ok)
	}
	if w := srv.Writes(); len(w) != 1 || w[0].Method != http.MethodPost || w[0].Status != http.StatusOK {
		t.Fatalf("writes = %+v", w)
	}
}

func TestCreateMemberWithPolicies(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	pol := cloudflare.Policy{
		PermissionGroups: []string{srv.PermissionGroupID(acct, "Workers Platform (Read-only)")},
		ResourceGroups:   []string{srv.ResourceGroupID(acct, "prod-workers")},
	}
	m, err := c.CreateMember(context.Background(), acct, "reader@example.com", nil, []cloudflare.Policy{pol})
	if err != nil {
		t.Fatalf("CreateMember: %v", err)
	}
	if m.Status != "pending" || len(m.Roles) != 0 || len(m.Policies) != 0 {
		t.Fatalf("created member = %+v, want the POST answer without policies (1b)", m)
	}
	if m, err = c.GetMember(context.Background(), acct, m.ID); err != nil || len(m.Roles) != 0 || len(m.Policies) != 1 || len(m.DerivedPolicies) != 0 {
		t.Fatalf("read back = %+v, %v", m, err)
	}
	got := m.Policies[0]
	if got.Access != "allow" || !slices.Equal(got.PermissionGroups, pol.PermissionGroups) || !slices.Equal(got.ResourceGroups, pol.ResourceGroups) {
		t.Fatalf("policy = %+v, want %+v", got, pol)
	}
	stored, _ := srv.Member(acct, "reader@example.com")
	if len(stored.Policies) != 1 || !slices.Equal(stored.Policies[0].ResourceGroups, pol.ResourceGroups) {
		t.Fatalf("fake holds %+v", stored)
	}
}

func TestCreateNeedsExactlyOneShape(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	role := srv.RoleID(acct, "Administrator")
	pol := []cloudflare.Policy{{PermissionGroups: []string{"x"}, ResourceGroups: []string{"y"}}}
	if _, err := c.CreateMember(context.Background(), acct, "a@example.com", nil, nil); err == nil {
		t.Error("create with neither roles nor policies succeeded")
	}
	if _, err := c.CreateMember(context.Background(), acct, "a@example.com", []string{role}, pol); err == nil {
		t.Error("create with both roles and policies succeeded")
	}
	if _, err := c.UpdateMember(context.Background(), acct, "0123", nil, nil); err == nil {
		t.Error("update with neither roles nor policies succeeded")
	}
	if n := srv.TotalCalls(); n != 0 {
		t.Errorf("requests sent = %d, want 0", n)
	}
}

func TestUpdateMember(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	admin, reader := srv.RoleID(acct, "Administrator"), srv.RoleID(acct, "Workers Platform (Read-only)")
	m := srv.AddMember(acct, cftest.Member{Email: "x@example.com", Roles: []string{admin}})

	got, err := c.UpdateMember(context.Background(), acct, m.ID, []string{admin, reader}, nil)
	if err != nil {
		t.Fatalf("UpdateMember roles: %v", err)
	}
	if !slices.Equal(got.Roles, []string{admin, reader}) || got.Status != "accepted" {
		t.Fatalf("updated = %+v", got)
	}
	pol := cloudflare.Policy{
		PermissionGroups: []string{srv.PermissionGroupID(acct, "DNS")},
		ResourceGroups:   []string{srv.ResourceGroupID(acct, "com.cloudflare.api.account."+acct)},
	}
	got, err = c.UpdateMember(context.Background(), acct, m.ID, nil, []cloudflare.Policy{pol})
	if err != nil {
		t.Fatalf("UpdateMember policies: %v", err)
	}
	stored, _ := srv.Member(acct, "x@example.com")
	if len(got.Roles) != 0 || len(stored.Roles) != 0 || len(stored.Policies) != 1 || !slices.Equal(stored.Policies[0].PermissionGroups, pol.PermissionGroups) {
		t.Fatalf("after policy update: client %+v, fake %+v", got, stored)
	}
	if _, err := c.UpdateMember(context.Background(), acct, strings.Repeat("f", 32), []string{admin}, nil); !errors.Is(err, cloudflare.ErrNotFound) {
		t.Fatalf("update of a missing member: err = %v, want ErrNotFound", err)
	}
}

func TestDeleteAndNotFound(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	m := srv.AddMember(acct, cftest.Member{Email: "gone@example.com", Status: "pending", Roles: []string{srv.RoleID(acct, "DNS")}})
	got, err := c.GetMember(context.Background(), acct, m.ID)
	if err != nil || got.Email != "gone@example.com" || got.Status != "pending" {
		t.Fatalf("GetMember = %+v, %v", got, err)
	}
	if err := c.DeleteMember(context.Background(), acct, m.ID); err != nil {
		t.Fatalf("DeleteMember: %v", err)
	}
	if _, ok := srv.Member(acct, "gone@example.com"); ok {
		t.Fatal("member still in the fake after delete")
	}
	_, err = c.GetMember(context.Background(), acct, m.ID)
	if !errors.Is(err, cloudflare.ErrNotFound) {
		t.Fatalf("GetMember after delete: err = %v, want ErrNotFound", err)
	}
	if err := c.DeleteMember(context.Background(), acct, m.ID); !errors.Is(err, cloudflare.ErrNotFound) {
		t.Fatalf("second delete: err = %v, want ErrNotFound", err)
	}
	// 404 is not retried.
	if n := srv.Calls(http.MethodGet, cftest.RouteMember); n != 2 {
		t.Errorf("GET member calls = %d, want 2", n)
	}
}

func TestErrorCarriesCloudflareCodeAndMessage(t *testing.T) {
	c, _ := setup(t, cloudflare.Config{}, cftest.Options{})
	_, err := c.GetMember(context.Background(), acct, strings.Repeat("a", 32))
	var apiErr *cloudflare.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if apiErr.Status != 404 || apiErr.Code != cftest.CodeMemberNotFound || apiErr.Message != "Member not found" ||
		apiErr.Method != http.MethodGet || apiErr.Route != cloudflare.RouteMember {
		t.Fatalf("APIError = %+v", apiErr)
	}
	for _, want := range []string{"1003", "Member not found", "404", cloudflare.RouteMember} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "test-token") {
		t.Error("error message contains the API token")
	}
}

func TestAlreadyMemberIncludingPending(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	role := srv.RoleID(acct, "Administrator")
	if _, err := c.CreateMember(context.Background(), acct, "dup@example.com", []string{role}, nil); err != nil {
		t.Fatalf("first create: %v", err)
	}
	_, err := c.CreateMember(context.Background(), acct, "DUP@example.com", []string{role}, nil)
	if !errors.Is(err, cloudflare.ErrAlreadyMember) {
		t.Fatalf("second create: err = %v, want ErrAlreadyMember", err)
	}
	if !strings.Contains(err.Error(), "1001") || !strings.Contains(err.Error(), "already a member") {
		t.Errorf("error %q lacks Cloudflare's code or message", err)
	}
	if n := len(srv.Members(acct)); n != 1 {
		t.Errorf("members = %d, want 1 (no duplicate invite)", n)
	}
	if n := srv.Calls(http.MethodPost, cftest.RouteMembers); n != 2 {
		t.Errorf("POST calls = %d, want 2 (the 400 not retried)", n)
	}
}

func TestServerErrorRetriedThenSucceeds(t *testing.T) {
	rec := &recorder{}
	c, srv := setup(t, cloudflare.Config{Observer: rec, Budget: 10}, cftest.Options{})
	addMembers(srv, 3, srv.RoleID(acct, "DNS"))
	srv.Inject(cftest.Fault{Method: http.MethodGet, Route: cftest.RouteMembers, Status: 502, Times: 1})
	srv.Inject(cftest.Fault{Method: http.MethodGet, Route: cftest.RouteMembers, Status: 503, Times: 1})
	got, err := c.ListMembers(context.Background(), acct)
	if err != nil || len(got) != 3 {
		t.Fatalf("ListMembers = %d members, %v", len(got), err)
	}
	statuses, _ := rec.seen()
	if !slices.Equal(statuses, []int{502, 503, 200}) {
		t.Errorf("attempt statuses = %v, want [502 503 200]", statuses)
	}
	if left := c.BudgetLeft(); left != 7 {
		t.Errorf("BudgetLeft = %d, want 7 (every attempt counts)", left)
	}
	if slept, _ := srv.Clock().Slept(); slept <= 0 {
		t.Error("no backoff between retries")
	}
}

func TestServerErrorGivesUpAfterMaxRetries(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{MaxRetries: 2}, cftest.Options{})
	srv.Inject(cftest.Fault{Route: cftest.RouteRoles, Status: 500, Times: -1})
	_, err := c.ListRoles(context.Background(), acct)
	var apiErr *cloudflare.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 {
		t.Fatalf("err = %v, want APIError 500", err)
	}
	if n := srv.Calls(http.MethodGet, cftest.RouteRoles); n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	srv.Inject(cftest.Fault{Route: cftest.RoutePermissionGroups, Status: 403, Code: 10000, Message: "Authentication error", Times: -1})
	_, err := c.ListPermissionGroups(context.Background(), acct)
	var apiErr *cloudflare.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || apiErr.Code != 10000 {
		t.Fatalf("err = %v, want APIError 403/10000", err)
	}
	if n := srv.Calls(http.MethodGet, cftest.RoutePermissionGroups); n != 1 {
		t.Errorf("attempts = %d, want 1", n)
	}
}

func TestRateLimitedRetryAfterHonoured(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value func(now time.Time) string
		want  time.Duration
	}{
		{"seconds", func(time.Time) string { return "30" }, 30 * time.Second},
		{"http-date", func(now time.Time) string { return now.Add(45 * time.Second).UTC().Format(http.TimeFormat) }, 45 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			c, srv := setup(t, cloudflare.Config{Observer: rec}, cftest.Options{})
			start := srv.Clock().Now()
			srv.Inject(cftest.Fault{Route: cftest.RouteRoles, Status: 429, RetryAfter: tc.value(start)})
			roles, err := c.ListRoles(context.Background(), acct)
			if err != nil || len(roles) != len(cftest.DefaultRoles) {
				t.Fatalf("ListRoles = %d roles, %v", len(roles), err)
			}
			if waited := srv.Clock().Now().Sub(start); waited < tc.want || waited > tc.want+time.Second {
				t.Errorf("waited %s, want %s", waited, tc.want)
			}
			if _, waits := rec.seen(); !slices.Equal(waits, []time.Duration{tc.want}) {
				t.Errorf("observer 429 waits = %v, want [%s]", waits, tc.want)
			}
			if n := srv.Calls(http.MethodGet, cftest.RouteRoles); n != 2 {
				t.Errorf("attempts = %d, want 2", n)
			}
		})
	}
}

func TestRateLimitedBeyondCapFailsFast(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{MaxRetryAfter: time.Minute}, cftest.Options{})
	start := srv.Clock().Now()
	srv.Inject(cftest.Fault{Route: cftest.RouteRoles, Status: 429, RetryAfter: "300"})
	_, err := c.ListRoles(context.Background(), acct)
	if !errors.Is(err, cloudflare.ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	if !strings.Contains(err.Error(), "971") {
		t.Errorf("error %q lacks Cloudflare's code", err)
	}
	if srv.Clock().Now() != start || srv.Calls(http.MethodGet, cftest.RouteRoles) != 1 {
		t.Error("client waited or retried although Retry-After exceeds the cap")
	}
}

func TestFakeRateLimitAndRatelimitHeader(t *testing.T) {
	// The fake allows 3 requests per 5 minutes; its Ratelimit header says
	// r=0 after the third, so the client pauses instead of drawing a 429.
	rec := &recorder{}
	c, srv := setup(t, cloudflare.Config{Observer: rec}, cftest.Options{RateLimit: 3})
	start := srv.Clock().Now()
	for i := range 4 {
		if _, err := c.ListResourceGroups(context.Background(), acct); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	statuses, waits := rec.seen()
	if slices.Contains(statuses, 429) || len(waits) != 0 {
		t.Errorf("statuses %v, 429 waits %v: client ran into the limit", statuses, waits)
	}
	if waited := srv.Clock().Now().Sub(start); waited < 5*time.Minute {
		t.Errorf("clock advanced %s, want at least 5m", waited)
	}
}

func TestBudgetWaitsForRollingWindow(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{Budget: 5}, cftest.Options{})
	clock := srv.Clock()
	t0 := clock.Now()
	ctx := context.Background()
	for range 3 {
		if _, err := c.ListResourceGroups(ctx, acct); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	for range 2 {
		if _, err := c.ListResourceGroups(ctx, acct); err != nil {
			t.Fatal(err)
		}
	}
	if left := c.BudgetLeft(); left != 0 {
		t.Fatalf("BudgetLeft = %d, want 0", left)
	}
	if _, err := c.ListResourceGroups(ctx, acct); err != nil {
		t.Fatal(err)
	}
	// The sixth request waits until the first three leave the window.
	if got := clock.Now(); !got.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("sixth request at %s after start, want 5m", got.Sub(t0))
	}
	if left := c.BudgetLeft(); left != 2 {
		t.Errorf("BudgetLeft = %d, want 2", left)
	}
	if n := srv.TotalCalls(); n != 6 {
		t.Errorf("requests = %d, want 6", n)
	}
}

// A listing that needs more than the budget leaves its reserve free, so
// the removal that comes after it (a leaver's) goes at once instead of
// waiting for the window the listing filled.
func TestListingLeavesTheBudgetsReserve(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{Budget: 10}, cftest.Options{})
	clock := srv.Clock()
	emails := addMembers(srv, 20*50, srv.RoleID(acct, "DNS")) // 20 pages
	ctx := context.Background()
	ms, err := c.ListMembers(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(emails) {
		t.Fatalf("listed %d members, want %d", len(ms), len(emails))
	}
	if left := c.BudgetLeft(); left < 1 {
		t.Fatalf("BudgetLeft after the listing = %d, want the reserve (1 of 10) left", left)
	}
	before := clock.Now()
	if err := c.DeleteMember(ctx, acct, ms[0].ID); err != nil {
		t.Fatal(err)
	}
	if waited := clock.Now().Sub(before); waited != 0 {
		t.Fatalf("the removal after the listing waited %s for a slot, want none", waited)
	}
}

func TestBudgetWaitEndsWithContext(t *testing.T) {
	// Real clock: the wait for a slot must end when the context does.
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	c, err := cloudflare.New(cloudflare.Config{BaseURL: srv.URL(), Token: "t", Budget: 1, HTTPClient: srv.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListResourceGroups(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.ListResourceGroups(ctx, acct)
	if !errors.Is(err, cloudflare.ErrBudget) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrBudget and DeadlineExceeded", err)
	}
	if n := srv.TotalCalls(); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestFailedPageGivesNoPartialList(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{MaxRetries: 2}, cftest.Options{})
	addMembers(srv, 160, srv.RoleID(acct, "DNS"))
	srv.Inject(cftest.Fault{Method: http.MethodGet, Route: cftest.RouteMembers, Page: 3, Status: 500, Times: -1})
	got, err := c.ListMembers(context.Background(), acct)
	if err == nil || got != nil {
		t.Fatalf("ListMembers = %d members, err %v; want no list and an error", len(got), err)
	}
	if !strings.Contains(err.Error(), "page 3") {
		t.Errorf("error %q does not name the page", err)
	}
	// Pages 1 and 2 once, page 3 three times, page 4 never.
	if n := srv.Calls(http.MethodGet, cftest.RouteMembers); n != 5 {
		t.Errorf("list calls = %d, want 5", n)
	}
}

func TestDroppedConnectionRetried(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	role := srv.RoleID(acct, "Administrator")
	srv.Inject(cftest.Fault{Method: http.MethodPost, Route: cftest.RouteMembers, Drop: true})
	m, err := c.CreateMember(context.Background(), acct, "drop@example.com", []string{role}, nil)
	if err != nil {
		t.Fatalf("CreateMember: %v", err)
	}
	if n := srv.Calls(http.MethodPost, cftest.RouteMembers); n != 2 {
		t.Errorf("POST attempts = %d, want 2", n)
	}
	if got := srv.Members(acct); len(got) != 1 || got[0].ID != m.ID {
		t.Errorf("members = %+v", got)
	}
}

func TestAttemptTimeoutRetried(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{Timeout: 100 * time.Millisecond}, cftest.Options{})
	srv.Inject(cftest.Fault{Route: cftest.RouteRoles, Delay: 5 * time.Second})
	start := time.Now()
	if _, err := c.ListRoles(context.Background(), acct); err != nil {
		t.Fatalf("ListRoles: %v", err)
	}
	if n := srv.Calls(http.MethodGet, cftest.RouteRoles); n != 2 {
		t.Errorf("attempts = %d, want 2", n)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s: the slow attempt was not cut off", d)
	}
}

func TestCatalogListings(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{})
	for i := range 60 {
		srv.AddRole(acct, fmt.Sprintf("Custom role %02d", i))
	}
	ctx := context.Background()
	roles, err := c.ListRoles(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if len(roles) != len(cftest.DefaultRoles)+60 || srv.Calls(http.MethodGet, cftest.RouteRoles) != 2 {
		t.Errorf("roles = %d over %d pages", len(roles), srv.Calls(http.MethodGet, cftest.RouteRoles))
	}
	if !slices.Contains(roles, cloudflare.Named{ID: srv.RoleID(acct, "Super Administrator - All Privileges"), Name: "Super Administrator - All Privileges"}) {
		t.Error("super administrator role missing")
	}
	pgs, err := c.ListPermissionGroups(ctx, acct)
	// Every role comes with its permission group of the same name.
	if err != nil || len(pgs) != len(cftest.DefaultPermissionGroups)+60 || srv.Calls(http.MethodGet, cftest.RoutePermissionGroups) != 2 {
		t.Fatalf("permission groups = %d over %d pages, %v", len(pgs), srv.Calls(http.MethodGet, cftest.RoutePermissionGroups), err)
	}
	rgs, err := c.ListResourceGroups(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rgs, cloudflare.Named{ID: srv.ResourceGroupID(acct, "prod-workers"), Name: "prod-workers"}) {
		t.Errorf("resource groups = %+v", rgs)
	}
	if pgs[0].ID == roles[1].ID {
		t.Error("permission group and role ids collide")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []cloudflare.Config{
		{Token: ""},
		{Token: "t", BaseURL: "api.cloudflare.com/client/v4"},
		{Token: "t", BaseURL: "ftp://x"},
	} {
		if _, err := cloudflare.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
