// User-groups mode (accounts[].model: user_groups): each standing mapping
// of such an account is one Cloudflare user group that scimflare creates,
// names (accounts[].user_group_prefix + the mapping's IdP group) and owns;
// the mapping's policies are set on the group and IdP group membership
// becomes group membership. The member plan of the account keeps what is
// per member: the invitation (a member with no policies of its own),
// temporary grants (ttl mappings, `grant --for`), and the removal of a
// member scimflare invited once nothing wants it.
//
// Groups are read in a full run (every group's name, the members of owned
// groups) and kept in memory; targeted and expiry runs plan against that
// copy, touching only the memberships they change. A run after a restart
// lists again.

package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	gosync "sync"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// userGroupAPI is the slice of the Cloudflare client user-groups mode
// uses; *cloudflare.Client satisfies it.
type userGroupAPI interface {
	ListUserGroups(ctx context.Context, accountID string) ([]cloudflare.UserGroup, error)
	CreateUserGroup(ctx context.Context, accountID, name string, policies []cloudflare.Policy) (cloudflare.UserGroup, error)
	UpdateUserGroup(ctx context.Context, accountID, groupID, name string, policies []cloudflare.Policy) (cloudflare.UserGroup, error)
	ListUserGroupMembers(ctx context.Context, accountID, groupID string) ([]cloudflare.GroupMember, error)
	AddUserGroupMembers(ctx context.Context, accountID, groupID string, memberIDs []string) error
	RemoveUserGroupMember(ctx context.Context, accountID, groupID, memberID string) error
	InviteMemberWithoutGrants(ctx context.Context, accountID, email string) (cloudflare.Member, error)
	ClearMemberGrants(ctx context.Context, accountID, memberID string) (cloudflare.Member, error)
}

// userGroupCache holds, per account, the user groups the last listing
// showed (owned ones with their members), and whether Cloudflare refused
// a pending member.
type userGroupCache struct {
	mu             gosync.Mutex
	groups         map[string][]plan.ActualGroup
	pendingRefused map[string]bool
}

func cloneGroups(gs []plan.ActualGroup) []plan.ActualGroup {
	out := make([]plan.ActualGroup, len(gs))
	for i, g := range gs {
		out[i] = plan.ActualGroup{ID: g.ID, Name: g.Name, Policies: slices.Clone(g.Policies), Members: slices.Clone(g.Members)}
	}
	return out
}

func (c *userGroupCache) get(accountID string) ([]plan.ActualGroup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, ok := c.groups[accountID]
	return cloneGroups(gs), ok
}

func (c *userGroupCache) put(accountID string, gs []plan.ActualGroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil {
		c.groups = map[string][]plan.ActualGroup{}
	}
	c.groups[accountID] = cloneGroups(gs)
}

// edit changes the cached group id of accountID with fn (a new group when
// none has that id), if the account is cached.
func (c *userGroupCache) edit(accountID, groupID string, fn func(g *plan.ActualGroup)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs, ok := c.groups[accountID]
	if !ok {
		return
	}
	for i := range gs {
		if gs[i].ID == groupID {
			fn(&gs[i])
			return
		}
	}
	g := plan.ActualGroup{ID: groupID}
	fn(&g)
	c.groups[accountID] = append(gs, g)
}

func (c *userGroupCache) refused(accountID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pendingRefused[accountID]
}

func (c *userGroupCache) setRefused(accountID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pendingRefused == nil {
		c.pendingRefused = map[string]bool{}
	}
	c.pendingRefused[accountID] = true
}

// ugAccount is what one run knows about a user-groups account.
type ugAccount struct {
	account mapping.Account
	prefix  string
	// owned: group id -> mapping key, from the state (and intents whose
	// group the listing shows).
	owned   map[string]string
	groups  []plan.ActualGroup
	desired []plan.DesiredGroup
	why     map[string]plan.GroupReasons
	// created: mapping key -> id of the group this run created.
	created map[string]string
	// handAdded are members a full listing found in an owned group that
	// the previous listing and scimflare's own adds did not put there.
	handAdded []handAdded
	plan      plan.GroupPlan
}

func (reg *registry) userGroupState() (store.UserGroupState, error) {
	st, ok := reg.state.(store.UserGroupState)
	if !ok {
		return nil, errors.New("the state backend cannot record owned user groups (accounts[].model: user_groups)")
	}
	return st, nil
}

func (reg *registry) userGroupClient() (userGroupAPI, bool) {
	if reg.cf == nil {
		return nil, false
	}
	api, ok := reg.cf.(userGroupAPI)
	return api, ok
}

