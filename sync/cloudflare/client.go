package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/packages/pagination"
	"github.com/cloudflare/cloudflare-go/v7/shared"
	"github.com/cloudflare/cloudflare-go/v7/user"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultBaseURL       = "https://api.cloudflare.com/client/v4"
	DefaultBudget        = 600
	DefaultTimeout       = 30 * time.Second
	DefaultMaxRetries    = 4
	DefaultMaxBackoff    = 30 * time.Second
	DefaultMaxRetryAfter = 5 * time.Minute
)

// perPage is the largest page Cloudflare serves for members, roles,
// permission groups, user groups and user-group members (per_page is 5 to
// 50 on each; BEHAVIOURS.md 1c, 2f): fewer pages, fewer requests.
const perPage = 50

// maxPages stops a listing that never ends (a misbehaving API or proxy):
// 100k members at 50 a page.
const maxPages = 2000

// Route templates, as used in errors and by the Observer.
const (
	RouteMembers          = "/accounts/{account_id}/members"
	RouteMember           = "/accounts/{account_id}/members/{member_id}"
	RouteRoles            = "/accounts/{account_id}/roles"
	RoutePermissionGroups = "/accounts/{account_id}/iam/permission_groups"
	RouteResourceGroups   = "/accounts/{account_id}/iam/resource_groups"
)

// Member is one account member as scimflare sees it, in its account's
// shape: Cloudflare reads a member granted roles back with one policy per
// role as well (allow, the role's permission group, on the account-scope
// resource group). Those policies are what the roles grant, not a second
// grant: they are kept apart in DerivedPolicies, and Policies holds only
// policies no role explains.
type Member struct {
	ID       string
	Email    string
	Status   string   // "accepted" or "pending"; a pending invite is a member
	Roles    []string // role ids
	Policies []Policy
	// DerivedPolicies are the policies Cloudflare derives from Roles, for
	// information only: never grants, never drift, never written back.
	DerivedPolicies []Policy
	// RoleNames names the member's roles (id -> name) as the answer did:
	// how a legacy role is named, and converted, on an account whose
	// roles listing scimflare no longer reads.
	RoleNames map[string]string
}

// Policy is one access policy of a member (the permission-group shape
// Cloudflare offers instead of roles).
type Policy struct {
	Access           string   // "allow" ("deny" exists in the API; scimflare never writes it)
	PermissionGroups []string // permission group ids
	ResourceGroups   []string // resource group ids
}

// Named is a role, permission group or resource group: its id and name.
type Named struct {
	ID, Name string
}

// Config configures a Client. Zero values take the Default* constants.
type Config struct {
	BaseURL string
	Token   string
	// Budget is the number of requests allowed per rolling 5 minutes
	// (cloudflare.request_budget); <= 0 means DefaultBudget.
	Budget     int
	Clock      Clock // nil means real time
	HTTPClient *http.Client
	Timeout    time.Duration // per attempt
	// MaxRetries is the number of retries after the first attempt; 0 means
	// DefaultMaxRetries, negative means never retry.
	MaxRetries int
	MaxBackoff time.Duration
	// MaxRetryAfter caps how long the client waits when Cloudflare asks it
	// to (Retry-After, Ratelimit). A 429 asking for longer fails at once with
	// ErrRateLimited rather than retrying early into another 429.
	MaxRetryAfter time.Duration
	Observer      Observer
}

// Client talks to Cloudflare's account member and IAM APIs. It is safe for
// concurrent use; all callers share one budget.
type Client struct {
	members *accounts.MemberService
	//lint:ignore SA1019 account roles are still how members are granted access; SPEC resolves role names through /accounts/{id}/roles.
	roles         *accounts.RoleService
	permGroups    *iam.PermissionGroupService
	resGroups     *iam.ResourceGroupService
	userGroups    *iam.UserGroupService
	userTokens    *user.TokenService
	accountTokens *accounts.TokenService
	// token is read by every attempt, so a rotated secret (SetToken) is
	// used from the next request on, retries of a running call included.
	token         atomic.Pointer[string]
	limiter       *limiter
	clock         Clock
	timeout       time.Duration
	maxRetries    int
	maxBackoff    time.Duration
	maxRetryAfter time.Duration
	observer      Observer
}

