package sync

import (
	"errors"

	"github.com/scimflare/scimflare/store"
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

func (d directory) GroupSize(groupID string) (int, error) {
	n, err := d.r.CountGroupMembers(groupID)
	if notFound(err) {
		return 0, nil
	}
	return n, err
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

// maxTouched bounds the touches kept for one targeted run. Past it, they
// collapse into "reconcile everything": while runs are starved (budget
// spent, Cloudflare failing) SCIM keeps touching new users and emails, and
// a set that only grows would hold all of them. A full run lists 50
// members a call, cheaper than this many one-member writes' worth of
// scope anyway.
const maxTouched = 10000