// readUserGroups reads, for every user-groups account, the ownership
// records and the groups: listed in a full run (or when nothing is cached
// yet), else from the copy the last listing left. Part of readAndPlan: a
// failed read aborts the run before any change.
func (reg *registry) readUserGroups(ctx context.Context) error {
	reg.ug = map[string]*ugAccount{}
	// What the listings showed is kept only once every account is read:
	// a run that stops half-way (a failed read, or a full run that gives
	// way to an urgent one) must leave the copy as the last complete run
	// left it, or the next run compares its listing with this one and
	// misses the members added by hand in between (drift).
	type listedAccount struct {
		a      mapping.Account
		st     store.UserGroupState
		groups []plan.ActualGroup
		adopt  []store.OwnedUserGroup
	}
	var keep []listedAccount
	for _, a := range reg.accounts {
		st, err := reg.userGroupState()
		if err != nil {
			if !a.UserGroups() {
				continue
			}
			return err
		}
		recs, err := st.OwnedUserGroups(a.ID)
		if err != nil {
			return fmt.Errorf("read the user groups scimflare owns in account %s: %w", a.Name, err)
		}
		if !a.UserGroups() && len(recs) == 0 {
			continue
		}
		// An account that left user-groups mode still has the groups
		// scimflare made: they are read and emptied, so that nobody keeps
		// access through them (its mappings are granted per member now).
		ua := &ugAccount{account: a, prefix: a.GroupPrefix(), owned: map[string]string{}, created: map[string]string{}}
		reg.ug[a.ID] = ua
		api, live := reg.userGroupClient()
		cached, ok := reg.ugroups.get(a.ID)
		list := live && (reg.req.kind == fullRun || reg.req.live || !ok)
		if !list {
			ua.groups = cached
			ownedFrom(ua, recs, nil)
			continue
		}
		lctx := ctx
		if reg.req.kind == targetedRun || reg.req.kind == expiryRun {
			// No copy yet: the urgent run's own read (see Read).
			lctx = cloudflare.Urgent(ctx)
		}
		listed, err := api.ListUserGroups(lctx, a.ID)
		if err != nil {
			return fmt.Errorf("list the user groups of account %s: %w", a.Name, err)
		}
		adopt := ownedFrom(ua, recs, listed)
		for _, g := range listed {
			ag := plan.ActualGroup{ID: g.ID, Name: g.Name, Policies: keysOf(cloudflare.Member{Policies: g.Policies})}
			if _, mine := ua.owned[g.ID]; mine {
				ms, err := api.ListUserGroupMembers(lctx, a.ID, g.ID)
				if err != nil {
					return fmt.Errorf("list the members of user group %s in account %s: %w", g.Name, a.Name, err)
				}
				for _, m := range ms {
					ag.Members = append(ag.Members, plan.GroupMemberRef{MemberID: m.ID, Email: m.Email})
				}
			}
			if ok {
				ua.handAdded = append(ua.handAdded, membersAddedOutside(cached, ag)...)
			}
			ua.groups = append(ua.groups, ag)
		}
		if reg.req.dry {
			// plan, explain, report: the copy stays what the last real
			// listing and scimflare's own changes left, so that a member
			// added by hand since is still found (drift) by the next run.
			continue
		}
		keep = append(keep, listedAccount{a: a, st: st, groups: ua.groups, adopt: adopt})
	}
	for _, k := range keep {
		reg.ugroups.put(k.a.ID, k.groups)
		for _, rec := range k.adopt {
			// The group an earlier create made, whose answer was lost.
			if err := k.st.PutOwnedUserGroup(rec); err != nil {
				return fmt.Errorf("record user group %s of account %s as scimflare's: %w", rec.Name, k.a.Name, err)
			}
		}
	}
	return nil
}

type handAdded struct {
	groupID string
	email   string
}

// membersAddedOutside compares an owned group's listing with the copy the
// last listing (and every change since) left: who joined it outside
// scimflare.
func membersAddedOutside(prev []plan.ActualGroup, g plan.ActualGroup) []handAdded {
	var before *plan.ActualGroup
	for i := range prev {
		if prev[i].ID == g.ID {
			before = &prev[i]
		}
	}
	if before == nil {
		return nil
	}
	had := make(map[string]bool, len(before.Members))
	for _, o := range before.Members {
		had[o.MemberID] = true
	}
	var out []handAdded
	for _, m := range g.Members {
		if !had[m.MemberID] {
			out = append(out, handAdded{groupID: g.ID, email: identity.Key(m.Email)})
		}
	}
	return out
}

