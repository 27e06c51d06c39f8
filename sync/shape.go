// Grant shapes: an account that does not keep roles (grant_shape:
// policies, the default) is granted policies, and a member scimflare
// manages there that still holds legacy roles is converted, each role to
// the policy Cloudflare itself derives from it.

package sync

import (
	"maps"
	"strings"
	gosync "sync"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/plan"
)

// legacyRoles remembers, per account, the names of the legacy roles
// members were read with (role id -> name). An account that does not keep
// roles never lists its roles (Cloudflare deprecated that API): a member's
// own answer is where a role's name, hence its permission group, comes
// from. Listings fill it, page by page as they come (a name Cloudflare
// gave is a name, whether or not the listing then proves complete); a
// member read before a write adds to it, so a run planned from the member
// cache converts what it has seen.
type legacyRoles struct {
	mu    gosync.Mutex
	names map[string]map[string]string
}

// learn records the role names ms were read with, and reports whether any
// was new.
func (l *legacyRoles) learn(accountID string, ms ...cloudflare.Member) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	learned := false
	for _, m := range ms {
		for id, name := range m.RoleNames {
			if l.names == nil {
				l.names = map[string]map[string]string{}
			}
			if l.names[accountID] == nil {
				l.names[accountID] = map[string]string{}
			}
			if l.names[accountID][id] != name {
				// Copies: a listing's strings may share its page's memory.
				l.names[accountID][strings.Clone(id)] = strings.Clone(name)
				learned = true
			}
		}
	}
	return learned
}

func (l *legacyRoles) of(accountID string) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.names[accountID])
}

// shape sets what in needs to plan the account's grant shape: who counts
// as a Super Administrator (the role, or its permission group on the
// account scope), and on an account granted policies each legacy role's
// equivalent policy, with the role's name for plans and audit.
func (rn *run) shape(in *plan.AccountInput, a mapping.Account) {
	res := rn.res
	in.SuperAdminKey = res.SuperAdminRole[a.ID]
	in.SuperAdmin = func(key string) bool { return res.IsSuperAdmin(a.ID, key) }
	if a.KeepsRoles() || rn.r.cf == nil {
		in.Equivalent = nil
		return
	}
	in.Equivalent = map[string]string{}
	for id, name := range rn.r.legacyRoles.of(a.ID) {
		role := mapping.RoleKey(id)
		rn.result.Names[role] = name
		key, pgName, prob := mapping.RolePolicyKey(rn.cats[a.ID], a, name)
		if prob != "" {
			// A role with no permission group (retired, or renamed beyond
			// the table) is planned as it is: scimflare does not guess
			// what it grants.
			continue
		}
		in.Equivalent[role] = key
		if _, named := rn.result.Names[key]; !named {
			rn.result.Names[key] = pgName
		}
	}
}

// learnRoles records the role names of members read live in an account,
// and when a new one shows up gives the account's plan input its
// equivalent.
func (reg *registry) learnRoles(accountID string, ms ...cloudflare.Member) bool {
	if !reg.legacy.learn(accountID, ms...) {
		return false
	}
	i, ok := reg.byID[accountID]
	if !ok || i >= len(reg.inputs) {
		return true
	}
	reg.planner.reshape(i)
	return true
}
