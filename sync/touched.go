package sync

import (
	"strings"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
)

// touched is what SCIM changes since the last targeted run affect.
type touched struct {
	userIDs, groupIDs, emails map[string]bool
	// all: more was touched than maxTouched; a full run covers it.
	all bool
}

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