// ownedFrom fills ua.owned from the records; an intent (a create whose
// answer never came) owns the one listed group of its name no record
// claims, and is returned to be recorded.
func ownedFrom(ua *ugAccount, recs []store.OwnedUserGroup, listed []cloudflare.UserGroup) []store.OwnedUserGroup {
	claimed := map[string]bool{}
	for _, r := range recs {
		if r.GroupID != "" {
			ua.owned[r.GroupID] = r.Key
			claimed[r.GroupID] = true
		}
	}
	var adopt []store.OwnedUserGroup
	for _, r := range recs {
		if r.GroupID != "" {
			continue
		}
		var match []string
		for _, g := range listed {
			if g.Name == r.Name && !claimed[g.ID] {
				match = append(match, g.ID)
			}
		}
		if len(match) == 1 {
			ua.owned[match[0]] = r.Key
			claimed[match[0]] = true
			r.GroupID = match[0]
			adopt = append(adopt, r)
		}
	}
	return adopt
}

// userGroupInput splits a user-groups account's desired state: standing
// mappings become the desired groups (their policies, their members), and
// the member plan keeps only per-member grants, plus whom a group wants
// (so that they are invited and kept).
func (rn *run) userGroupInput(in *plan.AccountInput, a mapping.Account) {
	ua := rn.ug[a.ID]
	if ua == nil {
		return
	}
	if !a.UserGroups() {
		// Left user-groups mode: no group is wanted; the member plan
		// grants everything per member, before the groups empty.
		ua.desired, ua.why = nil, map[string]plan.GroupReasons{}
		in.UserGroups = heldGroups(ua)
		return
	}
	groupOf := map[int]string{} // mapping index -> key
	byKey := map[string]*plan.DesiredGroup{}
	ua.why = map[string]plan.GroupReasons{}
	for _, m := range rn.res.Mappings {
		if m.AccountID != a.ID || !m.Mapping.HeldAsGroup() {
			continue
		}
		key := m.Mapping.UserGroupKey()
		groupOf[m.Index] = key
		dg := byKey[key]
		if dg == nil {
			dg = &plan.DesiredGroup{Key: key}
			byKey[key] = dg
			ua.why[key] = plan.GroupReasons{
				Group:   fmt.Sprintf("user group for %s (mappings[%d])", m.GroupLabel(), m.Index),
				Members: map[string]string{},
			}
		}
		dg.Policies = append(dg.Policies, m.Keys...)
	}
	own := plan.NewWanted(in.Desired.Len())
	keep := map[string]string{}
	held := heldGroups(ua)
	for email, dm := range in.Desired.All() {
		mine := plan.DesiredMember{Email: dm.Email}
		act, present := in.Actual.Get(identity.Key(email))
		for _, w := range dm.Keys {
			k := w.Key
			for _, r := range w.Reasons {
				key, viaGroup := groupOf[r.MappingIndex]
				if r.Kind != plan.ReasonMapping || !viaGroup {
					mine.Keys.Add(k, r)
					continue
				}
				if present && holdsOwn(act.Keys, in.Equivalent, k) && !holdsThroughGroup(held, identity.Key(email), k) {
					// Held as the member's own (the account was on
					// member_policies, or the group is not there yet):
					// it stays until the group gives it, so switching
					// models never dips access.
					mine.Keys.Add(k, r)
				}
				name := plan.UserGroupName(ua.prefix, key)
				if why := ua.why[key]; why.Members[email] == "" {
					why.Members[email] = r.String() + " through user group " + name
					byKey[key].Members = append(byKey[key].Members, email)
				}
				if keep[email] == "" {
					keep[email] = "to join user group " + name + ": " + r.String()
				}
			}
		}
		own.Set(email, mine)
	}
	in.Desired, in.KeepMember = own, keep
	ua.desired = nil
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		ua.desired = append(ua.desired, *byKey[k])
	}
	in.UserGroups = heldGroups(ua)
	for _, h := range in.UserGroups {
		// The guard's percent base counts what groups grant, as the
		// ledger counts what members hold.
		in.ManagedGrants += len(h.Keys) * len(h.Members)
	}
}

// holdsOwn reports whether the member's own keys give k: as the policy,
// or as a legacy role whose equivalent policy k is (an account leaving
// grant_shape: roles for user groups converts and moves in one step).
func holdsOwn(keys []string, equivalent map[string]string, k string) bool {
	return slices.ContainsFunc(keys, func(x string) bool { return x == k || equivalent[x] == k })
}

// holdsThroughGroup reports whether email holds key k through an owned
// group now.
func holdsThroughGroup(held map[string]plan.HeldGroup, email, k string) bool {
	for _, h := range held {
		if slices.Contains(h.Keys, k) && h.Has(email) {
			return true
		}
	}
	return false
}

