package plan

import (
	"container/heap"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/identity"
)

// User is a SCIM user as the reconciler needs it. ActiveSince is when the
// store last saw the user become active.
type User struct {
	ID, Email   string
	Active      bool
	ActiveSince time.Time
}

// Membership is one direct edge of a group; Since is when it was stored.
type Membership struct {
	MemberID string
	IsGroup  bool
	Since    time.Time
}

// Directory is the read side of the SCIM store, within one consistent
// snapshot.
type Directory interface {
	GroupByDisplayName(name string) (groupID string, ok bool, err error) // case-insensitive
	GroupsByExternalID(externalID string) ([]string, error)
	GroupName(groupID string) (name string, ok bool, err error)
	// GroupMembers lists a group's direct members in id order (bytewise),
	// each once.
	GroupMembers(groupID string, fn func(Membership) bool) error
	// GroupsOf lists the groups that hold a user or group directly:
	// MemberID is the holding group's id, Since when the edge was stored.
	// None for an unknown id.
	GroupsOf(memberID string) ([]Membership, error)
	// GroupSize counts a group's direct members (a sizing hint; 0 for an
	// unknown id).
	GroupSize(groupID string) (int, error)
	User(id string) (User, bool, error)
	UsersByEmail(email string) ([]User, error) // case-insensitive
}

// TempGrant is a grant made outside the IdP with `scimflare grant`. It is
// live while Start <= now < End.
type TempGrant struct {
	ID, Email, AccountID string
	Keys                 []string
	Start, End           time.Time
	Reason, Actor        string
}

// Reason kinds.
const (
	ReasonMapping = "mapping"
	ReasonGrant   = "grant"
)

// Reason says why a member should hold a key. For a mapping, Path is the
// chain of group names from the mapped group down to the group that holds
// the user directly; the users of one group share it, so it is read-only.
type Reason struct {
	Kind         string
	Group        string
	Path         []string
	MappingIndex int
	GrantID      string
	Expires      time.Time // zero = never
}

// DesiredMember is one email's wanted keys in one account, each with every
// reason that asks for it.
type DesiredMember struct {
	Email string
	Keys  Wants
}

// Want is one wanted key with every reason that asks for it. Reasons may
// be shared with other members (every member a mapping reaches through one
// group has the same reason): read it, append to it, never write into it.
type Want struct {
	Key     string
	Reasons []Reason
}

// Wants are one member's wanted keys in key order. A slice, not a map: a
// member wants one or two keys, and a full plan holds one Wants per member
// and account (a map of one key costs ~400 bytes, this ~50).
type Wants []Want

func (w Wants) find(key string) (int, bool) {
	return slices.BinarySearchFunc(w, key, func(x Want, k string) int { return strings.Compare(x.Key, k) })
}

// Reasons are the reasons for key; none when it is not wanted.
func (w Wants) Reasons(key string) []Reason {
	if i, ok := w.find(key); ok {
		return w[i].Reasons
	}
	return nil
}

// Has reports whether key is wanted.
func (w Wants) Has(key string) bool { return len(w.Reasons(key)) > 0 }

// KeyList is the wanted keys, sorted.
func (w Wants) KeyList() []string {
	out := make([]string, 0, len(w))
	for _, x := range w {
		if len(x.Reasons) > 0 {
			out = append(out, x.Key)
		}
	}
	return out
}

// Add records reasons for key. A first reason slice is kept as it is
// (shared: its capacity must equal its length, so that a later append
// copies it); later ones are appended.
func (w *Wants) Add(key string, rs ...Reason) {
	i, ok := w.find(key)
	if ok {
		(*w)[i].Reasons = append((*w)[i].Reasons, rs...)
		return
	}
	*w = slices.Insert(*w, i, Want{Key: key, Reasons: slices.Clip(rs)})
}

