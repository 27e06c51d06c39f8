package sync

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// expiriesKey is where the pending expiries are kept in the state, beside
// the run status, so that `status` (daemon or not) and a restarted daemon
// read them instead of building desired state for every user.
const expiriesKey = "expiries"

// expiryIndex is the pending expiries as the runs left them. A run over
// every user (full, expiry) replaces it from the desired state it built
// anyway; a targeted run replaces only the emails it planned. Cost follows
// the change: nothing here walks the directory.
type expiryIndex struct {
	List []Expiry `json:"list"` // soonest first
	// Next is the soonest moment desired state changes by the clock alone.
	// After a targeted run it may be earlier than needed (an expiry the run
	// removed): an early expiry run finds nothing and sets it right.
	Next time.Time `json:"next"`
}

// expiriesOf lists the pending expiries of d: every key whose every source
// is time-bound, ending when its last source ends.
func expiriesOf(d *plan.Desired, cfg *Settings, names map[string]string) []Expiry {
	accountNames := map[string]string{}
	for _, a := range cfg.Accounts {
		accountNames[a.ID] = a.Name
	}
	var out []Expiry
	for acct, members := range d.Accounts {
		for _, dm := range members.All() {
			for _, w := range dm.Keys {
				key, reasons := w.Key, w.Reasons
				var last plan.Reason
				bounded := len(reasons) > 0
				for _, rs := range reasons {
					if rs.Expires.IsZero() {
						bounded = false
						break
					}
					if rs.Expires.After(last.Expires) {
						last = rs
					}
				}
				if !bounded {
					continue
				}
				// Cloned: the index outlives the run, and the member's
				// email points into the run's member table, which it would
				// keep live (every email the build read).
				out = append(out, Expiry{
					Email: strings.Clone(dm.Email), Account: accountNames[acct], Role: mapping.KeyName(key, names),
					At: last.Expires, Source: expirySource(cfg, last),
				})
			}
		}
	}
	sortExpiries(out)
	return out
}

func sortExpiries(out []Expiry) {
	slices.SortFunc(out, func(a, b Expiry) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Account+"\x00"+identity.Key(a.Email)+"\x00"+a.Role, b.Account+"\x00"+identity.Key(b.Email)+"\x00"+b.Role)
	})
}

// nextExpiries is the index after rn. ok is false when rn says nothing
// about expiries (it built no desired state) and there is no index yet.
func (r *Reconciler) nextExpiries(rn *run) (idx *expiryIndex, ok bool) {
	old := r.expiryIndex()
	if rn.desired == nil {
		return old, old != nil
	}
	fresh := expiriesOf(rn.desired, rn.cfg, rn.result.Names)
	if rn.req.kind != targetedRun {
		return &expiryIndex{List: fresh, Next: rn.desired.NextExpiry}, true
	}
	if old == nil {
		return nil, false
	}
	idx = &expiryIndex{Next: rn.desired.NextExpiry}
	for _, e := range old.List {
		if !rn.scope[identity.Key(e.Email)] {
			idx.List = append(idx.List, e)
		}
	}
	idx.List = append(idx.List, fresh...)
	sortExpiries(idx.List)
	if !old.Next.IsZero() && old.Next.After(rn.now) && (idx.Next.IsZero() || old.Next.Before(idx.Next)) {
		idx.Next = old.Next
	}
	return idx, true
}

// refreshExpiries keeps the index rn leaves.
func (r *Reconciler) refreshExpiries(rn *run) {
	idx, ok := r.nextExpiries(rn)
	if !ok {
		return
	}
	if err := r.keepExpiries(idx); err != nil {
		r.log.Error("cannot keep pending expiries", "error", err)
	}
}

// expiryIndex is the index in memory, else as stored; nil when neither
// exists (a state written before the index was kept).
func (r *Reconciler) expiryIndex() *expiryIndex {
	if idx := r.expiries.Load(); idx != nil && r.Running() {
		return idx
	}
	raw, err := r.state.Status(expiriesKey)
	if err != nil || raw == nil {
		return nil
	}
	var idx expiryIndex
	if json.Unmarshal(raw, &idx) != nil {
		return nil
	}
	r.expiries.Store(&idx)
	return &idx
}

// keepExpiries stores idx, in memory and, when it changed, in the state.
func (r *Reconciler) keepExpiries(idx *expiryIndex) error {
	if old := r.expiries.Load(); old != nil && slices.Equal(old.List, idx.List) && old.Next.Equal(idx.Next) {
		return nil
	}
	r.expiries.Store(idx)
	raw, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encode pending expiries: %w", err)
	}
	if err := r.state.PutStatus(expiriesKey, raw); err != nil {
		return fmt.Errorf("store pending expiries: %w", err)
	}
	return nil
}

// pendingExpiries is what status shows: the index's entries still ahead
// of now, or, without an index, the expiries computed from the whole
// state (once; the result becomes the index).
func (r *Reconciler) pendingExpiries(cfg *Settings, now time.Time) ([]Expiry, time.Time, error) {
	idx := r.expiryIndex()
	if idx == nil {
		exp, next, err := r.computeExpiries(cfg, now)
		if err != nil {
			return nil, time.Time{}, err
		}
		idx = &expiryIndex{List: exp, Next: next}
		r.expiries.Store(idx)
	}
	var out []Expiry
	for _, e := range idx.List {
		if e.At.After(now) {
			out = append(out, e)
		}
	}
	return out, idx.Next, nil
}
