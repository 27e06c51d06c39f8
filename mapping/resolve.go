package mapping

import (
	"fmt"
	"slices"
	"strings"
)

// SuperAdministrator is the Cloudflare role whose last holder in an account
// scimflare must never remove.
const SuperAdministrator = "Super Administrator - All Privileges"

// Named is one entry of a Cloudflare catalog: a role, permission group or
// resource group.
type Named struct{ ID, Name string }

// Catalog is what one account offers, as listed from Cloudflare. Roles,
// permission groups and resource groups are separate id spaces.
type Catalog struct{ Roles, PermissionGroups, ResourceGroups []Named }

// Resolved is the table with every name turned into grant keys, computed
// once per run.
type Resolved struct {
	Mappings []ResolvedMapping
	// Names maps grant keys (and the parts of policies) to words for
	// people: every role of every catalog, and every mapped policy.
	Names map[string]string
	// SuperAdminRole maps an account id to the role key of
	// SuperAdministrator in that account, when the account has it.
	SuperAdminRole map[string]string
	// SuperAdminGroup and AccountScopeGroup map an account id to the id of
	// the SuperAdministrator permission group and of the account-scope
	// resource group, when the account's catalog lists them: a policy
	// naming both makes a Super Administrator as surely as the role.
	SuperAdminGroup, AccountScopeGroup map[string]string
}

// IsSuperAdmin reports whether key makes its holder a Super Administrator
// of accountID: the role, or an allow policy of the permission group on
// the account scope.
func (r *Resolved) IsSuperAdmin(accountID, key string) bool {
	if r == nil {
		return false
	}
	return GrantsGroup(key, r.SuperAdminRole[accountID], r.SuperAdminGroup[accountID], r.AccountScopeGroup[accountID])
}

// ResolvedMapping is one mapping with its account id and grant keys. Index
// is its position in the table, for reasons and audit.
type ResolvedMapping struct {
	Mapping
	Index     int
	AccountID string
	Keys      []string
}