// Expired is a key whose every source has ended, for a member who would
// otherwise hold it; Plan turns its removal into expire_grant.
type Expired struct {
	AccountID, Email, Key string
	Reason                Reason
}

// Desired is the state scimflare wants. NextExpiry is the soonest moment it
// changes by the clock alone (a grant ending, or a temporary grant starting);
// zero when nothing is pending.
type Desired struct {
	Accounts   map[string]*Wanted // by account id
	Expired    []Expired
	NextExpiry time.Time
	// Problems lists the users a mapping or grant reaches whose address
	// gives no Cloudflare access, and the emails several active users
	// resolve to; ordered by email.
	Problems []IdentityProblem
}

// Identity problem kinds.
const (
	// ProblemInvalidEmail: the address is not a plain addr-spec
	// (identity.Email refused it); the user is granted nothing.
	ProblemInvalidEmail = "invalid_email"
	// ProblemSharedEmail: several active users resolve to one Cloudflare
	// email (possible with identity.email_from: primaryEmail). The email
	// holds the union of what those users are granted.
	ProblemSharedEmail = "shared_email"
)

// IdentityProblem is one address scimflare cannot or will not treat as one
// person's Cloudflare email.
type IdentityProblem struct {
	Kind    string
	Email   string   // as the SCIM user has it (invalid) or its Cloudflare email (shared)
	UserIDs []string // sorted
	Why     string
}

// Build computes desired state at now. users == nil means every user; else
// only those user ids are computed (a targeted reconcile).
//
// Choices made where SPEC.md is silent:
//   - a temporary grant needs an active SCIM user with its email: a user the
//     IdP disabled or deleted loses every grant, temporary ones included;
//   - a mapping with both ttl and expires_at (rejected by Validate) ends at
//     the earlier of the two.
func Build(dir Directory, res *mapping.Resolved, grants []TempGrant, users map[string]bool, now time.Time) (*Desired, error) {
	return build(dir, res, grants, users, now, true)
}

// build is Build; with upward false a targeted build flattens every mapped
// group whole and keeps the targeted users, as Build once did (the tests'
// reference for the upward walk).
func build(dir Directory, res *mapping.Resolved, grants []TempGrant, users map[string]bool, now time.Time, upward bool) (*Desired, error) {
	b := &builder{
		dir:     dir,
		now:     now,
		users:   users,
		ids:     newPool(0),
		flat:    map[string]*flattened{},
		desired: &Desired{Accounts: map[string]*Wanted{}},
		strs:    newPool(0),
		wants:   &wantsPool{},
		expired: map[expiredKey]Expired{},
		invalid: map[string]IdentityProblem{},
		shared:  map[string][]string{},
	}
	b.byID.init(0, userKey)
	b.byEmail.init(0, emailKey)
	if users != nil && upward {
		var err error
		if b.up, err = walkUp(dir, users); err != nil {
			return nil, err
		}
	}
	roots := make([][]string, len(res.Mappings))
	b.uses = map[string]int{}
	for i, m := range res.Mappings {
		var err error
		if roots[i], err = b.roots(m); err != nil {
			return nil, err
		}
		for _, r := range roots[i] {
			b.uses[r]++
		}
	}
	for i, m := range res.Mappings {
		if err := b.mapping(m, roots[i]); err != nil {
			return nil, err
		}
	}
	if err := b.tempGrants(grants); err != nil {
		return nil, err
	}
	b.finish()
	b.problems()
	b.wants.steps = nil // a build's memory only
	return b.desired, nil
}

type expiredKey struct{ account, email, key string }