// heldGroups are the owned groups as the policies see them.
func heldGroups(ua *ugAccount) map[string]plan.HeldGroup {
	out := map[string]plan.HeldGroup{}
	for _, g := range ua.groups {
		if _, mine := ua.owned[g.ID]; !mine {
			continue
		}
		members := make([]string, len(g.Members))
		for i, m := range g.Members {
			members[i] = identity.Key(m.Email)
		}
		out[g.ID] = plan.NewHeldGroup(slices.Clone(g.Policies), members)
	}
	return out
}

// planUserGroups adds each user-groups account's group changes to c, after
// its member changes: an invitation comes before the member joins, and a
// leaver scimflare invited is removed from the account (which takes it out
// of every group) before its group removals, which then cost nothing.
func (rn *run) planUserGroups(c *plan.Changes) {
	for i, ac := range c.Accounts {
		ua := rn.ug[ac.ID]
		if ua == nil {
			continue
		}
		in := rn.inputs[rn.byID[ac.ID]]
		members := map[string]plan.AccountMemberRef{}
		for k, m := range in.Actual.All() {
			members[k] = plan.AccountMemberRef{MemberID: m.MemberID, Status: m.Status}
		}
		actual := cloneGroups(ua.groups)
		if rn.scope != nil {
			// A targeted run plans its people only: everyone else's
			// membership is neither desired nor listed here.
			for j := range actual {
				actual[j].Members = slices.DeleteFunc(actual[j].Members, func(m plan.GroupMemberRef) bool { return !rn.scope[identity.Key(m.Email)] })
			}
		}
		refused := rn.r.ugroups.refused(ac.ID)
		gp := plan.PlanUserGroups(plan.UserGroupInput{
			AccountID: ac.ID, Prefix: ua.prefix, Desired: ua.desired, Actual: actual, Owned: ua.owned,
			Members: members, PendingMayJoin: !refused,
		})
		invited := map[string]bool{}
		for _, ch := range ac.Changes {
			if ch.Kind == plan.AddMember {
				invited[identity.Key(ch.Email)] = true
			}
		}
		policies := map[string][]string{}
		for _, d := range ua.desired {
			policies[d.Key] = d.Policies
		}
		var waiting []plan.GroupWaiting
		for _, w := range gp.Waiting {
			if w.Why == plan.WaitNotMember && invited[w.Email] && !refused {
				// Invited in this run: it joins right after, by the id the
				// invitation answers with.
				gp.Changes = append(gp.Changes, plan.GroupChange{Kind: plan.AddGroupMember, AccountID: ac.ID, GroupKey: w.GroupKey,
					GroupID: groupIDOf(gp, ua, w.GroupKey), Name: plan.UserGroupName(ua.prefix, w.GroupKey),
					Policies: sortedSet(policies[w.GroupKey]), Email: w.Email})
				continue
			}
			waiting = append(waiting, w)
		}
		gp.Waiting = waiting
		ua.plan = gp
		// Members someone put in an owned group by hand are drift: the
		// group is scimflare's, so the plan also takes out whom no mapping
		// wants there.
		wanted := map[string]map[string]bool{}
		for _, d := range ua.desired {
			wanted[d.Key] = map[string]bool{}
			for _, e := range d.Members {
				wanted[d.Key][identity.Key(e)] = true
			}
		}
		for _, h := range ua.handAdded {
			if wanted[ua.owned[h.groupID]][h.email] {
				continue
			}
			for _, g := range ua.groups {
				if g.ID != h.groupID {
					continue
				}
				for _, k := range g.Policies {
					c.Drift = append(c.Drift, plan.Drift{AccountID: ac.ID, Email: h.email, Key: k})
				}
			}
		}
		gcs := ownCoversGroupRemovals(plan.GroupChanges(gp, ua.why), in.Actual, c.Accounts[i].Changes)
		for _, ch := range gcs {
			if ch.Kind == plan.SetGroupPolicies && ch.Group != nil {
				// A targeted run planned against its people only: the
				// guard counts a dropped policy for everyone in the group.
				if h, ok := in.UserGroups[ch.Group.ID]; ok {
					ch.Group.Reach = len(h.Members)
				}
			}
		}
		c.Accounts[i].Changes = append(c.Accounts[i].Changes, gcs...)
		c.GroupConflicts = append(c.GroupConflicts, gp.Conflicts...)
	}
}

