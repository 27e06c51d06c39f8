package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/scimflare/scimflare/internal/terminal"
	"github.com/scimflare/scimflare/mapping"
)

// names turns keys into sorted names: people read role lists, not ids.
// (Never nil: `plan --json` lists are never null.)
func keyNames(keys []string, names map[string]string) []string {
	if out := mapping.KeyNames(keys, names); out != nil {
		return out
	}
	return []string{}
}

func accountLabel(c *Changes, id string, accountNames map[string]string) string {
	if n, ok := accountNames[id]; ok && n != "" {
		return n
	}
	for _, a := range c.Accounts {
		if a.ID == id && a.Name != "" {
			return a.Name
		}
	}
	return id
}

var kindMark = map[Kind]string{AddMember: "+", UpdateRoles: "~", RemoveMember: "-", ExpireGrant: "!", MigrateShape: ">",
	CreateGroup: "+", SetGroupPolicies: "~", AddGroupMember: "+", RemoveGroupMember: "-"}

// RenderText writes the plan for people, grouped by account, then what was
// withheld, drift, tripped guards and a one-line summary. Every value from
// SCIM or Cloudflare is escaped (terminal.Escape): a line break or control
// sequence in an email or a role name cannot forge a line.
func RenderText(w io.Writer, c *Changes, names map[string]string) error {
	var b strings.Builder
	esc := terminal.Escape
	change := func(ch Change, indent string) {
		switch {
		case ch.Group != nil && ch.Email == "":
			fmt.Fprintf(&b, "%s%s %s %s\n", indent, kindMark[ch.Kind], ch.Kind, esc(ch.Group.Name))
		case ch.Group != nil:
			fmt.Fprintf(&b, "%s%s %s %s (user group %s)\n", indent, kindMark[ch.Kind], ch.Kind, esc(ch.Email), esc(ch.Group.Name))
		default:
			fmt.Fprintf(&b, "%s%s %s %s\n", indent, kindMark[ch.Kind], ch.Kind, esc(ch.Email))
		}
		if len(ch.Before) > 0 {
			fmt.Fprintf(&b, "%s    before: %s\n", indent, strings.Join(terminal.EscapeAll(keyNames(ch.Before, names)), ", "))
		}
		if len(ch.After) > 0 {
			fmt.Fprintf(&b, "%s    after:  %s\n", indent, strings.Join(terminal.EscapeAll(keyNames(ch.After, names)), ", "))
		}
		if ch.Reason != "" {
			fmt.Fprintf(&b, "%s    reason: %s\n", indent, esc(ch.Reason))
		}
	}
	count := map[Kind]int{}
	for _, a := range c.Accounts {
		if len(a.Changes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "Account %s (%s):\n", esc(a.Name), esc(a.ID))
		for _, ch := range a.Changes {
			change(ch, "  ")
			count[ch.Kind]++
		}
		b.WriteString("\n")
	}
	if len(c.Withheld) > 0 {
		b.WriteString("Withheld:\n")
		for _, wh := range c.Withheld {
			fmt.Fprintf(&b, "  in %s, %s:\n", esc(accountLabel(c, wh.Change.AccountID, nil)), esc(wh.Why))
			change(wh.Change, "    ")
		}
		b.WriteString("\n")
	}
	if len(c.Drift) > 0 {
		b.WriteString("Drift (roles scimflare did not grant):\n")
		for _, d := range c.Drift {
			fmt.Fprintf(&b, "  %s %s: %s\n", esc(accountLabel(c, d.AccountID, nil)), esc(d.Email), esc(mapping.KeyName(d.Key, names)))
		}
		b.WriteString("\n")
	}
	if len(c.Identity) > 0 {
		b.WriteString("Identity problems (reported once per user; nothing is granted to an invalid address):\n")
		for _, p := range c.Identity {
			fmt.Fprintf(&b, "  %s %s (SCIM users %s): %s\n", p.Kind, esc(p.Email), strings.Join(p.UserIDs, ", "), p.Why)
		}
		b.WriteString("\n")
	}
	if len(c.GroupConflicts) > 0 {
		b.WriteString("User groups scimflare does not own:\n")
		for _, g := range c.GroupConflicts {
			fmt.Fprintf(&b, "  %s\n", esc(g.String()))
		}
		b.WriteString("\n")
	}
	if len(c.Tripped) > 0 {
		tripped := make([]string, len(c.Tripped))
		for i, id := range c.Tripped {
			tripped[i] = esc(accountLabel(c, id, nil))
		}
		fmt.Fprintf(&b, "Guard tripped: %s\n\n", strings.Join(tripped, ", "))
	}
	if !c.HasChanges() && len(c.Withheld) == 0 && len(c.Drift) == 0 {
		b.WriteString("No changes.\n")
	} else {
		migrate := ""
		if n := count[MigrateShape]; n > 0 {
			migrate = fmt.Sprintf(", %d to migrate from roles to policies", n)
		}
		groups := ""
		if n := count[CreateGroup] + count[SetGroupPolicies] + count[AddGroupMember] + count[RemoveGroupMember]; n > 0 {
			groups = fmt.Sprintf(", user groups: %d to create, %d to change, %d members to add, %d to remove",
				count[CreateGroup], count[SetGroupPolicies], count[AddGroupMember], count[RemoveGroupMember])
		}
		fmt.Fprintf(&b, "Plan: %d to add, %d to change, %d to remove, %d to expire%s%s; %d withheld; %d drift.\n",
			count[AddMember], count[UpdateRoles], count[RemoveMember], count[ExpireGrant], migrate, groups, len(c.Withheld), len(c.Drift))
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

type jsonPlan struct {
	Accounts []jsonAccount  `json:"accounts"`
	Withheld []jsonWithheld `json:"withheld"`
	Drift    []jsonDrift    `json:"drift"`
	Identity []jsonIdentity `json:"identity"`
	// GroupConflicts appear only when a user-groups account has some.
	GroupConflicts []jsonGroupConflict `json:"group_conflicts,omitempty"`
}

// jsonGroupConflict is one plan.GroupConflict.
type jsonGroupConflict struct {
	Mapping string `json:"mapping"`
	Name    string `json:"name"`
	ID      string `json:"id"`
	Why     string `json:"why"`
}

// jsonGroup names the user group of a user-group change.
type jsonGroup struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

// jsonIdentity is one plan.IdentityProblem: kind invalid_email or
// shared_email.
type jsonIdentity struct {
	Kind  string   `json:"kind"`
	Email string   `json:"email"`
	Users []string `json:"users"`
	Why   string   `json:"why"`
}

type jsonAccount struct {
	Name    string       `json:"name"`
	ID      string       `json:"id"`
	Changes []jsonChange `json:"changes"`
}

type jsonChange struct {
	Kind   Kind     `json:"kind"`
	Email  string   `json:"email"`
	Before []string `json:"before"`
	After  []string `json:"after"`
	Reason string   `json:"reason"`
	// Group is set on the user-group kinds only.
	Group *jsonGroup `json:"group,omitempty"`
}

type jsonWithheld struct {
	jsonChange
	Account string `json:"account"`
	Why     string `json:"why"`
}

type jsonDrift struct {
	Email   string `json:"email"`
	Account string `json:"account"`
	Role    string `json:"role"`
}

// RenderJSON writes the plan in SPEC.md's `plan --json` shape. Every
// account planned is listed, with an empty change list when nothing
// changes; lists are never null. accountNames (id -> name) overrides the
// names carried in c.
func RenderJSON(w io.Writer, c *Changes, names, accountNames map[string]string) error {
	conv := func(ch Change) jsonChange {
		jc := jsonChange{Kind: ch.Kind, Email: ch.Email, Before: keyNames(ch.Before, names), After: keyNames(ch.After, names), Reason: ch.Reason}
		if ch.Group != nil {
			jc.Group = &jsonGroup{Name: ch.Group.Name, ID: ch.Group.ID}
		}
		return jc
	}
	out := jsonPlan{Accounts: []jsonAccount{}, Withheld: []jsonWithheld{}, Drift: []jsonDrift{}, Identity: []jsonIdentity{}}
	for _, p := range c.Identity {
		out.Identity = append(out.Identity, jsonIdentity{Kind: p.Kind, Email: p.Email, Users: p.UserIDs, Why: p.Why})
	}
	for _, a := range c.Accounts {
		ja := jsonAccount{Name: accountLabel(c, a.ID, accountNames), ID: a.ID, Changes: []jsonChange{}}
		for _, ch := range a.Changes {
			ja.Changes = append(ja.Changes, conv(ch))
		}
		out.Accounts = append(out.Accounts, ja)
	}
	for _, wh := range c.Withheld {
		out.Withheld = append(out.Withheld, jsonWithheld{jsonChange: conv(wh.Change), Account: accountLabel(c, wh.Change.AccountID, accountNames), Why: wh.Why})
	}
	for _, d := range c.Drift {
		out.Drift = append(out.Drift, jsonDrift{Email: d.Email, Account: accountLabel(c, d.AccountID, accountNames), Role: mapping.KeyName(d.Key, names)})
	}
	for _, g := range c.GroupConflicts {
		out.GroupConflicts = append(out.GroupConflicts, jsonGroupConflict{Mapping: g.GroupKey, Name: g.Name, ID: g.GroupID, Why: g.String()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write plan as JSON: %w", err)
	}
	return nil
}