type builder struct {
	dir   Directory
	now   time.Time
	users map[string]bool
	// byID is every user read, by id (in ids): a full build reads each
	// user once however many mappings reach it. Rows, not a map of
	// strings: at a million users the map and its keys were 150 MB of a
	// build's transient heap.
	byID index[userRow]
	ids  *pool
	// zoned holds the activeSince of the users whose time a row cannot
	// hold (not UTC, or out of UnixNano's range), by row.
	zoned   map[uint32]time.Time
	flat    map[string]*flattened
	up      *upward // a targeted Build: the groups above its users
	desired *Desired
	expired map[expiredKey]Expired
	invalid map[string]IdentityProblem // user id ->
	// byEmail is the first active user reached per identity.Key(email),
	// the email written once in strs; shared, the emails more than one
	// reached, with all their ids (a slice per user would cost a million
	// small allocations).
	byEmail index[emailRow]
	shared  map[string][]string
	// uses counts, per mapped group id, the mappings not yet built that
	// name it.
	uses map[string]int
	// hint is the size of the group being added: an account's table made
	// for it starts that large instead of growing step by step.
	hint int
	// strs holds the emails of every account's table, each once; wants
	// the lists of wanted keys they share.
	strs  *pool
	wants *wantsPool
}

// usable is a user as user() read it; ok false when unknown or when the
// user can hold nothing.
type usable struct {
	email       span // identity.Email of the user's address, in strs
	activeSince time.Time
	ok          bool
}

// userRow is a user in byID: usable, held without pointers.
type userRow struct {
	id, email span
	since     int64 // activeSince in Unix nanoseconds, UTC; see zoned
	read, ok  bool  // read: the rest is set
}

func userKey(r *userRow) span { return r.id }

// emailRow is an email in byEmail and the first user that has it.
type emailRow struct {
	email span
	first uint32 // row in byID
}

func emailKey(r *emailRow) span { return r.email }

// intern is id's row in byID, made (unread) the first time id is met:
// a user is told by its row number from then on.
func (b *builder) intern(id string) (uint32, error) {
	r, slot, tag := b.byID.find(b.ids, id)
	if r < 0 {
		if r = len(b.byID.rows); r >= maxUsers {
			return 0, fmt.Errorf("%w: mappings reach more than %d users", errTooManyUsers, maxUsers)
		}
		b.byID.add(b.ids, slot, tag, userRow{id: b.ids.put(id)})
	}
	return uint32(r), nil
}

// errTooManyUsers is a directory past what one build holds: its rows are
// numbered in 24 bits. No workforce directory comes near; a build says so
// rather than stop the daemon.
var errTooManyUsers = errors.New("the directory is too large for one build")

// maxUsers is how many users one build holds (a variable for tests).
var maxUsers = maxRows

// user reads the user in row r of byID, once per build.
func (b *builder) user(r uint32) (usable, error) {
	if row := b.byID.rows[r]; row.read {
		u := usable{email: row.email, ok: row.ok}
		if z, ok := b.zoned[r]; ok {
			u.activeSince = z
		} else if row.ok {
			u.activeSince = time.Unix(0, row.since).UTC()
		}
		return u, nil
	}
	id := b.ids.str(b.byID.rows[r].id)
	u, ok, err := b.dir.User(id)
	if err != nil {
		return usable{}, fmt.Errorf("read user %s: %w", id, err)
	}
	var p usable
	row := userRow{id: b.byID.rows[r].id, read: true}
	if ok && u.Active && u.Email != "" {
		email, err := identity.Email(u.Email)
		if err != nil {
			// No access, reported once per build: a refused write on every
			// run would say the same thing louder and grant nothing either.
			b.invalid[id] = IdentityProblem{Kind: ProblemInvalidEmail, Email: u.Email, UserIDs: []string{id}, Why: err.Error()}
		} else {
			p = usable{email: b.email(email, id, r), activeSince: u.ActiveSince, ok: true}
			row.email, row.ok = p.email, true
			if t := p.activeSince; t.Location() == time.UTC && t.Year() > 1677 && t.Year() < 2262 {
				row.since = t.UnixNano()
			} else {
				if b.zoned == nil {
					b.zoned = map[uint32]time.Time{}
				}
				b.zoned[r] = t
			}
		}
	}
	b.byID.rows[r] = row
	return p, nil
}

