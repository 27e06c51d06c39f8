package plan

import (
	"slices"
	"strings"
	"time"
)

// memDir is an in-memory Directory, the test double of the store snapshot
// the reconciler passes in.
type memDir struct {
	groups map[string]*memGroup
	users  map[string]User
	err    error // returned by every call when set
}

type memGroup struct {
	name, ext string
	members   []Membership
	sorted    bool // members in id order
}

func newDir() *memDir {
	return &memDir{groups: map[string]*memGroup{}, users: map[string]User{}}
}

func (d *memDir) group(id, name, ext string) *memDir {
	d.groups[id] = &memGroup{name: name, ext: ext}
	return d
}

func (d *memDir) member(groupID, memberID string, since time.Time) *memDir {
	_, isGroup := d.groups[memberID]
	g := d.groups[groupID]
	if slices.ContainsFunc(g.members, func(m Membership) bool { return m.MemberID == memberID }) {
		return d // one edge per member, as the store keeps them
	}
	g.members = append(g.members, Membership{MemberID: memberID, IsGroup: isGroup, Since: since})
	g.sorted = false
	return d
}

func (d *memDir) user(id, email string, active bool, since time.Time) *memDir {
	d.users[id] = User{ID: id, Email: email, Active: active, ActiveSince: since}
	return d
}

func (d *memDir) GroupByDisplayName(name string) (string, bool, error) {
	if d.err != nil {
		return "", false, d.err
	}
	for id, g := range d.groups {
		if strings.EqualFold(g.name, name) {
			return id, true, nil
		}
	}
	return "", false, nil
}

func (d *memDir) GroupsByExternalID(ext string) ([]string, error) {
	if d.err != nil {
		return nil, d.err
	}
	var ids []string
	for id, g := range d.groups {
		if g.ext == ext {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (d *memDir) GroupName(id string) (string, bool, error) {
	g, ok := d.groups[id]
	if !ok {
		return "", false, d.err
	}
	return g.name, true, d.err
}

func (d *memDir) GroupMembers(id string, fn func(Membership) bool) error {
	if d.err != nil {
		return d.err
	}
	g, ok := d.groups[id]
	if !ok {
		return nil
	}
	// In id order, as the store lists them.
	if !g.sorted {
		slices.SortStableFunc(g.members, func(x, y Membership) int { return strings.Compare(x.MemberID, y.MemberID) })
		g.sorted = true
	}
	for _, m := range g.members {
		if !fn(m) {
			return nil
		}
	}
	return nil
}

func (d *memDir) GroupSize(id string) (int, error) {
	if g, ok := d.groups[id]; ok {
		return len(g.members), d.err
	}
	return 0, d.err
}

func (d *memDir) User(id string) (User, bool, error) {
	u, ok := d.users[id]
	return u, ok, d.err
}

func (d *memDir) UsersByEmail(email string) ([]User, error) {
	var us []User
	for _, u := range d.users {
		if strings.EqualFold(u.Email, email) {
			us = append(us, u)
		}
	}
	return us, d.err
}

func (d *memDir) GroupsOf(id string) ([]Membership, error) {
	if d.err != nil {
		return nil, d.err
	}
	var out []Membership
	for gid, g := range d.groups {
		for _, m := range g.members {
			if m.MemberID == id {
				out = append(out, Membership{MemberID: gid, IsGroup: true, Since: m.Since})
			}
		}
	}
	return out, nil
}