// ownCoversGroupRemovals adjusts group-member removals to what the member
// holds of its own (an account leaving user-groups mode grants per member
// first): a key the member holds itself, or that its own write earlier in
// this run grants, is no access lost, so not a removal for the guard
// (Removed keeps only the keys really lost). applyGroup checks before the
// removal that the member does hold those keys by then.
func ownCoversGroupRemovals(gcs []plan.Change, actual *plan.Actuals, own []plan.Change) []plan.Change {
	adding := map[string][]string{}
	for _, ch := range own {
		if len(ch.Added) > 0 {
			k := identity.Key(ch.Email)
			adding[k] = append(adding[k], ch.Added...)
		}
	}
	out := gcs[:0]
	for _, ch := range gcs {
		if ch.Kind != plan.RemoveGroupMember || len(ch.Removed) == 0 {
			out = append(out, ch)
			continue
		}
		email := identity.Key(ch.Email)
		act, _ := actual.Get(email)
		held := act.Keys
		var lost []string
		for _, k := range ch.Removed {
			if !slices.Contains(held, k) && !slices.Contains(adding[email], k) {
				lost = append(lost, k)
			}
		}
		ch.Removed = lost
		out = append(out, ch)
	}
	return out
}

// groupIDOf is the owned group of key, "" when this plan creates it.
func groupIDOf(gp plan.GroupPlan, ua *ugAccount, key string) string {
	for _, ch := range gp.Changes {
		if ch.GroupKey == key && ch.GroupID != "" {
			return ch.GroupID
		}
	}
	for id, k := range ua.owned {
		if k == key {
			for _, g := range ua.groups {
				if g.ID == id {
					return id
				}
			}
		}
	}
	return ""
}

// policiesOf turns policy keys into what the user-group API takes.
func policiesOf(keys []string) ([]cloudflare.Policy, error) {
	roles, policies, err := shapeOf(keys)
	if err != nil {
		return nil, err
	}
	if len(roles) > 0 {
		return nil, errors.New("a user group takes policies only, and a legacy role was planned for it")
	}
	return policies, nil
}

// applyGroup makes one user-group change and records it. Adds wait in
// rn.groupAdds until flushGroupAdds sends each group's in one request.
func (reg *registry) applyGroup(ctx context.Context, ch plan.Change) {
	ua := reg.ug[ch.AccountID]
	api, ok := reg.userGroupClient()
	if ua == nil || !ok {
		reg.fail(ch, errors.New("user-group change on an account without user groups or without a client that can write them"))
		return
	}
	if reg.stopped != nil {
		reg.fail(ch, reg.stopped)
		return
	}
	st, err := reg.userGroupState()
	if err != nil {
		reg.fail(ch, err)
		return
	}
	name := ch.Group.Name
	switch ch.Kind {
	case plan.CreateGroup:
		intent := store.OwnedUserGroup{AccountID: ch.AccountID, Key: ch.Group.Key, Name: name, UpdatedAt: reg.clock()}
		if err := st.PutOwnedUserGroup(intent); err != nil {
			reg.stopped = fmt.Errorf("%w: create user group %s: %w", errStateRefused, name, err)
			reg.fail(ch, reg.stopped)
			return
		}
		policies, err := policiesOf(ch.After)
		if err != nil {
			reg.fail(ch, err)
			return
		}
		g, err := api.CreateUserGroup(ctx, ch.AccountID, name, policies)
		if err != nil {
			var refused *cloudflare.APIError
			if errors.As(err, &refused) && refused.Status >= 400 && refused.Status < 500 && refused.Status != http.StatusTooManyRequests {
				// Refused: no group was made, so no intent may later claim
				// a group of that name someone else makes.
				if derr := st.DeleteOwnedUserGroup(ch.AccountID, ch.Group.Key); derr != nil {
					reg.log.Error("cannot take back the intent of a refused group create", "group", name, "error", derr)
				}
			}
			reg.fail(ch, reg.groupError(name, err))
			return
		}
		ua.created[ch.Group.Key] = g.ID
		ua.owned[g.ID] = ch.Group.Key
		ch.Group.ID = g.ID
		rec := intent
		rec.GroupID, rec.UpdatedAt = g.ID, reg.clock()
		if err := st.PutOwnedUserGroup(rec, reg.groupAudit(ch)); err != nil {
			reg.stopped = fmt.Errorf("user group %s created in Cloudflare but not recorded in the state; no further change is applied: %w", name, err)
			reg.fail(ch, reg.stopped)
			return
		}
		reg.ugroups.edit(ch.AccountID, g.ID, func(ag *plan.ActualGroup) { ag.Name, ag.Policies = name, slices.Clone(ch.After) })
		reg.groupApplied(ch)
	case plan.SetGroupPolicies:
		policies, err := policiesOf(ch.After)
		if err != nil {
			reg.fail(ch, err)
			return
		}
		if err := reg.fence(ch); err != nil {
			reg.fail(ch, err)
			return
		}
		if _, err := api.UpdateUserGroup(ctx, ch.AccountID, ch.Group.ID, name, policies); err != nil {
			reg.fail(ch, reg.groupError(name, err))
			return
		}
		if err := reg.state.AppendAudit(reg.groupAudit(ch)); err != nil {
			reg.stopped = fmt.Errorf("%w: %w", errStateRefused, err)
		}
		reg.ugroups.edit(ch.AccountID, ch.Group.ID, func(ag *plan.ActualGroup) { ag.Name, ag.Policies = name, slices.Clone(ch.After) })
		reg.groupApplied(ch)
	case plan.AddGroupMember:
		reg.queueGroupAdd(ctx, ua, ch)
	case plan.RemoveGroupMember:
		in := &reg.inputs[reg.byID[ch.AccountID]]
		act, present := in.Actual.Get(identity.Key(ch.Email))
		if !present || act.MemberID != ch.MemberID {
			// Removed from the account in this run: that took it out of
			// every group already. The member DELETE counted no key, so
			// the rolling window counts what the group gave here.
			reg.stampRemovals(ch)
			reg.ugroups.edit(ch.AccountID, ch.Group.ID, func(ag *plan.ActualGroup) { dropGroupMember(ag, ch.MemberID) })
			return
		}
		for _, k := range ch.Before {
			if !slices.Contains(ch.Removed, k) && !slices.Contains(act.Keys, k) {
				// Planned as no loss because the member's own write was
				// to grant k first; that write did not happen.
				reg.fail(ch, fmt.Errorf("%s stays in user group %s: its own grant of what the group gives was not applied", ch.Email, name))
				return
			}
		}
		if err := reg.fence(ch); err != nil {
			reg.fail(ch, err)
			return
		}
		err := api.RemoveUserGroupMember(ctx, ch.AccountID, ch.Group.ID, ch.MemberID)
		if err != nil && !errors.Is(err, cloudflare.ErrNotFound) {
			reg.fail(ch, reg.groupError(name, err))
			return
		}
		if err := reg.state.AppendAudit(reg.groupAudit(ch)); err != nil {
			reg.stopped = fmt.Errorf("%w: %w", errStateRefused, err)
		}
		reg.ugroups.edit(ch.AccountID, ch.Group.ID, func(ag *plan.ActualGroup) { dropGroupMember(ag, ch.MemberID) })
		reg.groupApplied(ch)
	}
}

