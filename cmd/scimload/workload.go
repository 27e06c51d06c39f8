package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Workload is the data set a run pushes: who exists and who is in which
// group. It is a pure function of the sizes and the prefix, so that a second
// scimload run (or a test) can tell what an import produced.
type Workload struct {
	Prefix      string
	Users       int
	Groups      int
	Memberships int

	bigCount   int   // members of group 0
	groupCount []int // members of each group
	groupStart []int // first user index of each group (members are consecutive, mod Users)
}

// NewWorkload lays out the memberships: group 0 is the biggest group, with
// min(users, memberships) members; the rest are spread evenly over the
// other groups, each a run of consecutive users starting at a different
// offset so that groups overlap the way real directories do.
func NewWorkload(prefix string, users, groups, memberships int) (*Workload, error) {
	switch {
	case users < 1:
		return nil, errors.New("-users must be at least 1")
	case groups < 1:
		return nil, errors.New("-groups must be at least 1")
	case memberships < 0:
		return nil, errors.New("-memberships must not be negative")
	case int64(memberships) > int64(users)*int64(groups):
		return nil, fmt.Errorf("-memberships %d is more than users × groups (%d): a user is in a group at most once", memberships, int64(users)*int64(groups))
	}
	w := &Workload{Prefix: prefix, Users: users, Groups: groups, Memberships: memberships,
		groupCount: make([]int, groups), groupStart: make([]int, groups)}
	w.bigCount = min(users, memberships)
	w.groupCount[0] = w.bigCount
	rest := memberships - w.bigCount
	if groups > 1 {
		per, extra := rest/(groups-1), rest%(groups-1)
		for g := 1; g < groups; g++ {
			w.groupCount[g] = per
			if g-1 < extra {
				w.groupCount[g]++
			}
			w.groupStart[g] = int(int64(g-1) * int64(users) / int64(groups-1))
		}
	}
	return w, nil
}

// UserName is the userName of user i.
func (w *Workload) UserName(i int) string {
	return fmt.Sprintf("%s-user-%07d@example.com", w.Prefix, i)
}

// GroupName is the displayName of group g.
func (w *Workload) GroupName(g int) string { return fmt.Sprintf("%s-group-%05d", w.Prefix, g) }

// BigGroup is the index of the biggest group.
func (w *Workload) BigGroup() int { return 0 }

// BigCount is the number of members the import puts in the biggest group.
func (w *Workload) BigCount() int { return w.bigCount }

// MembersOf calls fn for each user the import puts in group g, in order.
func (w *Workload) MembersOf(g int, fn func(user int)) {
	for k := 0; k < w.groupCount[g]; k++ {
		fn((w.groupStart[g] + k) % w.Users)
	}
}

// GroupSize is the number of members the import puts in group g.
func (w *Workload) GroupSize(g int) int { return w.groupCount[g] }

// model is the state the server must hold after the phases run so far:
// the ids it assigned, which users are active and who is in which group.
// Only the planners change it, before the requests go out, so the requests
// of one user are the only ones that touch that user's edges (see shard).
type model struct {
	w        *Workload
	userIDs  []string
	groupIDs []string
	active   []bool
	groupsOf [][]int32 // per user, the groups it is a direct member of
}

func newModel(w *Workload) *model {
	m := &model{w: w, userIDs: make([]string, w.Users), groupIDs: make([]string, w.Groups),
		active: make([]bool, w.Users), groupsOf: make([][]int32, w.Users)}
	for i := range m.active {
		m.active[i] = true
	}
	for g := 0; g < w.Groups; g++ {
		w.MembersOf(g, func(u int) { m.groupsOf[u] = append(m.groupsOf[u], int32(g)) })
	}
	return m
}

// Members returns the expected members of every group, by user index.
func (m *model) Members() [][]int {
	out := make([][]int, m.w.Groups)
	for u, gs := range m.groupsOf {
		for _, g := range gs {
			out[g] = append(out[g], u)
		}
	}
	return out
}

// opKind names one kind of request; the report groups latencies by it.
type opKind string

