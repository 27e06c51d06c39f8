// Name resolution: mapping names (roles, permission groups, resource
// groups) to Cloudflare ids through per-account catalogs, the cache of the
// last live resolution, and grant keys in and out of Cloudflare's shapes.

package sync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/plan"
)

// ErrMixedShapes: a member would need roles and policies in one request,
// which Cloudflare's member API does not take.
var ErrMixedShapes = errors.New("member would hold both roles and policies; Cloudflare takes one shape per member")

// ErrNeedToken: the state holds what Cloudflare reported (role ids), and
// reading it needs the API token to turn names into those ids.
var ErrNeedToken = errors.New("no Cloudflare API token (cloudflare.api_token_env or cloudflare.api_token_file)")

// nameCache is what the most recent live name resolution found. Targeted,
// expiry, grant and revoke runs plan with it, so that one SCIM change costs
// one write and no list call; full runs always resolve afresh and renew it.
// It is immutable once stored: a refresh stores a new one.
type nameCache struct {
	// cfg is the configuration it was resolved for: after a Reload the
	// accounts, and which of them need policy catalogs, may differ.
	cfg  *config.Config
	cats map[string]mapping.Catalog // by account id
	at   time.Time
}

// catalogMaxAge is how many schedule intervals a cached catalog serves
// when no full run renews it (full runs failing, or a long schedule), so a
// role Cloudflare replaced is not planned with for long.
const catalogMaxAge = 2

// usable reports whether a run on cfg may plan with c at now.
func (c *nameCache) usable(cfg *config.Config, now time.Time) bool {
	if c == nil || c.cfg != cfg || now.Before(c.at) {
		return false
	}
	return now.Sub(c.at) <= catalogMaxAge*scheduleInterval(cfg.Sync.Schedule, c.at)
}

// runCatalogs is the catalogs a run plans with. With reuse, a usable
// cached catalog is taken as is and returned as cached: a write Cloudflare
// then refuses for an unknown id may mean it is stale. Without a client every
// name stands for itself (role "X" is key "role:X"), so that plan-only mode
// without a token can still show a plan.
func (r *Reconciler) runCatalogs(ctx context.Context, cfg *config.Config, grants []store.Grant, reuse bool, now time.Time) (cats map[string]mapping.Catalog, cached *nameCache, err error) {
	if r.cf == nil {
		return identityCatalogs(cfg, grants), nil, nil
	}
	if c := r.names.Load(); reuse && c.usable(cfg, now) {
		return c.cats, c, nil
	}
	cats, err = r.liveCatalogs(ctx, cfg, now)
	return cats, nil, err
}

// liveCatalogs lists what every account offers and keeps it for the runs
// that follow.
func (r *Reconciler) liveCatalogs(ctx context.Context, cfg *config.Config, now time.Time) (map[string]mapping.Catalog, error) {
	out, err := Catalogs(ctx, r.cf, cfg)
	if err != nil {
		return nil, err
	}
	r.names.Store(&nameCache{cfg: cfg, cats: out, at: now})
	return out, nil
}

// Catalogs lists, by account id, the names every account of cfg offers:
// what a reconcile resolves the mapping table against, so that `validate
// --online` checks a file the same way.
func Catalogs(ctx context.Context, cf Cloudflare, cfg *config.Config) (map[string]mapping.Catalog, error) {
	out := map[string]mapping.Catalog{}
	for _, a := range cfg.Accounts {
		var cat mapping.Catalog
		// The deprecated roles listing only for an account that keeps
		// roles (grant_shape: roles); every other account resolves role
		// names to permission groups (SPEC, "Role names resolve to
		// permission groups").
		if a.KeepsRoles() {
			roles, err := cf.ListRoles(ctx, a.ID)
			if err != nil {
				return nil, fmt.Errorf("resolve names in account %s: %w", a.Name, err)
			}
			cat.Roles = named(roles)
		}
		if !a.KeepsRoles() || usesPolicies(cfg, a.Name) {
			pgs, err := cf.ListPermissionGroups(ctx, a.ID)
			if err != nil {
				return nil, fmt.Errorf("resolve names in account %s: %w", a.Name, err)
			}
			rgs, err := cf.ListResourceGroups(ctx, a.ID)
			if err != nil {
				return nil, fmt.Errorf("resolve names in account %s: %w", a.Name, err)
			}
			cat.PermissionGroups, cat.ResourceGroups = named(pgs), named(rgs)
		}
		out[a.ID] = cat
	}
	return out, nil
}