// email is email's span in strs, written for its first user; a later
// active user with the same email is noted in shared.
func (b *builder) email(email, id string, self uint32) span {
	r, slot, tag := b.byEmail.find(b.strs, email)
	if r < 0 {
		sp := b.strs.put(email)
		b.byEmail.add(b.strs, slot, tag, emailRow{email: sp, first: self})
		return sp
	}
	e := b.byEmail.rows[r]
	key := b.strs.str(e.email)
	if ids, ok := b.shared[key]; ok {
		b.shared[key] = append(ids, id)
	} else {
		b.shared[key] = []string{b.ids.str(b.byID.rows[e.first].id), id}
	}
	return e.email
}

// problems lists what user() refused and the emails several active users
// share. Their strings are copies: the ids and emails point into the
// build's arenas, and status keeps the problems after the build.
func (b *builder) problems() {
	kept := func(p IdentityProblem) IdentityProblem {
		p.Email = strings.Clone(p.Email)
		p.UserIDs = slices.Clone(p.UserIDs)
		for i, id := range p.UserIDs {
			p.UserIDs[i] = strings.Clone(id)
		}
		return p
	}
	for _, p := range b.invalid {
		b.desired.Problems = append(b.desired.Problems, kept(p))
	}
	for email, ids := range b.shared {
		if len(ids) > 1 {
			ids = slices.Sorted(slices.Values(ids))
			b.desired.Problems = append(b.desired.Problems, kept(IdentityProblem{
				Kind: ProblemSharedEmail, Email: email, UserIDs: ids,
				Why: fmt.Sprintf("%d active SCIM users resolve to this Cloudflare email; it holds the union of their grants", len(ids)),
			}))
		}
	}
	slices.SortFunc(b.desired.Problems, func(x, y IdentityProblem) int {
		return strings.Compare(x.Email+"\x00"+x.Kind+"\x00"+strings.Join(x.UserIDs, ","), y.Email+"\x00"+y.Kind+"\x00"+strings.Join(y.UserIDs, ","))
	})
}

// member is a user reached from a mapped group: when they became an
// effective member (before ActiveSince is applied) and along which path.
// The user is its row in byID: at a million members a list of id strings
// and their paths was 87 MB of a full build's heap.
type member struct {
	user  uint32 // row in byID
	path  uint32 // in paths
	since time.Time
}

type flattened struct {
	members []member // in discovery order, for determinism
	// paths are the members' paths: group display names, mapped group
	// first; shared, read-only.
	paths [][]string
	// index finds a user (by row) in members; nil while a single group has
	// been expanded, whose members are distinct: a mapped group of a
	// million direct members needs no million-entry map.
	index map[uint32]int
}

// roots are the groups m maps.
func (b *builder) roots(m mapping.ResolvedMapping) ([]string, error) {
	var roots []string
	switch {
	case m.Group != "":
		id, ok, err := b.dir.GroupByDisplayName(m.Group)
		if err != nil {
			return nil, fmt.Errorf("look up group %q for mappings[%d]: %w", m.Group, m.Index, err)
		}
		if ok {
			roots = []string{id}
		}
	case m.GroupExternalID != "":
		ids, err := b.dir.GroupsByExternalID(m.GroupExternalID)
		if err != nil {
			return nil, fmt.Errorf("look up group externalId %q for mappings[%d]: %w", m.GroupExternalID, m.Index, err)
		}
		roots = slices.Sorted(slices.Values(ids))
	}
	return roots, nil
}