const (
	kindCreateUser     opKind = "create_user"
	kindCreateGroup    opKind = "create_group"
	kindAddMembers     opKind = "add_members"
	kindUpdateUser     opKind = "update_user"
	kindDeactivate     opKind = "deactivate_user"
	kindMoveRemove     opKind = "move_remove_member"
	kindMoveAdd        opKind = "move_add_member"
	kindUserNameEq     opKind = "username_eq"
	kindGetGroupNoMem  opKind = "get_group_excl_members"
	kindBigRemove      opKind = "big_group_remove_one"
	kindBigAdd         opKind = "big_group_add_one"
	kindDiscoverUser   opKind = "discover_user"
	kindDiscoverGroups opKind = "discover_group"
)

// step is one request of a unit.
type step struct {
	kind  opKind
	user  int // user index, -1 if none
	group int // group index, -1 if none
	// For kindUpdateUser: which attribute and its new value.
	attr, value string
}

// unit is a sequence of requests that must run in order (a member move is
// remove then add). Units of the same user run on the same worker, in plan
// order, so that the server sees each user's changes in the order the
// model applied them.
type unit struct {
	user  int
	steps []step
}

// planChurn draws churn units until they hold at least ops requests: half
// attribute updates, a fifth deactivations, the rest member moves between
// two groups other than the biggest. It applies each unit to m as it
// draws it.
func planChurn(m *model, rng *rand.Rand, ops int) []unit {
	w := m.w
	var units []unit
	n := 0
	for seq := 0; n < ops; seq++ {
		u := rng.IntN(w.Users)
		r := rng.IntN(10)
		var steps []step
		if r < 3 && w.Groups > 2 {
			steps, _ = m.planMove(rng, u)
		}
		if steps == nil && r < 5 && m.active[u] {
			m.active[u] = false
			steps = []step{{kind: kindDeactivate, user: u, group: -1}}
		}
		if steps == nil {
			attr := "displayName"
			if seq%2 == 1 {
				attr = "name.familyName"
			}
			steps = []step{{kind: kindUpdateUser, user: u, group: -1, attr: attr, value: fmt.Sprintf("Churned %d", seq)}}
		}
		un := unit{user: u, steps: steps}
		units = append(units, un)
		n += len(un.steps)
	}
	return units
}

// planMove moves user u from one of its groups to one it is not in, never
// touching the biggest group.
func (m *model) planMove(rng *rand.Rand, u int) ([]step, bool) {
	big := int32(m.w.BigGroup())
	gs := m.groupsOf[u]
	var from []int
	for i, g := range gs {
		if g != big {
			from = append(from, i)
		}
	}
	if len(from) == 0 {
		return nil, false
	}
	fi := from[rng.IntN(len(from))]
	for try := 0; try < 16; try++ {
		to := int32(1 + rng.IntN(m.w.Groups-1))
		if to == big || containsInt32(gs, to) {
			continue
		}
		old := gs[fi]
		gs[fi] = to
		return []step{
			{kind: kindMoveRemove, user: u, group: int(old)},
			{kind: kindMoveAdd, user: u, group: int(to)},
		}, true
	}
	return nil, false
}

func containsInt32(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// planLookups returns the lookup phase as three batches run one after the
// other, each about a third of ops: userName eq filters, GETs of the
// biggest group without members, and one-member remove+add pairs on the
// biggest group. The pairs leave the model as it was.
func planLookups(m *model, rng *rand.Rand, ops int) [][]unit {
	w := m.w
	per := max(ops/3, 1)
	eq := make([]unit, per)
	for i := range eq {
		u := rng.IntN(w.Users)
		eq[i] = unit{user: u, steps: []step{{kind: kindUserNameEq, user: u, group: -1}}}
	}
	get := make([]unit, per)
	for i := range get {
		get[i] = unit{user: i, steps: []step{{kind: kindGetGroupNoMem, user: -1, group: w.BigGroup()}}}
	}
	batches := [][]unit{eq, get}
	if w.BigCount() > 0 {
		pairs := make([]unit, max(per/2, 1))
		for i := range pairs {
			u := rng.IntN(w.BigCount())
			pairs[i] = unit{user: u, steps: []step{
				{kind: kindBigRemove, user: u, group: w.BigGroup()},
				{kind: kindBigAdd, user: u, group: w.BigGroup()},
			}}
		}
		batches = append(batches, pairs)
	}
	return batches
}