func dropGroupMember(ag *plan.ActualGroup, memberID string) {
	ag.Members = slices.DeleteFunc(ag.Members, func(m plan.GroupMemberRef) bool { return m.MemberID == memberID })
}

// fence proves the term before a write no intent commit precedes.
func (reg *registry) fence(ch plan.Change) error {
	if f, ok := reg.state.(Fencer); ok {
		if err := f.Fence(); err != nil {
			return fmt.Errorf("%w: %s %s: %w", errStateRefused, ch.Kind, ch.Group.Name, err)
		}
	}
	return nil
}

// groupError puts a refused group write in one sentence.
func (reg *registry) groupError(name string, err error) error {
	if errors.Is(err, cloudflare.ErrGroupNotManageable) {
		return fmt.Errorf("user group %s is managed by Cloudflare's own SCIM provisioning, which the API does not let scimflare change; remove the mapping or the IdP's provisioning of that group: %w", name, err)
	}
	return err
}

// queueGroupAdd resolves what an add needs from what the run did so far
// (the group it created, the member it invited) and queues it.
func (reg *registry) queueGroupAdd(ctx context.Context, ua *ugAccount, ch plan.Change) {
	if ch.Group.ID == "" {
		ch.Group.ID = ua.created[ch.Group.Key]
	}
	in := &reg.inputs[reg.byID[ch.AccountID]]
	act, present := in.Actual.Get(identity.Key(ch.Email))
	if ch.MemberID == "" && present {
		ch.MemberID = act.MemberID
	}
	switch {
	case ch.Group.ID == "":
		reg.fail(ch, fmt.Errorf("user group %s was not created, so %s cannot join it yet", ch.Group.Name, ch.Email))
		return
	case ch.MemberID == "":
		// The invitation failed or was withheld: the next run adds.
		return
	case act.Status == "pending" && reg.ugroups.refused(ch.AccountID):
		reg.logWaiting(ch)
		return
	}
	reg.groupAdds = append(reg.groupAdds, ch)
}

func (reg *registry) logWaiting(ch plan.Change) {
	reg.log.Info("a pending member joins its user group once it has accepted the invitation (Cloudflare refuses pending members)",
		"account", reg.result.AccountNames[ch.AccountID], "email", ch.Email, "group", ch.Group.Name)
}

// maxGroupAdd bounds the members one add request names. Cloudflare
// documents no bound for the bulk add; 50 is its page size elsewhere, so
// a first run over a large mapping never depends on an undocumented one.
const maxGroupAdd = 50