func (b *builder) mapping(m mapping.ResolvedMapping, roots []string) error {
	var shared []Reason // the last reason given, len and cap 1
	for _, root := range roots {
		f, err := b.flatten(root)
		if err != nil {
			return fmt.Errorf("flatten group %s for mappings[%d]: %w", root, m.Index, err)
		}
		// A group's flattening is kept only while a mapping still to come
		// names it: at a million users one is a million-entry map.
		if b.uses[root]--; b.uses[root] <= 0 {
			delete(b.flat, root)
		}
		if b.users == nil {
			b.hint = len(f.members)
		}
		for _, mem := range f.members {
			if b.users != nil && !b.users[b.ids.str(b.byID.rows[mem.user].id)] {
				continue
			}
			u, err := b.user(mem.user)
			if err != nil {
				return err
			}
			if !u.ok {
				continue
			}
			start := mem.since
			if u.activeSince.After(start) {
				start = u.activeSince
			}
			// Every user a group holds directly shares that group's path.
			path := f.paths[mem.path]
			r := Reason{Kind: ReasonMapping, MappingIndex: m.Index, Path: path, Group: path[0]}
			if m.TTL > 0 {
				r.Expires = start.Add(m.TTL)
			}
			if m.ExpiresAt != nil && (r.Expires.IsZero() || m.ExpiresAt.Before(r.Expires)) {
				r.Expires = *m.ExpiresAt
			}
			// Users of one group come one after the other and, but for a
			// ttl, have the same reason: they share one copy of it.
			if len(shared) == 0 || !sameSlice(shared[0].Path, r.Path) || shared[0].Expires != r.Expires {
				shared = []Reason{r}
			}
			email := b.strs.str(u.email)
			for _, k := range m.Keys {
				b.add(m.AccountID, email, u.email, k, shared)
			}
		}
	}
	return nil
}

// sameSlice reports whether a and b are the same slice (not only equal).
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// add records one source for a key, live or ended: rs is one reason, in a
// slice the caller may share between members (Wants.Add). email is already
// an identity.Key (identity.Email's answer, which Key leaves as it is):
// both callers have it, and validating it again per key and mapping is a
// full plan's most repeated string work. sp is email in strs, or the zero
// span.
func (b *builder) add(account, email string, sp span, key string, rs []Reason) {
	r := rs[0]
	if !r.Expires.IsZero() && !r.Expires.After(b.now) {
		ek := expiredKey{account, email, key}
		if old, ok := b.expired[ek]; !ok || r.Expires.After(old.Reason.Expires) {
			b.expired[ek] = Expired{AccountID: account, Email: email, Key: key, Reason: r}
		}
		return
	}
	b.wake(r.Expires)
	acct := b.desired.Accounts[account]
	if acct == nil {
		acct = newWantedIn(b.strs, b.wants, b.hint)
		b.desired.Accounts[account] = acct
	}
	acct.want(email, sp, key, rs)
}

// wake notes a future moment at which desired state changes.
func (b *builder) wake(t time.Time) {
	if t.IsZero() || !t.After(b.now) {
		return
	}
	if b.desired.NextExpiry.IsZero() || t.Before(b.desired.NextExpiry) {
		b.desired.NextExpiry = t
	}
}

func (b *builder) tempGrants(grants []TempGrant) error {
	var scope map[string]bool // lower emails of the targeted users
	if b.users != nil && len(grants) > 0 {
		scope = map[string]bool{}
		for id := range b.users {
			u, ok, err := b.dir.User(id)
			if err != nil {
				return fmt.Errorf("read user %s: %w", id, err)
			}
			if ok && u.Email != "" {
				scope[identity.Key(u.Email)] = true
			}
		}
	}
	activeByEmail := map[string]bool{}
	for _, g := range grants {
		lower := identity.Key(g.Email)
		if scope != nil && !scope[lower] {
			continue
		}
		active, seen := activeByEmail[lower]
		if !seen {
			us, err := b.dir.UsersByEmail(g.Email)
			if err != nil {
				return fmt.Errorf("look up user %s for grant %s: %w", g.Email, g.ID, err)
			}
			// The same rule as a mapping's: an active user whose own
			// address is plain and resolves to the grant's email.
			active = slices.ContainsFunc(us, func(u User) bool { return u.Active && identity.Valid(u.Email) && identity.Key(u.Email) == lower })
			activeByEmail[lower] = active
		}
		if !active {
			continue
		}
		if g.Start.After(b.now) {
			b.wake(g.Start)
			continue
		}
		rs := []Reason{{Kind: ReasonGrant, GrantID: g.ID, Expires: g.End, MappingIndex: -1}}
		for _, k := range g.Keys {
			b.add(g.AccountID, lower, span{}, k, rs)
		}
	}
	return nil
}

