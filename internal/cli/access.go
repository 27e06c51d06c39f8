package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/plan"
)

// This file reads desired state the way the reconciler does, for the
// operator commands (report access, validate). The reconciler keeps its own
// copy unexported in sync/; these two must agree on what a mapping means.

// directory is plan.Directory over one store snapshot.
type directory struct{ r store.Reader }

func (d directory) GroupByDisplayName(name string) (string, bool, error) {
	g, err := d.r.GroupByDisplayName(name)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	return g.ID, err == nil, err
}

func (d directory) GroupsByExternalID(externalID string) ([]string, error) {
	gs, err := d.r.GroupsByExternalID(externalID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	return ids, nil
}

func (d directory) GroupName(groupID string) (string, bool, error) {
	g, err := d.r.GetGroup(groupID)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	return g.DisplayName, err == nil, err
}

func (d directory) GroupMembers(groupID string, fn func(plan.Membership) bool) error {
	err := d.r.GroupMembers(groupID, func(m store.Membership) bool {
		return fn(plan.Membership{MemberID: m.ID, IsGroup: m.Type == store.MemberGroup, Since: m.Since})
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func planUser(u store.User) plan.User {
	return plan.User{ID: u.ID, Email: u.Email, Active: u.Active, ActiveSince: u.ActiveSince}
}

func (d directory) User(id string) (plan.User, bool, error) {
	u, err := d.r.GetUser(id)
	if errors.Is(err, store.ErrNotFound) {
		return plan.User{}, false, nil
	}
	if err != nil {
		return plan.User{}, false, err
	}
	return planUser(u), true, nil
}

func (d directory) UsersByEmail(email string) ([]plan.User, error) {
	us, err := d.r.UsersByEmail(email)
	if err != nil {
		return nil, err
	}
	out := make([]plan.User, len(us))
	for i, u := range us {
		out[i] = planUser(u)
	}
	return out, nil
}

// cloudflareClient builds a client from the config's token, or returns nil
// when there is none. It has its own request budget: callers make a handful
// of catalog calls at most.
func cloudflareClient(cfg *config.Config) (*cloudflare.Client, error) {
	token, err := cfg.CloudflareToken()
	if err != nil || token == "" {
		return nil, err
	}
	return cloudflare.New(cloudflare.Config{BaseURL: cfg.Cloudflare.BaseURL, Token: token, Budget: cfg.Cloudflare.RequestBudget})
}

// fetchCatalogs lists the roles of every account, and its permission and
// resource groups when allGroups is set or its mappings use policies.
func fetchCatalogs(ctx context.Context, cfg *config.Config, cf *cloudflare.Client, allGroups bool) (map[string]mapping.Catalog, error) {
	out := map[string]mapping.Catalog{}
	conv := func(ns []cloudflare.Named) []mapping.Named {
		m := make([]mapping.Named, len(ns))
		for i, n := range ns {
			m[i] = mapping.Named{ID: n.ID, Name: n.Name}
		}
		return m
	}
	for _, a := range cfg.Accounts {
		roles, err := cf.ListRoles(ctx, a.ID)
		if err != nil {
			return nil, fmt.Errorf("list the roles of account %s: %w", a.Name, err)
		}
		cat := mapping.Catalog{Roles: conv(roles)}
		if allGroups || usesPolicies(cfg, a.Name) {
			pgs, err := cf.ListPermissionGroups(ctx, a.ID)
			if err != nil {
				return nil, fmt.Errorf("list the permission groups of account %s: %w", a.Name, err)
			}
			rgs, err := cf.ListResourceGroups(ctx, a.ID)
			if err != nil {
				return nil, fmt.Errorf("list the resource groups of account %s: %w", a.Name, err)
			}
			cat.PermissionGroups, cat.ResourceGroups = conv(pgs), conv(rgs)
		}
		out[a.ID] = cat
	}
	return out, nil
}

func usesPolicies(cfg *config.Config, account string) bool {
	return slices.ContainsFunc(cfg.Mappings, func(m mapping.Mapping) bool { return m.Account == account && len(m.Policies) > 0 })
}

// identityCatalogs makes every name the config and the grants mention its
// own id: what the reconciler does without a Cloudflare token.
func identityCatalogs(cfg *config.Config, grants []store.Grant) map[string]mapping.Catalog {
	out := map[string]mapping.Catalog{}
	self := func(names []string) []mapping.Named {
		slices.Sort(names)
		names = slices.Compact(names)
		m := make([]mapping.Named, len(names))
		for i, n := range names {
			m[i] = mapping.Named{ID: n, Name: n}
		}
		return m
	}
	for _, a := range cfg.Accounts {
		roles, pgs, rgs := []string{mapping.SuperAdministrator}, []string{}, []string{}
		for _, m := range cfg.Mappings {
			if m.Account != a.Name {
				continue
			}
			roles = append(roles, m.Roles...)
			for _, p := range m.Policies {
				pgs = append(pgs, p.PermissionGroups...)
				rgs = append(rgs, p.ResourceGroups...)
			}
		}
		for _, g := range grants {
			if g.AccountID == a.ID && g.Role != "" {
				roles = append(roles, g.Role)
			}
		}
		out[a.ID] = mapping.Catalog{Roles: self(roles), PermissionGroups: self(pgs), ResourceGroups: self(rgs)}
	}
	return out
}

// tempGrants turns stored grants into plan input; a grant whose role or
// mapping no longer resolves is left out (the reconciler would abort; a
// report just cannot attribute it).
func tempGrants(grants []store.Grant, res *mapping.Resolved, cats map[string]mapping.Catalog) []plan.TempGrant {
	var out []plan.TempGrant
	for _, g := range grants {
		end := g.End
		if !g.RevokedAt.IsZero() && g.RevokedAt.Before(end) {
			end = g.RevokedAt
		}
		var keys []string
		if g.Role != "" {
			for _, r := range cats[g.AccountID].Roles {
				if strings.EqualFold(r.Name, g.Role) {
					keys = append(keys, mapping.RoleKey(r.ID))
					break
				}
			}
		} else {
			for _, m := range res.Mappings {
				if m.AccountID == g.AccountID && (strings.EqualFold(m.Group, g.Mapping) || (m.GroupExternalID != "" && m.GroupExternalID == g.Mapping)) {
					keys = append(keys, m.Keys...)
				}
			}
		}
		if len(keys) == 0 || end.Before(g.Start) {
			continue
		}
		out = append(out, plan.TempGrant{ID: g.ID, Email: g.Email, AccountID: g.AccountID, Keys: keys, Start: g.Start, End: end, Reason: g.Reason, Actor: g.Actor})
	}
	return out
}

// desiredNow is the reconciler's desired state at now with every reason,
// and the names of grant keys. Names come from Cloudflare when a token is
// configured, else every name stands for itself.
func desiredNow(ctx context.Context, env *Env, now time.Time) (*plan.Desired, map[string]string, error) {
	grants, err := env.Store.Grants()
	if err != nil {
		return nil, nil, fmt.Errorf("read temporary grants: %w", err)
	}
	cats := identityCatalogs(env.Config, grants)
	cf, err := cloudflareClient(env.Config)
	if err != nil {
		return nil, nil, err
	}
	if cf != nil {
		if cats, err = fetchCatalogs(ctx, env.Config, cf, false); err != nil {
			return nil, nil, err
		}
	}
	// Names that do not resolve (a role renamed in Cloudflare) leave those
	// mappings without keys: the report then shows such access as managed
	// without a current source, which is what it is.
	res, _ := mapping.Resolve(env.Config.Table(), cats)
	temp := tempGrants(grants, res, cats)
	var d *plan.Desired
	err = env.Store.View(func(rd store.Reader) error {
		var err error
		d, err = plan.Build(directory{rd}, res, temp, nil, now)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("compute desired state: %w", err)
	}
	return d, res.Names, nil
}

// keyName is a grant key in words. An unnamed role shows its id, which
// without a Cloudflare token is its name (names stand for themselves).
func keyName(key string, names map[string]string) string {
	if rest, ok := strings.CutPrefix(key, "deny:"); ok {
		return "deny " + keyName(rest, names)
	}
	n := mapping.KeyName(key, names)
	if rest, ok := strings.CutPrefix(n, "role:"); ok {
		return rest
	}
	return n
}
