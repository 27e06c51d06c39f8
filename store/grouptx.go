package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

var errGroupTxDone = errors.New("group transaction already ended")

// groupTx is the GroupTx handed to UpdateGroup's fn. Member edits go to the
// transaction at once; attribute edits are kept in cur and written (with
// their index changes) when fn returns, so renaming twice in one fn costs
// one index move.
type groupTx struct {
	w              writeTx
	now            time.Time
	orig, cur      Group
	membersChanged bool
	done           bool
}

var _ GroupTx = (*groupTx)(nil)

func (t *groupTx) Group() Group {
	g := t.cur
	g.Doc = append([]byte(nil), t.cur.Doc...) // fn must not reach the stored bytes
	return g
}

func (t *groupTx) SetGroup(g Group) error {
	if t.done {
		return errGroupTxDone
	}
	if err := validateGroup(&g); err != nil {
		return err
	}
	if err := t.w.checkUnique(bucketGroupNames, t.cur.ID, g.DisplayName, "displayName"); err != nil {
		return err
	}
	t.cur.DisplayName, t.cur.ExternalID, t.cur.Doc = g.DisplayName, g.ExternalID, g.Doc
	return nil
}

func (t *groupTx) AddMember(ref MemberRef) (bool, error) {
	if t.done {
		return false, errGroupTxDone
	}
	_, added, err := t.w.addMember(t.cur.ID, ref, t.now)
	t.membersChanged = t.membersChanged || added
	return added, err
}

func (t *groupTx) RemoveMember(memberID string) (bool, error) {
	if t.done {
		return false, errGroupTxDone
	}
	removed, err := t.w.removeMember(t.cur.ID, memberID)
	t.membersChanged = t.membersChanged || removed
	return removed, err
}

func (t *groupTx) RemoveAllMembers() ([]MemberRef, error) {
	if t.done {
		return nil, errGroupTxDone
	}
	removed, err := t.w.removeAllMembers(t.cur.ID)
	t.membersChanged = t.membersChanged || len(removed) > 0
	return removed, err
}

func (t *groupTx) SetMembers(refs []MemberRef) (added, removed []MemberRef, err error) {
	if t.done {
		return nil, nil, errGroupTxDone
	}
	// Resolve everything before touching an edge so the error names the
	// first bad reference, not a side effect of a removal.
	want := make(map[string]MemberRef, len(refs))
	order := make([]MemberRef, 0, len(refs))
	for _, ref := range refs {
		r, err := t.w.resolveMember(t.cur.ID, ref)
		if err != nil {
			return nil, nil, err
		}
		if _, dup := want[r.ID]; !dup {
			want[r.ID] = r
			order = append(order, r)
		}
	}
	current, err := t.w.members(t.cur.ID)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range current {
		if _, keep := want[m.ID]; keep {
			continue
		}
		if _, err := t.w.removeMember(t.cur.ID, m.ID); err != nil {
			return nil, nil, err
		}
		removed = append(removed, m.MemberRef)
	}
	for _, ref := range order {
		r, ok, err := t.w.addMember(t.cur.ID, ref, t.now)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			added = append(added, r)
		}
	}
	t.membersChanged = t.membersChanged || len(added) > 0 || len(removed) > 0
	return added, removed, nil
}

func (t *groupTx) IsMember(memberID string) (bool, error) {
	if t.done {
		return false, errGroupTxDone
	}
	return t.w.isMember(t.cur.ID, memberID), nil
}

func (t *groupTx) Members(fn func(Membership) bool) error {
	if t.done {
		return errGroupTxDone
	}
	return t.w.groupMembers(t.cur.ID, fn)
}

func (w writeTx) updateGroup(id string, now time.Time, ifVersion uint64, fn func(GroupTx) error) (Group, error) {
	g, err := w.GetGroup(id)
	if err != nil {
		return Group{}, err
	}
	if ifVersion != 0 && ifVersion != g.Meta.Version {
		return Group{}, fmt.Errorf("group %q is at version %d, not %d: %w", id, g.Meta.Version, ifVersion, ErrVersionMismatch)
	}
	t := &groupTx{w: w, now: now, orig: g, cur: g}
	err = fn(t)
	t.done = true
	if err != nil {
		return Group{}, err
	}
	cur := t.cur
	attrsChanged := cur.DisplayName != g.DisplayName || cur.ExternalID != g.ExternalID || !bytes.Equal(cur.Doc, g.Doc)
	if !attrsChanged && !t.membersChanged {
		return g, nil
	}
	if err := w.claimUnique(bucketGroupNames, id, g.DisplayName, cur.DisplayName, "displayName"); err != nil {
		return Group{}, err
	}
	if err := w.reindex(bucketGroupExtIDs, id, g.ExternalID, cur.ExternalID); err != nil {
		return Group{}, err
	}
	cur.Meta.Version++
	cur.Meta.LastModified = now
	return cur, w.putGroup(cur)
}