// finish drops expiries that another live source overrides and orders the
// rest, so that equal inputs give equal output.
func (b *builder) finish() {
	for ek, e := range b.expired {
		if dm, ok := b.desired.Accounts[ek.account].Get(ek.email); ok && dm.Keys.Has(ek.key) {
			continue
		}
		b.desired.Expired = append(b.desired.Expired, e)
	}
	slices.SortFunc(b.desired.Expired, func(x, y Expired) int {
		return strings.Compare(x.AccountID+"\x00"+identity.Key(x.Email)+"\x00"+x.Key, y.AccountID+"\x00"+identity.Key(y.Email)+"\x00"+y.Key)
	})
}

// flatten walks a mapped group and its nested groups once per Build. A
// user's effective start over one path is the latest edge on it; over
// several paths, the earliest of those — a bottleneck shortest path, so
// groups are expanded in order of when they were reached (Dijkstra) and
// each exactly once, which also makes cycles harmless. Groups reached at
// the same moment are expanded in id order, and a group lists its members
// in id order (Directory.GroupMembers), so the path kept when several are
// equally early depends on the graph alone: a targeted Build, which walks
// only the groups above its users (upward), keeps the same one.
func (b *builder) flatten(root string) (*flattened, error) {
	if f, ok := b.flat[root]; ok {
		return f, nil
	}
	members := b.dir.GroupMembers
	if b.up != nil {
		if !b.up.reaches(root) {
			f := &flattened{}
			b.flat[root] = f
			return f, nil
		}
		members = b.up.members
	}
	f := &flattened{}
	if b.up == nil {
		// A full build sizes the slice once; a targeted one reaches a few
		// members and reads no count.
		if n, err := b.dir.GroupSize(root); err == nil {
			f.members = make([]member, 0, max(0, min(n, 1<<24)))
			if len(b.byID.rows) == 0 {
				// The first group of a full build: most of its users are
				// the directory's, so the user and email indexes and
				// their arenas start that large.
				b.byID.init(cap(f.members), userKey)
				b.byEmail.init(cap(f.members), emailKey)
				b.ids.arena.Grow(cap(f.members) * 32)
				b.strs.arena.Grow(cap(f.members) * 24)
			}
		}
	}
	reached := map[string]*groupNode{root: {id: root}}
	q := &groupQueue{reached[root]}
	done := map[string]bool{}
	for q.Len() > 0 {
		g := heap.Pop(q).(*groupNode)
		if done[g.id] {
			continue
		}
		done[g.id] = true
		if b.up == nil && len(done) > 1 {
			// A full build grows the slice once per nested group rather
			// than doubling it member by member: a department of a hundred
			// teams otherwise copies its members seven times over.
			if n, err := b.dir.GroupSize(g.id); err == nil {
				f.members = slices.Grow(f.members, max(0, min(n, 1<<24)))
			}
		}
		if len(done) == 2 {
			// A second group: its members may be the first one's. (Not
			// sized for the groups queued: nested groups that share their
			// members would make it many times too large.)
			f.index = make(map[uint32]int, cap(f.members))
			for i, m := range f.members {
				f.index[m.user] = i
			}
		}
		name, ok, err := b.dir.GroupName(g.id)
		if err != nil {
			return nil, fmt.Errorf("read group %s: %w", g.id, err)
		}
		if !ok {
			name = g.id
		}
		path := append(slices.Clip(g.path), name)
		f.paths = append(f.paths, path)
		pi := uint32(len(f.paths) - 1)
		var tooMany error
		err = members(g.id, func(m Membership) bool {
			t := m.Since
			if g.since.After(t) {
				t = g.since
			}
			if m.IsGroup {
				if done[m.MemberID] {
					return true
				}
				if n, ok := reached[m.MemberID]; !ok || t.Before(n.since) {
					n = &groupNode{id: m.MemberID, since: t, path: path}
					reached[m.MemberID] = n
					heap.Push(q, n)
				}
				return true
			}
			u, err := b.intern(m.MemberID)
			if err != nil {
				tooMany = err
				return false
			}
			if f.index == nil {
				f.members = append(f.members, member{user: u, since: t, path: pi})
			} else if i, ok := f.index[u]; !ok {
				f.index[u] = len(f.members)
				f.members = append(f.members, member{user: u, since: t, path: pi})
			} else if t.Before(f.members[i].since) {
				f.members[i].since, f.members[i].path = t, pi
			}
			return true
		})
		if err == nil {
			err = tooMany
		}
		if err != nil {
			return nil, fmt.Errorf("list members of group %s: %w", g.id, err)
		}
	}
	b.flat[root] = f
	return f, nil
}

