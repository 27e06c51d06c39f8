package sync

import (
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// removalStamp is one applied change's removals, for the rolling-window
// guard (sync.guards.max_removals_per_window).
type removalStamp struct {
	At time.Time `json:"at"`
	N  int       `json:"n"`
}

// WithheldRemoval is a removal a guard holds back: who waits, in which
// account, since when, and why. Status, /readyz and the log show them.
type WithheldRemoval struct {
	Account string    `json:"account"` // account name
	Email   string    `json:"email"`
	Since   time.Time `json:"since"`
	Why     string    `json:"why"`
}

// savedWithheld is a WithheldRemoval as the state keeps it (account id).
type savedWithheld struct {
	AccountID string    `json:"account"`
	Email     string    `json:"email"`
	Since     time.Time `json:"since"`
	Why       string    `json:"why"`
}

// windowRemovals counts each account's removals within the window ending
// at now.
func windowRemovals(stamps map[string][]removalStamp, window time.Duration, now time.Time) map[string]int {
	out := map[string]int{}
	for id, ss := range stamps {
		for _, s := range ss {
			if now.Sub(s.At) < window {
				out[id] += s.N
			}
		}
	}
	return out
}

// pruneRemovals drops the stamps that left the window.
func pruneRemovals(stamps map[string][]removalStamp, window time.Duration, now time.Time) map[string][]removalStamp {
	out := map[string][]removalStamp{}
	for id, ss := range stamps {
		var kept []removalStamp
		for _, s := range ss {
			if now.Sub(s.At) < window {
				kept = append(kept, s)
			}
		}
		if len(kept) > 0 {
			out[id] = kept
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// nextWithheld is the list of guard-withheld removals after a run: a run
// over every email replaces it, a targeted one replaces its scope. A
// removal withheld before keeps its first Since.
func nextWithheld(old []savedWithheld, c *plan.Changes, scope map[string]bool, now time.Time) []savedWithheld {
	since := map[string]time.Time{}
	id := func(account, email string) string { return account + "\x00" + identity.Key(email) }
	for _, w := range old {
		since[id(w.AccountID, w.Email)] = w.Since
	}
	var out []savedWithheld
	if scope != nil {
		for _, w := range old {
			if !scope[identity.Key(w.Email)] {
				out = append(out, w)
			}
		}
	}
	for _, w := range c.Withheld {
		if w.By != plan.WithheldByGuard {
			continue
		}
		s, ok := since[id(w.Change.AccountID, w.Change.Email)]
		if !ok {
			s = now
		}
		out = append(out, savedWithheld{AccountID: w.Change.AccountID, Email: w.Change.Email, Since: s, Why: w.Why})
	}
	slices.SortFunc(out, func(a, b savedWithheld) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(id(a.AccountID, a.Email), id(b.AccountID, b.Email))
	})
	return slices.CompactFunc(out, func(a, b savedWithheld) bool { return id(a.AccountID, a.Email) == id(b.AccountID, b.Email) })
}