// Resolve turns the names in t into ids using catalogs (keyed by account
// id). Names match exactly first, then case-insensitively when that is
// unique. Every name that does not resolve is a Problem with up to three
// suggestions.
//
// A mapping with problems keeps the keys that did resolve. The reconciler
// must treat any error Problem as a failed read and not plan removals: a
// role renamed in Cloudflare must not look like a mapping that went away.
func Resolve(t Table, catalogs map[string]Catalog) (*Resolved, []Problem) {
	res := &Resolved{Names: map[string]string{}, SuperAdminRole: map[string]string{},
		SuperAdminGroup: map[string]string{}, AccountScopeGroup: map[string]string{}}
	var ps []Problem

	for _, a := range t.Accounts {
		cat, ok := catalogs[a.ID]
		if !ok {
			continue
		}
		for _, r := range cat.Roles {
			res.Names[RoleKey(r.ID)] = r.Name
			if r.Name == SuperAdministrator {
				res.SuperAdminRole[a.ID] = RoleKey(r.ID)
			}
		}
		for _, g := range cat.PermissionGroups {
			res.Names[permissionGroupNameKey(g.ID)] = g.Name
			if strings.EqualFold(g.Name, SuperAdministrator) {
				res.SuperAdminGroup[a.ID] = g.ID
			}
		}
		for _, g := range cat.ResourceGroups {
			res.Names[resourceGroupNameKey(g.ID)] = g.Name
			if g.Name == AccountScope(a.ID) {
				res.AccountScopeGroup[a.ID] = g.ID
			}
		}
	}

	for i, m := range t.Mappings {
		p := fmt.Sprintf("mappings[%d]", i)
		acct, ok := t.AccountByName(m.Account)
		if !ok {
			ps = append(ps, Problem{Path: p + ".account", Message: fmt.Sprintf("account %q is not defined under accounts", m.Account)})
			continue
		}
		cat, ok := catalogs[acct.ID]
		if !ok {
			ps = append(ps, Problem{Path: p + ".account", Message: fmt.Sprintf("no roles or groups were listed for account %s (%s)", acct.Name, acct.ID)})
			continue
		}
		rm := ResolvedMapping{Mapping: m, Index: i, AccountID: acct.ID}
		for j, name := range m.Roles {
			if !acct.KeepsRoles() {
				key, pgName, prob := RolePolicyKey(cat, acct, name)
				if prob != "" {
					ps = append(ps, Problem{Path: fmt.Sprintf("%s.roles[%d]", p, j), Message: prob})
					continue
				}
				res.Names[key] = pgName
				rm.Keys = appendUnique(rm.Keys, key)
				continue
			}
			id, prob := lookup(cat.Roles, name, "role", acct.Name)
			if prob != "" {
				ps = append(ps, Problem{Path: fmt.Sprintf("%s.roles[%d]", p, j), Message: prob})
				continue
			}
			rm.Keys = appendUnique(rm.Keys, RoleKey(id))
		}
		for j, pol := range m.Policies {
			pp := fmt.Sprintf("%s.policies[%d]", p, j)
			pgs, pgOK := lookupAll(cat.PermissionGroups, pol.PermissionGroups, "permission group", acct.Name, pp+".permission_groups", &ps)
			rgs, rgOK := lookupAll(cat.ResourceGroups, pol.ResourceGroups, "resource group", acct.Name, pp+".resource_groups", &ps)
			if !pgOK || !rgOK || len(pgs) == 0 || len(rgs) == 0 {
				continue
			}
			key := PolicyKey(pgs, rgs)
			res.Names[key] = KeyName(key, res.Names)
			rm.Keys = appendUnique(rm.Keys, key)
		}
		res.Mappings = append(res.Mappings, rm)
	}
	return res, ps
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func lookupAll(cat []Named, names []string, what, account, path string, ps *[]Problem) ([]string, bool) {
	ids := make([]string, 0, len(names))
	ok := true
	for k, n := range names {
		id, prob := lookup(cat, n, what, account)
		if prob != "" {
			*ps = append(*ps, Problem{Path: fmt.Sprintf("%s[%d]", path, k), Message: prob})
			ok = false
			continue
		}
		ids = append(ids, id)
	}
	return ids, ok
}

// lookup finds name in cat: exactly, else case-insensitively when unique.
// It returns a one-sentence problem otherwise.
func lookup(cat []Named, name, what, account string) (id, problem string) {
	var exact, folded []Named
	for _, n := range cat {
		if n.Name == name {
			exact = append(exact, n)
		} else if strings.EqualFold(n.Name, name) {
			folded = append(folded, n)
		}
	}
	switch {
	case len(exact) == 1:
		return exact[0].ID, ""
	case len(exact) > 1:
		return "", fmt.Sprintf("%s %q is ambiguous in account %s: %d entries have that name", what, name, account, len(exact))
	case len(folded) == 1:
		return folded[0].ID, ""
	case len(folded) > 1:
		return "", fmt.Sprintf("%s %q is ambiguous in account %s: it matches %s ignoring case", what, name, account, quoteList(namesOf(folded)))
	}
	msg := fmt.Sprintf("%s %q does not exist in account %s", what, name, account)
	if s := suggest(cat, name, 3); len(s) > 0 {
		msg += "; did you mean " + quoteList(s) + "?"
	}
	return "", msg
}

func namesOf(ns []Named) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// suggest returns up to limit catalog names close to name: a small edit
// distance relative to the longer name, or one containing the other,
// closest first.
func suggest(cat []Named, name string, limit int) []string {
	type cand struct {
		name string
		dist int
	}
	want := strings.ToLower(name)
	var cs []cand
	seen := map[string]bool{}
	for _, n := range cat {
		if seen[n.Name] {
			continue
		}
		seen[n.Name] = true
		have := strings.ToLower(n.Name)
		d := levenshtein(want, have)
		longer := max(len([]rune(want)), len([]rune(have)))
		if d*2 <= longer || (len(want) >= 3 && (strings.Contains(have, want) || strings.Contains(want, have))) {
			cs = append(cs, cand{n.Name, d})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, 0, limit)
	for i := 0; i < len(cs) && i < limit; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