// dropNames forgets c, unless a newer catalog replaced it meanwhile.
func (r *Reconciler) dropNames(c *nameCache) {
	r.names.CompareAndSwap(c, nil)
}

// roleExists looks a role name up for `grant`: in the cached catalog, and
// in Cloudflare only when the cache lacks it, since the role may be newer
// than the cache (which is then dropped, being stale).
func (r *Reconciler) roleExists(ctx context.Context, cfg *config.Config, acct mapping.Account, name string) (bool, error) {
	c := r.names.Load()
	if c.usable(cfg, r.now()) {
		if _, ok := findRole(acct, c.cats[acct.ID], name); ok {
			return true, nil
		}
	}
	var cat mapping.Catalog
	if acct.KeepsRoles() {
		roles, err := r.cf.ListRoles(ctx, acct.ID)
		if err != nil {
			return false, err
		}
		cat.Roles = named(roles)
	} else {
		pgs, err := r.cf.ListPermissionGroups(ctx, acct.ID)
		if err != nil {
			return false, err
		}
		rgs, err := r.cf.ListResourceGroups(ctx, acct.ID)
		if err != nil {
			return false, err
		}
		cat.PermissionGroups, cat.ResourceGroups = named(pgs), named(rgs)
	}
	_, ok := findRole(acct, cat, name)
	if ok && c != nil {
		r.dropNames(c)
	}
	return ok, nil
}

// staleName reports whether Cloudflare's refusal of a write can mean that
// an id from the name catalogs no longer exists. Cloudflare answers an
// unknown role id with HTTP 400, code 1001 "Invalid request: Invalid role
// assignments found"; a 404 on a create names no member, so it is about
// another object the body refers to.
func staleName(ch plan.Change, err error) bool {
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || ch.Op == plan.OpDelete || errors.Is(err, cloudflare.ErrAlreadyMember) {
		return false
	}
	return ae.Status == http.StatusBadRequest || (ae.Status == http.StatusNotFound && ch.Op == plan.OpCreate)
}

func named(ns []cloudflare.Named) []mapping.Named {
	out := make([]mapping.Named, len(ns))
	for i, n := range ns {
		out[i] = mapping.Named{ID: n.ID, Name: n.Name}
	}
	return out
}

func usesPolicies(cfg *config.Config, account string) bool {
	for _, m := range cfg.Mappings {
		if m.Account == account && len(m.Policies) > 0 {
			return true
		}
	}
	return false
}

// identityCatalogs makes every name the config and the grants mention its
// own id.
func identityCatalogs(cfg *config.Config, grants []store.Grant) map[string]mapping.Catalog {
	type sets struct{ roles, pgs, rgs []string }
	byName := map[string]*sets{}
	out := map[string]mapping.Catalog{}
	for _, a := range cfg.Accounts {
		byName[a.Name] = &sets{roles: []string{mapping.SuperAdministrator}}
		if !a.KeepsRoles() {
			// Roles are granted as the permission group of the same name on
			// the account scope.
			byName[a.Name].pgs = []string{mapping.SuperAdministrator}
			byName[a.Name].rgs = []string{mapping.AccountScope(a.ID)}
		}
	}
	for _, m := range cfg.Mappings {
		s := byName[m.Account]
		if s == nil {
			continue
		}
		s.roles = append(s.roles, m.Roles...)
		if a, ok := accountByName(cfg, m.Account); ok && !a.KeepsRoles() {
			s.pgs = append(s.pgs, m.Roles...)
		}
		for _, p := range m.Policies {
			s.pgs = append(s.pgs, p.PermissionGroups...)
			s.rgs = append(s.rgs, p.ResourceGroups...)
		}
	}
	for _, g := range grants {
		if a, ok := accountByID(cfg, g.AccountID); ok && g.Role != "" {
			byName[a.Name].roles = append(byName[a.Name].roles, g.Role)
			if !a.KeepsRoles() {
				byName[a.Name].pgs = append(byName[a.Name].pgs, g.Role)
			}
		}
	}
	self := func(names []string) []mapping.Named {
		slices.Sort(names)
		names = slices.Compact(names)
		out := make([]mapping.Named, len(names))
		for i, n := range names {
			out[i] = mapping.Named{ID: n, Name: n}
		}
		return out
	}
	for _, a := range cfg.Accounts {
		s := byName[a.Name]
		out[a.ID] = mapping.Catalog{Roles: self(s.roles), PermissionGroups: self(s.pgs), ResourceGroups: self(s.rgs)}
	}
	return out
}

