package plan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// groupLine is a change as one comparable line: kind, group (id or key), and
// what it carries.
func groupLine(c GroupChange) string {
	switch c.Kind {
	case CreateGroup:
		return fmt.Sprintf("create %s %v", c.Name, c.Policies)
	case SetGroupPolicies:
		return fmt.Sprintf("set %s %s %v -> %v", c.GroupID, c.Name, c.PoliciesBefore, c.Policies)
	case AddGroupMember:
		g := c.GroupID
		if g == "" {
			g = "new:" + c.GroupKey
		}
		return fmt.Sprintf("add %s %s %s", g, c.Email, c.MemberID)
	case RemoveGroupMember:
		return fmt.Sprintf("remove %s %s %s", c.GroupID, c.Email, c.MemberID)
	}
	return "?"
}

func groupLines(p GroupPlan) []string {
	out := []string{}
	for _, c := range p.Changes {
		out = append(out, groupLine(c))
	}
	return out
}

func TestPlanUserGroups(t *testing.T) {
	members := map[string]AccountMemberRef{
		"ann@example.com": {MemberID: "m-ann", Status: "accepted"},
		"bob@example.com": {MemberID: "m-bob", Status: "accepted"},
		"cat@example.com": {MemberID: "m-cat", Status: "pending"},
	}
	ann, bob := GroupMemberRef{"m-ann", "ann@example.com"}, GroupMemberRef{"m-bob", "Bob@Example.com"}
	for _, tc := range []struct {
		name        string
		in          UserGroupInput
		want        []string
		waiting     []GroupWaiting
		conflicts   int
		untouchable []string // group ids no change may name
	}{
		{
			name: "new mapping: create, then add members by account member id",
			in:   UserGroupInput{Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p2", "p1", "p1"}, Members: []string{"bob@example.com", "ANN@example.com"}}}},
			want: []string{"create sf-ops [p1 p2]", "add new:ops ann@example.com m-ann", "add new:ops bob@example.com m-bob"},
		},
		{
			name: "in step: nothing to do (emails compared by identity key)",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p1"}, Members: []string{"ann@example.com", "bob@example.com"}}},
				Actual:  []ActualGroup{{ID: "g1", Name: "sf-ops", Policies: []string{"p1"}, Members: []GroupMemberRef{ann, bob}}},
				Owned:   map[string]string{"g1": "ops"},
			},
			want: []string{},
		},
		{
			name: "mapping role change of a 500-member group: exactly one PUT",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p1", "p3"}, Members: []string{"ann@example.com"}}},
				Actual:  []ActualGroup{{ID: "g1", Name: "sf-ops", Policies: []string{"p1"}, Members: []GroupMemberRef{ann}}},
				Owned:   map[string]string{"g1": "ops"},
			},
			want: []string{"set g1 sf-ops [p1] -> [p1 p3]"},
		},
		{
			name: "leaver and joiner: removals before the policy change before adds",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p0"}, Members: []string{"bob@example.com"}}},
				Actual:  []ActualGroup{{ID: "g1", Name: "sf-ops", Policies: []string{"p1"}, Members: []GroupMemberRef{ann}}},
				Owned:   map[string]string{"g1": "ops"},
			},
			want: []string{"remove g1 ann@example.com m-ann", "set g1 sf-ops [p1] -> [p0]", "add g1 bob@example.com m-bob"},
		},
		{
			name: "not yet a member, and pending when Cloudflare refuses pending members: both wait",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p1"}, Members: []string{"new@example.com", "cat@example.com"}}},
				Actual:  []ActualGroup{{ID: "g1", Name: "sf-ops", Policies: []string{"p1"}}},
				Owned:   map[string]string{"g1": "ops"},
			},
			want:    []string{},
			waiting: []GroupWaiting{{"ops", "cat@example.com", WaitPending}, {"ops", "new@example.com", WaitNotMember}},
		},
		{
			name: "pending member joins when Cloudflare allows it",
			in: UserGroupInput{
				Desired:        []DesiredGroup{{Key: "ops", Policies: []string{"p1"}, Members: []string{"cat@example.com"}}},
				Actual:         []ActualGroup{{ID: "g1", Name: "sf-ops", Policies: []string{"p1"}}},
				Owned:          map[string]string{"g1": "ops"},
				PendingMayJoin: true,
			},
			want: []string{"add g1 cat@example.com m-cat"},
		},
		{
			name: "a group of the wanted name scimflare does not own (SCIM, by hand) is never touched nor adopted",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p1"}, Members: []string{"bob@example.com"}}},
				Actual:  []ActualGroup{{ID: "scim1", Name: "sf-ops", Policies: []string{"p9"}, Members: []GroupMemberRef{ann}}},
			},
			want:        []string{},
			conflicts:   1,
			untouchable: []string{"scim1"},
		},
		{
			name: "owned group renamed by hand: one PUT names it back; an unowned twin is left alone",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p1"}, Members: []string{"ann@example.com"}}},
				Actual: []ActualGroup{
					{ID: "g1", Name: "renamed", Policies: []string{"p1"}, Members: []GroupMemberRef{ann}},
					{ID: "x", Name: "sf-ops", Members: []GroupMemberRef{bob}},
				},
				Owned: map[string]string{"g1": "ops"},
			},
			want:        []string{"set g1 sf-ops [p1] -> [p1]"},
			untouchable: []string{"x"},
		},
		{
			name: "owned group deleted by hand: created again",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p1"}, Members: []string{"ann@example.com"}}},
				Owned:   map[string]string{"gone": "ops"},
			},
			want: []string{"create sf-ops [p1]", "add new:ops ann@example.com m-ann"},
		},
		{
			name: "mapping removed: its owned group is emptied so it grants nobody",
			in: UserGroupInput{
				Actual: []ActualGroup{{ID: "g1", Name: "sf-ops", Policies: []string{"p1"}, Members: []GroupMemberRef{bob, ann}}},
				Owned:  map[string]string{"g1": "ops"},
			},
			want: []string{"remove g1 ann@example.com m-ann", "remove g1 bob@example.com m-bob"},
		},
		{
			name: "two owned groups for one key: the lowest id is the group, the other is emptied",
			in: UserGroupInput{
				Desired: []DesiredGroup{{Key: "ops", Policies: []string{"p1"}, Members: []string{"ann@example.com"}}},
				Actual: []ActualGroup{
					{ID: "g2", Name: "sf-ops", Policies: []string{"p1"}, Members: []GroupMemberRef{ann}},
					{ID: "g1", Name: "sf-ops", Policies: []string{"p1"}, Members: []GroupMemberRef{ann}},
				},
				Owned: map[string]string{"g1": "ops", "g2": "ops"},
			},
			want: []string{"remove g2 ann@example.com m-ann"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.AccountID, tc.in.Prefix = "acct", "sf-"
			if tc.in.Members == nil {
				tc.in.Members = members
			}
			p := PlanUserGroups(tc.in)
			if got := groupLines(p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("changes:\n  got  %q\n  want %q", got, tc.want)
			}
			if !reflect.DeepEqual(p.Waiting, tc.waiting) {
				t.Errorf("waiting = %+v, want %+v", p.Waiting, tc.waiting)
			}
			if len(p.Conflicts) != tc.conflicts {
				t.Errorf("conflicts = %+v, want %d", p.Conflicts, tc.conflicts)
			}
			sets := map[string]int{}
			for _, c := range p.Changes {
				if c.AccountID != "acct" {
					t.Errorf("change %s has account %q", groupLine(c), c.AccountID)
				}
				for _, id := range tc.untouchable {
					if c.GroupID == id {
						t.Errorf("change %s touches group %s scimflare does not own", groupLine(c), id)
					}
				}
				if c.GroupID != "" {
					if _, owned := tc.in.Owned[c.GroupID]; !owned {
						t.Errorf("change %s names a group outside the ledger", groupLine(c))
					}
				}
				if c.Kind == SetGroupPolicies {
					if sets[c.GroupID]++; sets[c.GroupID] > 1 {
						t.Errorf("group %s gets more than one set_group_policies", c.GroupID)
					}
				}
			}
		})
	}
}

// TestGroupConflictIsOneSentence: the conflict names the group, says who
// may own it and what to do, in one sentence.
func TestGroupConflictIsOneSentence(t *testing.T) {
	msg := GroupConflict{GroupKey: "ops", Name: "sf-ops", GroupID: "scim1"}.String()
	for _, want := range []string{`"sf-ops"`, "scim1", "does not own", `"ops"`, "prefix"} {
		if !strings.Contains(msg, want) {
			t.Errorf("conflict %q does not say %s", msg, want)
		}
	}
	if strings.Count(msg, ". ") > 0 || strings.Contains(msg, "\n") {
		t.Errorf("conflict is not one sentence: %q", msg)
	}
}
