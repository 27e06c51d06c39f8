package mapping

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrBadKey is returned by ParseKey for a string that is not a grant key.
var ErrBadKey = errors.New("malformed grant key")

const (
	rolePrefix   = "role:"
	policyPrefix = "policy:"
	denyPrefix   = "deny:"
)

// DenyKey is the key of a deny policy found on a member: scimflare never
// grants one and never removes one from a member it keeps.
func DenyKey(policyKey string) string { return denyPrefix + policyKey }

// IsDenyKey reports whether key is a DenyKey.
func IsDenyKey(key string) bool { return strings.HasPrefix(key, denyPrefix) }

// CutDeny is the policy key of a DenyKey, and whether key was one.
func CutDeny(key string) (policyKey string, ok bool) { return strings.CutPrefix(key, denyPrefix) }

// RoleKey is the grant key of one Cloudflare role, by role id.
func RoleKey(roleID string) string { return rolePrefix + roleID }

// IsRoleKey reports whether key is a well-formed RoleKey.
func IsRoleKey(key string) bool {
	_, _, _, isPolicy, err := ParseKey(key)
	return err == nil && !isPolicy
}

// PolicyKey is the grant key of one permission policy. It is canonical:
// the same sets of ids in any order, with repeats, give the same key, so a
// policy read back from Cloudflare compares equal to the one the mapping asks for.
func PolicyKey(permissionGroupIDs, resourceGroupIDs []string) string {
	return policyPrefix + canonical(permissionGroupIDs) + "|" + canonical(resourceGroupIDs)
}

func canonical(ids []string) string {
	s := slices.Clone(ids)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}

// ParseKey splits a grant key back into a role id, or a policy's permission
// group and resource group ids.
func ParseKey(key string) (roleID string, pgIDs, rgIDs []string, isPolicy bool, err error) {
	switch {
	case strings.HasPrefix(key, rolePrefix):
		id := strings.TrimPrefix(key, rolePrefix)
		if id == "" || strings.ContainsAny(id, ",|") {
			return "", nil, nil, false, fmt.Errorf("%w %q: empty or invalid role id", ErrBadKey, key)
		}
		return id, nil, nil, false, nil
	case strings.HasPrefix(key, policyPrefix):
		pg, rg, ok := strings.Cut(strings.TrimPrefix(key, policyPrefix), "|")
		if !ok || pg == "" || rg == "" || strings.Contains(rg, "|") {
			return "", nil, nil, false, fmt.Errorf("%w %q: want policy:<permission group ids>|<resource group ids>", ErrBadKey, key)
		}
		pgIDs, rgIDs = strings.Split(pg, ","), strings.Split(rg, ",")
		if slices.Contains(pgIDs, "") || slices.Contains(rgIDs, "") {
			return "", nil, nil, false, fmt.Errorf("%w %q: empty id in list", ErrBadKey, key)
		}
		return "", pgIDs, rgIDs, true, nil
	}
	return "", nil, nil, false, fmt.Errorf("%w %q: want role: or policy: prefix", ErrBadKey, key)
}

// Names entries for the parts of a policy, so that a policy found on
// Cloudflare that no mapping names can still be shown in words.
func permissionGroupNameKey(id string) string { return "permission_group:" + id }
func resourceGroupNameKey(id string) string   { return "resource_group:" + id }

// KeyName is a grant key in words, for plans, audit, explain and reports —
// the one place keys become words: the name Resolve recorded, or one built
// from the names of a policy's parts, "deny …" for a deny policy, a role's
// id when its name is unknown (without a Cloudflare token names stand for
// themselves, so the id is the name), or the key itself when it is not a
// grant key at all.
func KeyName(key string, names map[string]string) string {
	if n, ok := names[key]; ok {
		return n
	}
	if rest, ok := strings.CutPrefix(key, denyPrefix); ok {
		return "deny " + KeyName(rest, names)
	}
	roleID, pgs, rgs, isPolicy, err := ParseKey(key)
	if err != nil {
		return key
	}
	if !isPolicy {
		return roleID
	}
	named := func(ids []string, nameKey func(string) string) string {
		out := make([]string, len(ids))
		for i, id := range ids {
			if n, ok := names[nameKey(id)]; ok {
				out[i] = n
			} else {
				out[i] = id
			}
		}
		slices.Sort(out)
		return strings.Join(out, ", ")
	}
	on := named(rgs, resourceGroupNameKey)
	if len(rgs) == 1 && IsAccountScopeName(on) {
		// The whole account: what a role grants, read as the role's name
		// rather than "X on com.cloudflare.api.account.<id>".
		return named(pgs, permissionGroupNameKey)
	}
	return named(pgs, permissionGroupNameKey) + " on " + on
}

// KeyNames is keys in words (KeyName), sorted; nil for no keys.
func KeyNames(keys []string, names map[string]string) []string {
	if len(keys) == 0 {
		return nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = KeyName(k, names)
	}
	slices.Sort(out)
	return out
}