// New builds a Client. It makes no request.
func New(cfg Config) (*Client, error) {
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("cloudflare base URL %q: must be an absolute http(s) URL", base)
	}
	if cfg.Token == "" {
		return nil, errors.New("cloudflare API token is empty")
	}
	c := &Client{
		clock:         cfg.Clock,
		timeout:       cfg.Timeout,
		maxRetries:    cfg.MaxRetries,
		maxBackoff:    cfg.MaxBackoff,
		maxRetryAfter: cfg.MaxRetryAfter,
		observer:      cfg.Observer,
	}
	c.token.Store(&cfg.Token)
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxBackoff
	}
	if c.maxRetryAfter <= 0 {
		c.maxRetryAfter = DefaultMaxRetryAfter
	}
	budget := cfg.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	c.limiter = newLimiter(budget, c.clock)
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	opts := []option.RequestOption{
		option.WithBaseURL(base),
		option.WithHTTPClient(hc),
		// Our middleware retries; cloudflare-go's own retries would make
		// attempts the budget never sees.
		option.WithMaxRetries(0),
		option.WithMiddleware(c.middleware),
	}
	c.members = accounts.NewMemberService(opts...)
	c.roles = accounts.NewRoleService(opts...)
	c.permGroups = iam.NewPermissionGroupService(opts...)
	c.resGroups = iam.NewResourceGroupService(opts...)
	c.userGroups = iam.NewUserGroupService(opts...)
	c.userTokens = user.NewTokenService(opts...)
	c.accountTokens = accounts.NewTokenService(opts...)
	return c, nil
}

// BudgetLeft is the number of requests the client may still make in the
// current rolling window.
func (c *Client) BudgetLeft() int { return c.limiter.left() }