// flushGroupAdds sends the queued adds, one request per group (per 50
// members). When
// Cloudflare refuses a pending member (nobody in that request joins), the
// account is marked, and the accepted members of the request are sent
// again; the pending ones wait until they accept.
func (reg *registry) flushGroupAdds(ctx context.Context) {
	adds := reg.groupAdds
	reg.groupAdds = nil
	api, _ := reg.userGroupClient()
	type batch struct {
		account, group string
		n              int
	}
	var order []batch
	by := map[batch][]plan.Change{}
	// The member ids of each group's copy, made at its first batch: one
	// look per add, not a walk of the copy (a first run fills a group of
	// 100k members 50 at a time).
	inCopy := map[[2]string]map[string]bool{}
	size := map[[2]string]int{}
	for _, ch := range adds {
		g := [2]string{ch.AccountID, ch.Group.ID}
		b := batch{ch.AccountID, ch.Group.ID, size[g] / maxGroupAdd}
		size[g]++
		if _, seen := by[b]; !seen {
			order = append(order, b)
		}
		by[b] = append(by[b], ch)
	}
	for _, b := range order {
		chs := by[b]
		if reg.stopped != nil {
			for _, ch := range chs {
				reg.fail(ch, reg.stopped)
			}
			continue
		}
		err := reg.fence(chs[0])
		if err == nil {
			err = reg.addGroupMembers(ctx, api, chs)
		}
		if errors.Is(err, cloudflare.ErrPendingMember) {
			reg.ugroups.setRefused(b.account)
			reg.log.Info("Cloudflare refuses pending members in user groups: they join once they accept their invitation", "account", reg.result.AccountNames[b.account])
			in := &reg.inputs[reg.byID[b.account]]
			var accepted []plan.Change
			for _, ch := range chs {
				if act, _ := in.Actual.Get(identity.Key(ch.Email)); act.Status == "pending" {
					reg.logWaiting(ch)
					continue
				}
				accepted = append(accepted, ch)
			}
			chs, err = accepted, nil
			if len(chs) > 0 {
				err = reg.addGroupMembers(ctx, api, chs)
			}
		}
		if err != nil {
			for _, ch := range chs {
				reg.fail(ch, reg.groupError(ch.Group.Name, err))
			}
			continue
		}
		for _, ch := range chs {
			if err := reg.state.AppendAudit(reg.groupAudit(ch)); err != nil {
				reg.stopped = fmt.Errorf("%w: %w", errStateRefused, err)
			}
			reg.ugroups.edit(ch.AccountID, ch.Group.ID, func(ag *plan.ActualGroup) {
				g := [2]string{ch.AccountID, ch.Group.ID}
				have := inCopy[g]
				if have == nil {
					have = make(map[string]bool, len(ag.Members))
					for _, m := range ag.Members {
						have[m.MemberID] = true
					}
					inCopy[g] = have
				}
				if !have[ch.MemberID] {
					have[ch.MemberID] = true
					// Cloned: the cache outlives the run, whose member
					// table the change's strings point into.
					ag.Members = append(ag.Members, plan.GroupMemberRef{MemberID: strings.Clone(ch.MemberID), Email: strings.Clone(ch.Email)})
				}
			})
			reg.groupApplied(ch)
		}
	}
}

func (reg *registry) addGroupMembers(ctx context.Context, api userGroupAPI, chs []plan.Change) error {
	ids := make([]string, len(chs))
	for i, ch := range chs {
		ids[i] = ch.MemberID
	}
	return api.AddUserGroupMembers(ctx, chs[0].AccountID, chs[0].Group.ID, ids)
}

// groupAudit is the audit record of an applied group change.
func (reg *registry) groupAudit(ch plan.Change) store.AuditRecord {
	rec := store.AuditRecord{
		Time: reg.clock(), Actor: reg.req.actor, Action: string(ch.Kind), AccountID: ch.AccountID, Email: ch.Email,
		Before: mapping.KeyNames(ch.Before, reg.result.Names), After: mapping.KeyNames(ch.After, reg.result.Names),
		Reason: joinNonEmpty("user group "+ch.Group.Name+" ("+ch.Group.ID+")", ch.Reason), Privileged: ch.Privileged,
	}
	// The group is data on every record (report access replays it): one
	// source per key the group grants, of kind "user_group", naming it.
	keys := ch.After
	if ch.Kind == plan.RemoveGroupMember {
		keys = ch.Before
	}
	for _, k := range sortedSet(keys) {
		rec.Sources = append(rec.Sources, store.AuditSource{Role: mapping.KeyName(k, reg.result.Names), Kind: AuditSourceUserGroup, Group: ch.Group.Name})
	}
	if len(keys) == 0 {
		rec.Sources = []store.AuditSource{{Kind: AuditSourceUserGroup, Group: ch.Group.Name}}
	}
	if ch.Kind == plan.AddGroupMember {
		rec.Sources = append(rec.Sources, reg.auditSources(ch.AccountID, ch.Email, ch.After)...)
	}
	if ch.Kind == plan.SetGroupPolicies && ch.Group.Renamed != "" && ch.Group.Renamed != ch.Group.Name {
		// report access replays group records by name: it moves the
		// group's members to the new name here.
		rec.Sources = append(rec.Sources, store.AuditSource{Kind: AuditSourceUserGroupRenamed, Group: ch.Group.Renamed})
	}
	return rec
}

