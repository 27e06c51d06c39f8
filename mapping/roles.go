package mapping

import (
	"fmt"
	"slices"
	"strings"
)

// AccountScopePrefix starts the name (and scope key) of the resource group
// that stands for a whole account, "com.cloudflare.api.account.<id>": the
// scope every policy Cloudflare derives from a legacy role is on.
const AccountScopePrefix = "com.cloudflare.api.account."

// AccountScope is the name of accountID's account-scope resource group.
func AccountScope(accountID string) string { return AccountScopePrefix + accountID }

// renamedRoles are the legacy role names whose permission group Cloudflare
// names differently, by lower-cased legacy name. Every other role has a
// permission group of its own name: a member granted a role is read back
// with a policy naming "the group of the same name" (README, "What
// scimflare assumes about Cloudflare"). Only names Cloudflare renamed
// belong here, each with its source:
//   - "Workers Admin" became "Workers Platform Admin" (developers.cloudflare.com
//     changelog 2025-06-16, "Grant account members read-only access to the
//     Workers Platform").
var renamedRoles = map[string]string{
	"workers admin": "Workers Platform Admin",
}

// RolePolicyKey is the grant key of role name granted as a policy on an
// account that does not keep roles: an allow policy of the permission group
// of the same name (case-insensitive; renamedRoles for the few Cloudflare
// renamed) on the account-scope resource group. problem is one sentence
// when the role has no permission group there, naming the closest ones.
func RolePolicyKey(cat Catalog, account Account, name string) (key, pgName, problem string) {
	scope := ""
	for _, g := range cat.ResourceGroups {
		if g.Name == AccountScope(account.ID) {
			scope = g.ID
		}
	}
	if scope == "" {
		return "", "", fmt.Sprintf("account %s lists no resource group %q, the account scope roles are granted on as policies", account.Name, AccountScope(account.ID))
	}
	id, pgName, ok := findPermissionGroup(cat.PermissionGroups, name)
	if !ok {
		if to, renamed := renamedRoles[strings.ToLower(strings.TrimSpace(name))]; renamed {
			id, pgName, ok = findPermissionGroup(cat.PermissionGroups, to)
		}
	}
	if !ok {
		msg := fmt.Sprintf("role %q has no permission group of that name in account %s, where roles are granted as policies", name, account.Name)
		if s := closest(cat.PermissionGroups, name, 3); len(s) > 0 {
			msg += "; the closest permission groups are " + quoteList(s)
		}
		return "", "", msg
	}
	return PolicyKey([]string{id}, []string{scope}), pgName, ""
}

// findPermissionGroup finds name exactly, else ignoring case when unique.
func findPermissionGroup(cat []Named, name string) (id, found string, ok bool) {
	var folded []Named
	for _, n := range cat {
		if n.Name == name {
			return n.ID, n.Name, true
		}
		if strings.EqualFold(n.Name, name) {
			folded = append(folded, n)
		}
	}
	if len(folded) == 1 {
		return folded[0].ID, folded[0].Name, true
	}
	return "", "", false
}

// closest is suggest, or failing any close name the limit nearest by edit
// distance: a role with no permission group always gets names to look at.
func closest(cat []Named, name string, limit int) []string {
	if s := suggest(cat, name, limit); len(s) > 0 {
		return s
	}
	want := strings.ToLower(name)
	names := slices.Clone(namesOf(cat))
	slices.SortStableFunc(names, func(a, b string) int {
		da, db := levenshtein(want, strings.ToLower(a)), levenshtein(want, strings.ToLower(b))
		if da != db {
			return da - db
		}
		return strings.Compare(a, b)
	})
	names = slices.Compact(names)
	return names[:min(limit, len(names))]
}

// IsAccountScopeName reports whether a resource group name is an account
// scope.
func IsAccountScopeName(name string) bool { return strings.HasPrefix(name, AccountScopePrefix) }

// GrantsGroup reports whether key grants permission group pgID on resource
// group rgID: the role key roleKey itself, or an allow policy naming both.
func GrantsGroup(key, roleKey, pgID, rgID string) bool {
	if roleKey != "" && key == roleKey {
		return true
	}
	if pgID == "" || rgID == "" {
		return false
	}
	_, pgs, rgs, isPolicy, err := ParseKey(key)
	return err == nil && isPolicy && slices.Contains(pgs, pgID) && slices.Contains(rgs, rgID)
}