// ListMembers lists every member of the account, pending invites included,
// 50 a page, ordered by email so that a member cannot slip between pages.
// The listing is complete or it fails: a failed page, or an answer that
// does not add up (see ErrIncompleteListing), fails the whole listing, as a
// partial list would look like members to remove.
func (c *Client) ListMembers(ctx context.Context, accountID string) ([]Member, error) {
	var out []Member
	err := c.ListMembersPages(ctx, accountID, func(total int) { out = make([]Member, 0, total) }, func(ms []Member) { out = append(out, ms...) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListMembersPages is ListMembers handing over each page as it comes, so
// that a caller that keeps less than a Member per member (a full run
// keeps about a seventh) never holds the whole listing. start is called
// with the listing's total_count before the first page, and again when the
// listing starts over from page 1 (its total changed under it): the caller
// drops what it took so far. A listing that fails may have handed over
// pages; the error says it is not complete.
func (c *Client) ListMembersPages(ctx context.Context, accountID string, start func(total int), page func([]Member)) error {
	if accountID == "" {
		return errors.New("list members: account id is empty")
	}
	// Each page is turned into Members as it comes: the SDK's answer keeps
	// every field's raw JSON beside its value, several times the size of
	// what scimflare reads, and a listing of a million members held all of
	// it until the last page.
	return listEach(ctx, fmt.Sprintf("list members of account %s", accountID),
		func(ctx context.Context, page int) ([]Member, string, error) {
			p := accounts.MemberListParams{}
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = perPage, true
			p.Order.Value, p.Order.Present = accounts.MemberListParamsOrderUserEmail, true
			p.Direction.Value, p.Direction.Present = accounts.MemberListParamsDirectionAsc, true
			var res *pagination.V4PagePaginationArray[shared.Member]
			err := doBulk(ctx, RouteMembers, func(ctx context.Context) (err error) {
				res, err = c.members.List(ctx, p)
				return err
			})
			if err != nil {
				return nil, "", err
			}
			ms := make([]Member, len(res.Result))
			for i, m := range res.Result {
				ms[i] = memberFrom(m, accountID)
			}
			return ms, res.JSON.RawJSON(), nil
		},
		func(m Member) string { return m.ID }, start, page)
}

// listAll fetches every page of a V4 page-paginated listing and proves it
// complete (see listEach).
func listAll[T any](ctx context.Context, what string, fetch func(context.Context, int) ([]T, string, error), idOf func(T) string) ([]T, error) {
	var out []T
	err := listEach(ctx, what, fetch, idOf, func(total int) { out = make([]T, 0, total) }, func(items []T) { out = append(out, items...) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listEach fetches every page of a V4 page-paginated listing, hands each
// to page, and proves the listing complete: each answer says success,
// carries a result array and a result_info with total_count; the pages add
// up to total_count exactly, no page before the last is short, and no id
// comes twice. start is called with total_count before the first page is
// handed over; when total_count changes during the listing (the listed set
// changed under it), it lists once more from page 1, calling start again;
// a second change fails.
func listEach[T any](ctx context.Context, what string, fetch func(context.Context, int) ([]T, string, error), idOf func(T) string, start func(total int), page func([]T)) error {
	for attempt := 1; ; attempt++ {
		changed, err := listOnce(ctx, what, fetch, idOf, start, page)
		if err != nil || !changed {
			return err
		}
		if attempt == 2 {
			return fmt.Errorf("%s: %w: total_count changed during two listings in a row", what, ErrIncompleteListing)
		}
	}
}

func listOnce[T any](ctx context.Context, what string, fetch func(context.Context, int) ([]T, string, error), idOf func(T) string, start func(int), emit func([]T)) (changed bool, err error) {
	total, listed := -1, 0
	seen := map[string]bool{}
	for page := 1; ; page++ {
		items, raw, err := fetch(ctx, page)
		if err != nil {
			return false, fmt.Errorf("%s, page %d: %w", what, page, err)
		}
		n, err := pageTotal(raw)
		if err != nil {
			return false, fmt.Errorf("%s, page %d: %w: %s", what, page, ErrIncompleteListing, err)
		}
		if total >= 0 && n != total {
			return true, nil
		}
		total = n
		for _, it := range items {
			id := idOf(it)
			if seen[id] {
				return false, fmt.Errorf("%s, page %d: %w: id %s was listed twice", what, page, ErrIncompleteListing, id)
			}
			seen[id] = true
		}
		listed += len(items)
		if listed > total {
			return false, fmt.Errorf("%s, page %d: %w: %d listed, more than total_count %d", what, page, ErrIncompleteListing, listed, total)
		}
		if page == 1 {
			start(min(total, maxPages*perPage))
		}
		emit(items)
		switch {
		case listed == total:
			return false, nil
		case len(items) < perPage:
			return false, fmt.Errorf("%s, page %d: %w: the page held %d of %d with only %d of total_count %d listed", what, page, ErrIncompleteListing, len(items), perPage, listed, total)
		case page >= maxPages:
			return false, fmt.Errorf("%s: listing exceeds %d pages; refusing to continue", what, maxPages)
		}
	}
}

// pageTotal checks one page's envelope and returns its total_count. It
// relies on no total_pages: Cloudflare does not send it.
func pageTotal(raw string) (int, error) {
	var env struct {
		Success    *bool           `json:"success"`
		Result     json.RawMessage `json:"result"`
		ResultInfo *struct {
			TotalCount *float64 `json:"total_count"`
		} `json:"result_info"`
	}
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		return 0, fmt.Errorf("the answer is not a JSON envelope: %v", err)
	}
	switch r := strings.TrimSpace(string(env.Result)); {
	case env.Success == nil || !*env.Success:
		return 0, errors.New(`the answer says "success": false`)
	case r == "" || r == "null":
		return 0, errors.New(`the answer has no result ("result": null)`)
	case !strings.HasPrefix(r, "["):
		return 0, errors.New("the answer's result is not a list")
	case env.ResultInfo == nil || env.ResultInfo.TotalCount == nil:
		return 0, errors.New("the answer has no result_info.total_count to check the listing against")
	case *env.ResultInfo.TotalCount < 0 || *env.ResultInfo.TotalCount != float64(int(*env.ResultInfo.TotalCount)):
		return 0, fmt.Errorf("result_info.total_count %v is not a count", *env.ResultInfo.TotalCount)
	}
	return int(*env.ResultInfo.TotalCount), nil
}

// GetMember fetches one member; ErrNotFound when it does not exist.
func (c *Client) GetMember(ctx context.Context, accountID, memberID string) (Member, error) {
	p := accounts.MemberGetParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	var m *shared.Member
	err := do(ctx, RouteMember, func(ctx context.Context) (err error) {
		m, err = c.members.Get(ctx, memberID, p)
		return err
	})
	if err != nil {
		return Member{}, fmt.Errorf("get member %s of account %s: %w", memberID, accountID, err)
	}
	return memberFrom(*m, accountID), nil
}

// CreateMember invites email with either roles or policies (exactly one must
// be non-empty: Cloudflare takes one shape per member). New members come
// back "pending" until they accept. ErrAlreadyMember when the email already
// is a member or has a pending invite.
func (c *Client) CreateMember(ctx context.Context, accountID, email string, roles []string, policies []Policy) (Member, error) {
	if err := oneShape(roles, policies); err != nil {
		return Member{}, fmt.Errorf("create member %s in account %s: %w", email, accountID, err)
	}
	p := accounts.MemberNewParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	if len(roles) > 0 {
		b := accounts.MemberNewParamsBodyIAMCreateMemberWithRoles{}
		b.Email.Value, b.Email.Present = email, true
		b.Roles.Value, b.Roles.Present = roles, true
		p.Body = b
	} else {
		b := accounts.MemberNewParamsBodyIAMCreateMemberWithPolicies{}
		b.Email.Value, b.Email.Present = email, true
		ps := make([]accounts.MemberNewParamsBodyIAMCreateMemberWithPoliciesPolicy, 0, len(policies))
		for _, pol := range policies {
			x := accounts.MemberNewParamsBodyIAMCreateMemberWithPoliciesPolicy{}
			x.Access.Value, x.Access.Present = accounts.MemberNewParamsBodyIAMCreateMemberWithPoliciesPoliciesAccess(access(pol)), true
			pgs := make([]accounts.MemberNewParamsBodyIAMCreateMemberWithPoliciesPoliciesPermissionGroup, len(pol.PermissionGroups))
			for i, id := range pol.PermissionGroups {
				pgs[i].ID.Value, pgs[i].ID.Present = id, true
			}
			rgs := make([]accounts.MemberNewParamsBodyIAMCreateMemberWithPoliciesPoliciesResourceGroup, len(pol.ResourceGroups))
			for i, id := range pol.ResourceGroups {
				rgs[i].ID.Value, rgs[i].ID.Present = id, true
			}
			x.PermissionGroups.Value, x.PermissionGroups.Present = pgs, true
			x.ResourceGroups.Value, x.ResourceGroups.Present = rgs, true
			ps = append(ps, x)
		}
		b.Policies.Value, b.Policies.Present = ps, true
		p.Body = b
	}
	var m *shared.Member
	err := do(ctx, RouteMembers, func(ctx context.Context) (err error) {
		m, err = c.members.New(ctx, p)
		return err
	})
	if err != nil {
		return Member{}, fmt.Errorf("create member %s in account %s: %w", email, accountID, err)
	}
	return memberFrom(*m, accountID), nil
}

// UpdateMember replaces the member's roles or policies (exactly one must be
// non-empty). ErrNotFound when the member is gone.
func (c *Client) UpdateMember(ctx context.Context, accountID, memberID string, roles []string, policies []Policy) (Member, error) {
	if err := oneShape(roles, policies); err != nil {
		return Member{}, fmt.Errorf("update member %s of account %s: %w", memberID, accountID, err)
	}
	p := accounts.MemberUpdateParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	if len(roles) > 0 {
		rs := make([]shared.RoleParam, len(roles))
		for i, id := range roles {
			rs[i].ID.Value, rs[i].ID.Present = id, true
		}
		b := accounts.MemberUpdateParamsBodyIAMUpdateMemberWithRoles{}
		b.Roles.Value, b.Roles.Present = rs, true
		p.Body = b
	} else {
		ps := make([]accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPoliciesPolicy, 0, len(policies))
		for _, pol := range policies {
			x := accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPoliciesPolicy{}
			x.Access.Value, x.Access.Present = accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPoliciesPoliciesAccess(access(pol)), true
			pgs := make([]accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPoliciesPoliciesPermissionGroup, len(pol.PermissionGroups))
			for i, id := range pol.PermissionGroups {
				pgs[i].ID.Value, pgs[i].ID.Present = id, true
			}
			rgs := make([]accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPoliciesPoliciesResourceGroup, len(pol.ResourceGroups))
			for i, id := range pol.ResourceGroups {
				rgs[i].ID.Value, rgs[i].ID.Present = id, true
			}
			x.PermissionGroups.Value, x.PermissionGroups.Present = pgs, true
			x.ResourceGroups.Value, x.ResourceGroups.Present = rgs, true
			ps = append(ps, x)
		}
		b := accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPolicies{}
		b.Policies.Value, b.Policies.Present = ps, true
		p.Body = b
	}
	var m *shared.Member
	err := do(ctx, RouteMember, func(ctx context.Context) (err error) {
		m, err = c.members.Update(ctx, memberID, p)
		return err
	})
	if err != nil {
		return Member{}, fmt.Errorf("update member %s of account %s: %w", memberID, accountID, err)
	}
	return memberFrom(*m, accountID), nil
}

// DeleteMember removes the member (or withdraws the pending invite).
// ErrNotFound when it is already gone.
func (c *Client) DeleteMember(ctx context.Context, accountID, memberID string) error {
	p := accounts.MemberDeleteParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	err := do(ctx, RouteMember, func(ctx context.Context) error {
		_, err := c.members.Delete(ctx, memberID, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete member %s of account %s: %w", memberID, accountID, err)
	}
	return nil
}

// ListRoles lists the account's roles (id and name), every page; the
// listing is complete or it fails (ErrIncompleteListing).
func (c *Client) ListRoles(ctx context.Context, accountID string) ([]Named, error) {
	out, err := listAll(ctx, fmt.Sprintf("list roles of account %s", accountID),
		func(ctx context.Context, page int) ([]shared.Role, string, error) {
			p := accounts.RoleListParams{}
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = perPage, true
			var res *pagination.V4PagePaginationArray[shared.Role]
			err := do(ctx, RouteRoles, func(ctx context.Context) (err error) {
				//lint:ignore SA1019 see the roles field: legacy roles remain a live API.
				res, err = c.roles.List(ctx, p)
				return err
			})
			if err != nil {
				return nil, "", err
			}
			return res.Result, res.JSON.RawJSON(), nil
		},
		func(r shared.Role) string { return r.ID })
	if err != nil {
		return nil, err
	}
	named := make([]Named, 0, len(out))
	for _, r := range out {
		named = append(named, Named{ID: r.ID, Name: r.Name})
	}
	return named, nil
}

// ListPermissionGroups lists the account's IAM permission groups, every
// page; the listing is complete or it fails (ErrIncompleteListing).
func (c *Client) ListPermissionGroups(ctx context.Context, accountID string) ([]Named, error) {
	out, err := listAll(ctx, fmt.Sprintf("list permission groups of account %s", accountID),
		func(ctx context.Context, page int) ([]iam.PermissionGroupListResponse, string, error) {
			p := iam.PermissionGroupListParams{}
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = perPage, true
			var res *pagination.V4PagePaginationArray[iam.PermissionGroupListResponse]
			err := do(ctx, RoutePermissionGroups, func(ctx context.Context) (err error) {
				res, err = c.permGroups.List(ctx, p)
				return err
			})
			if err != nil {
				return nil, "", err
			}
			return res.Result, res.JSON.RawJSON(), nil
		},
		func(g iam.PermissionGroupListResponse) string { return g.ID })
	if err != nil {
		return nil, err
	}
	named := make([]Named, 0, len(out))
	for _, g := range out {
		named = append(named, Named{ID: g.ID, Name: g.Name})
	}
	return named, nil
}

// ListResourceGroups lists the account's IAM resource groups. Cloudflare
// serves them as one page (cloudflare-go models it as SinglePage).
func (c *Client) ListResourceGroups(ctx context.Context, accountID string) ([]Named, error) {
	p := iam.ResourceGroupListParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	var res *pagination.SinglePage[iam.ResourceGroupListResponse]
	err := do(ctx, RouteResourceGroups, func(ctx context.Context) (err error) {
		res, err = c.resGroups.List(ctx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list resource groups of account %s: %w", accountID, err)
	}
	raw := res.JSON.RawJSON()
	var env struct {
		Success *bool           `json:"success"`
		Result  json.RawMessage `json:"result"`
	}
	_ = json.Unmarshal([]byte(raw), &env)
	if r := strings.TrimSpace(string(env.Result)); env.Success == nil || !*env.Success || !strings.HasPrefix(r, "[") {
		return nil, fmt.Errorf("list resource groups of account %s: %w: the answer has no successful result list", accountID, ErrIncompleteListing)
	}
	out := make([]Named, 0, len(res.Result))
	for _, g := range res.Result {
		out = append(out, Named{ID: g.ID, Name: g.Name})
	}
	return out, nil
}

func oneShape(roles []string, policies []Policy) error {
	if (len(roles) > 0) == (len(policies) > 0) {
		return errors.New("exactly one of roles or policies must be given")
	}
	return nil
}

func access(p Policy) string {
	if p.Access == "" {
		return "allow"
	}
	return p.Access
}

// memberFrom reads a member of accountID. A policy Cloudflare derives from
// one of the member's roles goes to DerivedPolicies; every other policy is
// the member's own (Policies).
func memberFrom(m shared.Member, accountID string) Member {
	out := Member{ID: m.ID, Email: m.Email, Status: string(m.Status)}
	if out.Email == "" {
		out.Email = m.User.Email
	}
	out.Email = strings.TrimSpace(out.Email)
	// Copies: the SDK's strings may share the memory of the whole page's
	// answer, which a member kept through a run would keep with it.
	out.ID, out.Email, out.Status = strings.Clone(out.ID), strings.Clone(out.Email), status(out.Status)
	roleNames := map[string]bool{}
	for _, r := range m.Roles {
		out.Roles = append(out.Roles, r.ID)
		if n := strings.TrimSpace(r.Name); n != "" {
			roleNames[strings.ToLower(n)] = true
			if out.RoleNames == nil {
				out.RoleNames = map[string]string{}
			}
			out.RoleNames[r.ID] = n
		}
	}
	for _, p := range m.Policies {
		pol := Policy{Access: string(p.Access)}
		for _, g := range p.PermissionGroups {
			pol.PermissionGroups = append(pol.PermissionGroups, g.ID)
		}
		for _, g := range p.ResourceGroups {
			pol.ResourceGroups = append(pol.ResourceGroups, g.ID)
		}
		if derivedFromRole(p, roleNames, accountID) {
			out.DerivedPolicies = append(out.DerivedPolicies, pol)
			continue
		}
		out.Policies = append(out.Policies, pol)
	}
	return out
}

// status is a member's status as a copy, the two Cloudflare sends shared.
func status(s string) string {
	switch s {
	case "accepted":
		return "accepted"
	case "pending":
		return "pending"
	}
	return strings.Clone(s)
}

// AccountScope is the scope key of the resource group that stands for the
// whole account.
func AccountScope(accountID string) string { return "com.cloudflare.api.account." + accountID }

// derivedFromRole reports whether p is the policy Cloudflare shows for a
// role the member holds: allow; exactly one permission group, named (in any
// case) as one of roleNames; exactly one resource group, the account scope
// with every object ("*").
func derivedFromRole(p shared.MemberPolicy, roleNames map[string]bool, accountID string) bool {
	if p.Access != shared.MemberPoliciesAccessAllow || len(p.PermissionGroups) != 1 || len(p.ResourceGroups) != 1 {
		return false
	}
	if !roleNames[strings.ToLower(strings.TrimSpace(p.PermissionGroups[0].Name))] {
		return false
	}
	rg := p.ResourceGroups[0]
	if accountID == "" || rg.Scope.Key != AccountScope(accountID) {
		return false
	}
	for _, o := range rg.Scope.Objects {
		if o.Key != "*" {
			return false
		}
	}
	return true
}
