package mapping

import (
	"fmt"
	"time"
)

// Account is one Cloudflare account scimflare manages.
type Account struct {
	Name        string `yaml:"name"`
	ID          string `yaml:"id"`
	Environment string `yaml:"environment"`
	// Model is how access is held: ModelMemberPolicies (the default, also
	// when empty) puts grants on each member; ModelUserGroups holds each
	// standing mapping as one Cloudflare user group scimflare owns.
	Model string `yaml:"model"`
	// GrantShape is what a member is granted: GrantShapePolicies (the
	// default, also when empty) or the legacy GrantShapeRoles.
	GrantShape string `yaml:"grant_shape"`
	// UserGroupPrefix starts the name of each user group scimflare
	// creates on a user-groups account ("scimflare-" when empty).
	UserGroupPrefix string `yaml:"user_group_prefix"`
}

// Access models and grant shapes an account may name.
const (
	ModelMemberPolicies = "member_policies"
	ModelUserGroups     = "user_groups"
	GrantShapePolicies  = "policies"
	GrantShapeRoles     = "roles"
)

// KeepsRoles reports whether the account keeps the legacy Account Roles
// shape (grant_shape: roles): mapped roles are granted as roles and role
// names resolve through /accounts/{id}/roles. Every other account is
// granted policies, role names included.
func (a Account) KeepsRoles() bool { return a.GrantShape == GrantShapeRoles }

// Environments a mapping may name. Production is kept apart from the others
// so that a non-production account never borrows production's groups.
const (
	EnvProduction  = "production"
	EnvStaging     = "staging"
	EnvDevelopment = "development"
)

// Policy is one Cloudflare permission policy: permission groups applied to
// resource groups, both by name.
type Policy struct {
	PermissionGroups []string `yaml:"permission_groups"`
	ResourceGroups   []string `yaml:"resource_groups"`
}

// Mapping says that members of one IdP group hold roles, or policies, on one
// account. TTL bounds each member's grant from the moment they joined;
// ExpiresAt ends the mapping for everyone.
type Mapping struct {
	Group                 string        `yaml:"group"`
	GroupExternalID       string        `yaml:"group_external_id"`
	Account               string        `yaml:"account"`
	Roles                 []string      `yaml:"roles"`
	Policies              []Policy      `yaml:"policies"`
	TTL                   time.Duration `yaml:"ttl"`
	ExpiresAt             *time.Time    `yaml:"expires_at"`
	AllowCrossEnvironment bool          `yaml:"allow_cross_environment"`
}

// GroupLabel names the mapping's group for people: the display name, or the
// external id when the mapping selects the group by it.
func (m Mapping) GroupLabel() string {
	if m.Group != "" {
		return m.Group
	}
	return "externalId " + m.GroupExternalID
}

// Table is the `accounts` and `mappings` sections of the config.
type Table struct {
	Accounts []Account `yaml:"accounts"`
	Mappings []Mapping `yaml:"mappings"`
}

// AccountByName returns the account called name (exact match, as mappings
// must spell it).
func (t Table) AccountByName(name string) (Account, bool) {
	for _, a := range t.Accounts {
		if a.Name == name {
			return a, true
		}
	}
	return Account{}, false
}

// Problem is one validation or resolution finding. Path points into the
// config ("mappings[2].roles[0]"); Message is one sentence. Warnings do not
// stop scimflare from running.
type Problem struct {
	Path    string
	Message string
	Warning bool
}

func (p Problem) String() string {
	if p.Warning {
		return fmt.Sprintf("warning: %s: %s", p.Path, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Message)
}

// HasErrors reports whether any problem is not a warning.
func HasErrors(ps []Problem) bool {
	for _, p := range ps {
		if !p.Warning {
			return true
		}
	}
	return false
}
