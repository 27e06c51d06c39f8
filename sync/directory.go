package sync

import (
	"errors"
	"strings"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// directory is plan.Directory over one store snapshot.
type directory struct{ r store.Reader }

func notFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func (d directory) GroupByDisplayName(name string) (string, bool, error) {
	g, err := d.r.GroupByDisplayName(name)
	if notFound(err) {
		return "", false, nil
	}
	return g.ID, err == nil, err
}

func (d directory) GroupsByExternalID(externalID string) ([]string, error) {
	gs, err := d.r.GroupsByExternalID(externalID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	return ids, nil
}

func (d directory) GroupName(groupID string) (string, bool, error) {
	g, err := d.r.GetGroup(groupID)
	if notFound(err) {
		return "", false, nil
	}
	return g.DisplayName, err == nil, err
}

func (d directory) GroupMembers(groupID string, fn func(plan.Membership) bool) error {
	err := d.r.GroupMembers(groupID, func(m store.Membership) bool {
		return fn(plan.Membership{MemberID: m.ID, IsGroup: m.Type == store.MemberGroup, Since: m.Since})
	})
	if notFound(err) {
		return nil
	}
	return err
}

func (d directory) GroupsOf(memberID string) ([]plan.Membership, error) {
	ms, err := d.r.GroupsOf(memberID)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]plan.Membership, len(ms))
	for i, m := range ms {
		out[i] = plan.Membership{MemberID: m.ID, IsGroup: true, Since: m.Since}
	}
	return out, nil
}

func planUser(u store.User) plan.User {
	return plan.User{ID: u.ID, Email: u.Email, Active: u.Active, ActiveSince: u.ActiveSince}
}

// accessReader is a store that reads a user without its SCIM document
// (the bbolt store does): a full plan reads every user.
type accessReader interface {
	GetUserAccess(id string) (store.UserAccess, error)
}

func (d directory) User(id string) (plan.User, bool, error) {
	if ar, ok := d.r.(accessReader); ok {
		a, err := ar.GetUserAccess(id)
		if notFound(err) {
			return plan.User{}, false, nil
		}
		if err != nil {
			return plan.User{}, false, err
		}
		return plan.User{ID: a.ID, Email: a.Email, Active: a.Active, ActiveSince: a.ActiveSince}, true, nil
	}
	u, err := d.r.GetUser(id)
	if notFound(err) {
		return plan.User{}, false, nil
	}
	if err != nil {
		return plan.User{}, false, err
	}
	return planUser(u), true, nil
}

func (d directory) UsersByEmail(email string) ([]plan.User, error) {
	us, err := d.r.UsersByEmail(email)
	if err != nil {
		return nil, err
	}
	out := make([]plan.User, len(us))
	for i, u := range us {
		out[i] = planUser(u)
	}
	return out, nil
}

// touched is what SCIM changes since the last targeted run affect.
type touched struct {
	userIDs, groupIDs, emails map[string]bool
	// all: more was touched than maxTouched; a full run covers it.
	all bool
}

// maxTouched bounds the touches kept for one targeted run. Past it, they
// collapse into "reconcile everything": while runs are starved (budget
// spent, Cloudflare failing) SCIM keeps touching new users and emails, and
// a set that only grows would hold all of them. A full run lists 50
// members a call, cheaper than this many one-member writes' worth of
// scope anyway.
const maxTouched = 10000

func newTouched() touched {
	return touched{userIDs: map[string]bool{}, groupIDs: map[string]bool{}, emails: map[string]bool{}}
}

func allTouched() touched {
	t := newTouched()
	t.all = true
	return t
}

func (t touched) empty() bool {
	return !t.all && len(t.userIDs) == 0 && len(t.groupIDs) == 0 && len(t.emails) == 0
}

func (t touched) size() int { return len(t.userIDs) + len(t.groupIDs) + len(t.emails) }

// bounded is t, or allTouched when t holds more than maxTouched entries.
func (t touched) bounded() touched {
	if t.all || t.size() > maxTouched {
		return allTouched()
	}
	return t
}

func (t touched) add(userIDs, groupIDs, emails []string) {
	if t.all {
		return
	}
	for _, id := range userIDs {
		if id != "" {
			t.userIDs[id] = true
		}
	}
	for _, id := range groupIDs {
		if id != "" {
			t.groupIDs[id] = true
		}
	}
	for _, e := range emails {
		if e = strings.TrimSpace(e); e != "" {
			t.emails[e] = true
		}
	}
}

// merge adds o to t; the caller bounds the result, which is allTouched
// when either was.
func (t touched) merge(o touched) {
	if t.all || o.all {
		return
	}
	for k := range o.userIDs {
		t.userIDs[k] = true
	}
	for k := range o.groupIDs {
		t.groupIDs[k] = true
	}
	for k := range o.emails {
		t.emails[k] = true
	}
}

// scope expands touched ids into the users whose desired state must be
// computed and the lower-case emails to plan. Every user sharing an email
// with a touched one is included: desired state is per email.
func (t touched) scope(r store.Reader) (users, emails map[string]bool, err error) {
	users, emails = map[string]bool{}, map[string]bool{}
	seenGroups := map[string]bool{}
	addUser := func(u store.User) {
		users[u.ID] = true
		if u.Email != "" {
			emails[identity.Key(u.Email)] = true
		}
	}
	var walk func(gid string) error
	walk = func(gid string) error {
		if seenGroups[gid] {
			return nil
		}
		seenGroups[gid] = true
		var nested, direct []string
		err := r.GroupMembers(gid, func(m store.Membership) bool {
			if m.Type == store.MemberGroup {
				nested = append(nested, m.ID)
			} else {
				direct = append(direct, m.ID)
			}
			return true
		})
		if notFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, id := range direct {
			u, err := r.GetUser(id)
			if notFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			addUser(u)
		}
		for _, id := range nested {
			if err := walk(id); err != nil {
				return err
			}
		}
		return nil
	}
	for id := range t.userIDs {
		u, err := r.GetUser(id)
		switch {
		case err == nil:
			addUser(u)
		case notFound(err):
			// An untyped member reference: it may name a group.
			if err := walk(id); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, err
		}
	}
	for id := range t.groupIDs {
		if err := walk(id); err != nil {
			return nil, nil, err
		}
	}
	for e := range t.emails {
		emails[identity.Key(e)] = true
	}
	for e := range emails {
		us, err := r.UsersByEmail(e)
		if err != nil {
			return nil, nil, err
		}
		for _, u := range us {
			users[u.ID] = true
		}
	}
	return users, emails, nil
}