type groupNode struct {
	id    string
	since time.Time
	path  []string // display names of the groups above it, mapped group first
}

// groupQueue pops the earliest group, the smallest id among equals.
type groupQueue []*groupNode

func (q groupQueue) Len() int { return len(q) }
func (q groupQueue) Less(i, j int) bool {
	if c := q[i].since.Compare(q[j].since); c != 0 {
		return c < 0
	}
	return q[i].id < q[j].id
}
func (q groupQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *groupQueue) Push(x any)   { *q = append(*q, x.(*groupNode)) }
func (q *groupQueue) Pop() any {
	old := *q
	n := old[len(old)-1]
	*q = old[:len(old)-1]
	return n
}

// upward is the part of the group graph above a targeted Build's users:
// every group from which one of them is reachable, with only the edges
// that lead towards them. It is closed upward (a group's parents are all
// in it), so a bottleneck path from a mapped group to one of the users
// lies inside it, and flattening a mapped group over it expands the same
// groups in the same order as over the whole graph, minus those that lead
// to no targeted user: same start times, same paths, at a cost set by the
// users' own groups rather than by the mapped groups' sizes.
type upward struct {
	children map[string][]Membership // group id -> its members towards the users, in id order
}

// walkUp reads the parents of users, then of their groups, and so on.
func walkUp(dir Directory, users map[string]bool) (*upward, error) {
	up := &upward{children: map[string][]Membership{}}
	frontier := slices.Sorted(maps.Keys(users))
	isGroup := false
	for len(frontier) > 0 {
		var next []string
		for _, id := range frontier {
			parents, err := dir.GroupsOf(id)
			if err != nil {
				return nil, fmt.Errorf("read the groups of %s: %w", id, err)
			}
			for _, p := range parents {
				if _, seen := up.children[p.MemberID]; !seen {
					next = append(next, p.MemberID)
				}
				up.children[p.MemberID] = append(up.children[p.MemberID], Membership{MemberID: id, IsGroup: isGroup, Since: p.Since})
			}
		}
		frontier, isGroup = next, true
	}
	for _, ms := range up.children {
		slices.SortFunc(ms, func(x, y Membership) int { return strings.Compare(x.MemberID, y.MemberID) })
	}
	return up, nil
}

func (up *upward) reaches(groupID string) bool {
	_, ok := up.children[groupID]
	return ok
}

func (up *upward) members(groupID string, fn func(Membership) bool) error {
	for _, m := range up.children[groupID] {
		if !fn(m) {
			return nil
		}
	}
	return nil
}