// AuditSourceUserGroup is the kind of the audit source that names the user
// group a user-group change wrote (its Group), once per key it grants.
const AuditSourceUserGroup = "user_group"

// AuditSourceUserGroupRenamed, on a set_group_policies record that renames
// the group, names (its Group) what the group was called before.
const AuditSourceUserGroupRenamed = "user_group_renamed_from"

func joinNonEmpty(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

// groupApplied counts an applied group change: result, rolling-window
// removals, metric, log.
func (reg *registry) groupApplied(ch plan.Change) {
	reg.stampRemovals(ch)
	reg.result.Applied = append(reg.result.Applied, ch)
	reg.m.ChangesApplied.WithLabelValues(string(ch.Kind)).Inc()
	reg.log.Info("applied", "account", reg.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email,
		"group", ch.Group.Name, "before", mapping.KeyNames(ch.Before, reg.result.Names), "after", mapping.KeyNames(ch.After, reg.result.Names),
		"trigger", reg.req.actor, "reason", ch.Reason)
}

// callWithoutGrants makes the write of a user-groups member that holds
// nothing of its own: the invitation, or taking its last own policy away.
func (reg *registry) callWithoutGrants(ctx context.Context, ch plan.Change) (cloudflare.Member, bool, error) {
	if len(ch.After) > 0 || (ch.Op != plan.OpCreate && ch.Op != plan.OpUpdate) {
		return cloudflare.Member{}, false, nil
	}
	api, ok := reg.userGroupClient()
	if !ok {
		return cloudflare.Member{}, true, fmt.Errorf("%s %s: the Cloudflare client cannot write a member without grants", ch.Kind, ch.Email)
	}
	if ch.Op == plan.OpCreate {
		m, err := api.InviteMemberWithoutGrants(ctx, ch.AccountID, ch.Email)
		return m, true, err
	}
	m, err := api.ClearMemberGrants(ctx, ch.AccountID, ch.MemberID)
	return m, true, err
}

// groupsHeld lists, per user-groups account, the owned groups email is in
// (names), from the run's reads: explain and report show access through
// them.
func (rn *run) groupsHeld(accountID, email string) []plan.ActualGroup {
	ua := rn.ug[accountID]
	if ua == nil {
		return nil
	}
	var out []plan.ActualGroup
	key := identity.Key(email)
	for _, g := range ua.groups {
		if _, mine := ua.owned[g.ID]; !mine {
			continue
		}
		if slices.ContainsFunc(g.Members, func(m plan.GroupMemberRef) bool { return identity.Key(m.Email) == key }) {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(x, y plan.ActualGroup) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// explainGroups is, for explain on a user-groups account, the person's
// whole desired state (standing mappings included) and the owned groups
// that give each key it holds through them (key -> group names). On any
// other account it returns dm as is.
func (rn *run) explainGroups(accountID, lower string, dm *plan.DesiredMember) (*plan.DesiredMember, map[string][]string, map[string]string) {
	ua := rn.ug[accountID]
	if ua == nil {
		return dm, nil, nil
	}
	waits := map[string]string{}
	for _, w := range ua.plan.Waiting {
		if w.Email != lower {
			continue
		}
		name := plan.UserGroupName(ua.prefix, w.GroupKey)
		text := "joins user group " + name + " once it is invited (the next reconcile invites it)"
		if w.Why == plan.WaitPending {
			text = "joins user group " + name + " once it accepts its invitation: Cloudflare refuses pending members in user groups"
		}
		for _, d := range ua.desired {
			if d.Key == w.GroupKey {
				for _, k := range d.Policies {
					waits[k] = text
				}
			}
		}
	}
	if rn.desired != nil {
		dm = memberOf(rn.desired.Accounts[accountID], lower)
	}
	via := map[string][]string{}
	for _, g := range rn.groupsHeld(accountID, lower) {
		for _, k := range g.Policies {
			via[k] = append(via[k], g.Name)
		}
	}
	return dm, via, waits
}