func accountByName(cfg *config.Config, name string) (mapping.Account, bool) {
	for _, a := range cfg.Accounts {
		if a.Name == name {
			return a, true
		}
	}
	return mapping.Account{}, false
}

func accountByID(cfg *config.Config, id string) (mapping.Account, bool) {
	for _, a := range cfg.Accounts {
		if a.ID == id {
			return a, true
		}
	}
	return mapping.Account{}, false
}

// resolve turns the table's names into keys. Any error-level problem is a
// failed read: a role renamed in Cloudflare must not look like a mapping
// that went away.
func resolve(cfg *config.Config, cats map[string]mapping.Catalog) (*mapping.Resolved, error) {
	res, problems := mapping.Resolve(cfg.Table(), cats)
	if !mapping.HasErrors(problems) {
		return res, nil
	}
	var msgs []string
	for _, p := range problems {
		if !p.Warning {
			msgs = append(msgs, p.String())
		}
	}
	return nil, fmt.Errorf("cannot resolve names of the mapping table: %s", strings.Join(msgs, "; "))
}

// findRole is the grant key of a role name in acct, looked up as
// mapping.Resolve does: a role (exactly, else ignoring case when unique)
// on an account that keeps roles, else the permission group of the same
// name on the account scope.
func findRole(acct mapping.Account, cat mapping.Catalog, name string) (string, bool) {
	if !acct.KeepsRoles() {
		key, _, prob := mapping.RolePolicyKey(cat, acct, name)
		return key, prob == ""
	}
	var folded []string
	for _, n := range cat.Roles {
		if n.Name == name {
			return mapping.RoleKey(n.ID), true
		}
		if strings.EqualFold(n.Name, name) {
			folded = append(folded, n.ID)
		}
	}
	if len(folded) == 1 {
		return mapping.RoleKey(folded[0]), true
	}
	return "", false
}

// mappingKeys is the union of the keys of every mapping of group on the
// account: what `grant --mapping G` hands out.
func mappingKeys(res *mapping.Resolved, accountID, group string) []string {
	var keys []string
	for _, m := range res.Mappings {
		if m.AccountID != accountID || !(strings.EqualFold(m.Group, group) || (m.GroupExternalID != "" && m.GroupExternalID == group)) {
			continue
		}
		for _, k := range m.Keys {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// grantKeys resolves a temporary grant's role or mapping to keys. A role
// follows its account's shape: a role on an account that keeps roles, the
// permission group of that name on the account scope elsewhere.
func grantKeys(g store.Grant, cfg *config.Config, res *mapping.Resolved, cats map[string]mapping.Catalog) ([]string, error) {
	if g.Role != "" {
		acct, _ := accountByID(cfg, g.AccountID)
		if acct.ID == "" {
			acct = mapping.Account{ID: g.AccountID, Name: g.AccountID}
		}
		key, ok := findRole(acct, cats[g.AccountID], g.Role)
		if !ok {
			return nil, fmt.Errorf("grant %s: role %q does not exist in account %s", g.ID, g.Role, g.AccountID)
		}
		return []string{key}, nil
	}
	keys := mappingKeys(res, g.AccountID, g.Mapping)
	if len(keys) == 0 {
		return nil, fmt.Errorf("grant %s: no mapping of group %q on account %s", g.ID, g.Mapping, g.AccountID)
	}
	return keys, nil
}

// keysOf is a member's grants as keys.
func keysOf(m cloudflare.Member) []string {
	var keys []string
	for _, id := range m.Roles {
		keys = append(keys, mapping.RoleKey(id))
	}
	for _, p := range m.Policies {
		k := mapping.PolicyKey(p.PermissionGroups, p.ResourceGroups)
		if p.Access == "deny" {
			k = mapping.DenyKey(k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// shapeOf turns keys back into what Cloudflare's member API takes.
func shapeOf(keys []string) (roles []string, policies []cloudflare.Policy, err error) {
	for _, k := range keys {
		access := "allow"
		if rest, ok := mapping.CutDeny(k); ok {
			access, k = "deny", rest
		}
		roleID, pgs, rgs, isPolicy, err := mapping.ParseKey(k)
		if err != nil {
			return nil, nil, err
		}
		if isPolicy {
			policies = append(policies, cloudflare.Policy{Access: access, PermissionGroups: pgs, ResourceGroups: rgs})
		} else {
			roles = append(roles, roleID)
		}
	}
	if len(roles) > 0 && len(policies) > 0 {
		return nil, nil, ErrMixedShapes
	}
	return roles, policies, nil
}
