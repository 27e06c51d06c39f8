package mapping

import (
	"fmt"
	"strings"
	"time"
)

// Validate checks the table against every rule of SPEC.md and returns each
// problem found, errors and warnings alike, in config order. maxGrant is
// sync.max_grant_duration; a value <= 0 means no upper bound on ttl.
//
// Choices made where SPEC.md is silent:
//   - environment is required and is one of production, staging, development;
//   - account ids are 32 lower-case hex characters, as Cloudflare prints them;
//   - account names and ids must be unique regardless of letter case;
//   - ttl and expires_at on one mapping is an error: pick one end;
//   - a group mapped to production and to any non-production account is a
//     warning on each of those mappings that lacks allow_cross_environment;
//   - a policy needs at least one permission group and one resource group.
func Validate(t Table, maxGrant time.Duration) []Problem {
	var ps []Problem
	errf := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	warnf := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...), Warning: true})
	}
	// checkNames checks the names of one kind (role, permission group,
	// resource group) listed at path.
	checkNames := func(path, kind string, list []string) {
		for k, n := range list {
			np := fmt.Sprintf("%s[%d]", path, k)
			if strings.TrimSpace(n) == "" {
				errf(np, "%s name is empty", kind)
			} else if containsAdmin(n) {
				warnf(np, "%s %q contains \"admin\": keep roles narrow", kind, n)
			}
		}
	}

	names := map[string]int{}
	ids := map[string]int{}
	for i, a := range t.Accounts {
		p := fmt.Sprintf("accounts[%d]", i)
		if a.Name == "" {
			errf(p+".name", "account name is required")
		} else if j, dup := names[strings.ToLower(a.Name)]; dup {
			errf(p+".name", "account name %q is already used by accounts[%d]", a.Name, j)
		} else {
			names[strings.ToLower(a.Name)] = i
		}
		switch {
		case a.ID == "":
			errf(p+".id", "account id is required")
		case !isAccountID(a.ID):
			errf(p+".id", "account id %q is not 32 lower-case hex characters", a.ID)
		default:
			if j, dup := ids[a.ID]; dup {
				errf(p+".id", "account id %s is already used by accounts[%d]", a.ID, j)
			} else {
				ids[a.ID] = i
			}
		}
		switch a.GrantShape {
		case "", GrantShapePolicies, GrantShapeRoles:
		default:
			errf(p+".grant_shape", "grant_shape %q is not one of policies, roles", a.GrantShape)
		}
		switch a.Model {
		case "", ModelMemberPolicies, ModelUserGroups:
		default:
			errf(p+".model", "model %q is not one of member_policies, user_groups", a.Model)
		}
		switch a.Environment {
		case EnvProduction, EnvStaging, EnvDevelopment:
		case "":
			errf(p+".environment", "environment is required: production, staging or development")
		default:
			errf(p+".environment", "environment %q is not one of production, staging, development", a.Environment)
		}
	}

	for i, m := range t.Mappings {
		p := fmt.Sprintf("mappings[%d]", i)
		switch {
		case m.Group == "" && m.GroupExternalID == "":
			errf(p, "set group or group_external_id")
		case m.Group != "" && m.GroupExternalID != "":
			errf(p, "set only one of group and group_external_id")
		}
		if m.Group != "" && containsAdmin(m.Group) {
			warnf(p+".group", "group name %q contains \"admin\": keep groups and roles narrow", m.Group)
		}

		acct, known := t.AccountByName(m.Account)
		switch {
		case m.Account == "":
			errf(p+".account", "account is required")
		case !known:
			errf(p+".account", "account %q is not defined under accounts", m.Account)
		}

		hasRoles, hasPolicies := len(m.Roles) > 0, len(m.Policies) > 0
		switch {
		case !hasRoles && !hasPolicies:
			errf(p, "set roles or policies")
		case known && hasPolicies && acct.KeepsRoles():
			// A policies account takes both: its roles are granted as
			// policies too.
			errf(p+".policies", "account %q has grant_shape: roles, which cannot take policies (Cloudflare takes one shape per member); drop grant_shape: roles or map roles only", acct.Name)
		}
		checkNames(p+".roles", "role", m.Roles)
		for j, pol := range m.Policies {
			pp := fmt.Sprintf("%s.policies[%d]", p, j)
			if len(pol.PermissionGroups) == 0 {
				errf(pp+".permission_groups", "a policy needs at least one permission group")
			}
			if len(pol.ResourceGroups) == 0 {
				errf(pp+".resource_groups", "a policy needs at least one resource group")
			}
			checkNames(pp+".permission_groups", "permission group", pol.PermissionGroups)
			checkNames(pp+".resource_groups", "resource group", pol.ResourceGroups)
		}

		switch {
		case m.TTL < 0:
			errf(p+".ttl", "ttl %s is negative", m.TTL)
		case maxGrant > 0 && m.TTL > maxGrant:
			errf(p+".ttl", "ttl %s is above sync.max_grant_duration %s", m.TTL, maxGrant)
		}
		if m.TTL != 0 && m.ExpiresAt != nil {
			errf(p, "set ttl or expires_at, not both")
		}
		if m.ExpiresAt != nil && m.ExpiresAt.IsZero() {
			errf(p+".expires_at", "expires_at is empty")
		}
	}

	ps = append(ps, crossEnvironment(t)...)
	ps = append(ps, validateUserGroups(t)...)
	return ps
}

// crossEnvironment warns when one group reaches production and a
// non-production account: staging must never borrow production's people by
// accident.
func crossEnvironment(t Table) []Problem {
	type use struct {
		index int
		env   string
	}
	byGroup := map[string][]use{}
	var order []string
	for i, m := range t.Mappings {
		a, ok := t.AccountByName(m.Account)
		if !ok || a.Environment == "" {
			continue
		}
		g := groupIdentity(m)
		if g == "" {
			continue
		}
		if _, seen := byGroup[g]; !seen {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], use{i, a.Environment})
	}
	var ps []Problem
	for _, g := range order {
		uses := byGroup[g]
		for _, u := range uses {
			if t.Mappings[u.index].AllowCrossEnvironment {
				continue
			}
			for _, other := range uses {
				if (u.env == EnvProduction) == (other.env == EnvProduction) {
					continue
				}
				a := t.Mappings[u.index].Account
				b := t.Mappings[other.index].Account
				ps = append(ps, Problem{
					Path:    fmt.Sprintf("mappings[%d].group", u.index),
					Message: fmt.Sprintf("group %q grants on %s account %q and on %s account %q (mappings[%d]); set allow_cross_environment: true if that is intended", t.Mappings[u.index].GroupLabel(), u.env, a, other.env, b, other.index),
					Warning: true,
				})
				break
			}
		}
	}
	return ps
}

// groupIdentity is how the directory matches a mapping's group: display
// names case-insensitively, external ids exactly.
func groupIdentity(m Mapping) string {
	switch {
	case m.Group != "":
		return "name:" + strings.ToLower(m.Group)
	case m.GroupExternalID != "":
		return "ext:" + m.GroupExternalID
	}
	return ""
}

func containsAdmin(s string) bool {
	return strings.Contains(strings.ToLower(s), "admin")
}

func isAccountID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
