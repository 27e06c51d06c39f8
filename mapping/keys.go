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
)

// RoleKey is the grant key of one Cloudflare role, by role id.
func RoleKey(roleID string) string { return rolePrefix + roleID }

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

// KeyName is a grant key in words, for plans, audit and explain: the name
// Resolve recorded, or one built from the names of a policy's parts, or the
// key itself when nothing is known about it.
func KeyName(key string, names map[string]string) string {
	if n, ok := names[key]; ok {
		return n
	}
	_, pgs, rgs, isPolicy, err := ParseKey(key)
	if err != nil || !isPolicy {
		return key
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
	return named(pgs, permissionGroupNameKey) + " on " + named(rgs, resourceGroupNameKey)
}
