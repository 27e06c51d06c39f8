package daemon

import (
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
)

// maxPendingAnnouncements bounds the user ids, group ids and emails kept
// for the leader while notifications cannot go out (the database is slow
// or down). Past it, the pending changes become one request for a full
// run, which covers them all.
const maxPendingAnnouncements = 100_000

// announcer tells the leader about SCIM changes over the state's
// notifications, from a goroutine of its own, so that a SCIM answer does
// not wait for a notification's commit: in PostgreSQL a pg_notify is a
// transaction of its own, and with synchronous_commit its commit waits
// for a WAL flush (one more flush per SCIM write, in series with the
// answer). Changes that arrive while a notification is being sent are
// merged and go in the next one, split at the payload limit.
//
// Delivery stays what it was: best effort, a failure logged, and the
// leader's next full run covers what it missed; a backlog past
// maxPendingAnnouncements asks the leader for a full run.
type announcer struct {
	n   store.Notifier
	log *slog.Logger

	mu      sync.Mutex
	pending changeMessage
	count   int           // items in pending
	wake    chan struct{} // capacity 1: a send is due
	stopped bool
}

func newAnnouncer(n store.Notifier, log *slog.Logger) *announcer {
	return &announcer{n: n, log: log, wake: make(chan struct{}, 1)}
}

// add queues c for the leader. It never blocks on the database.
func (a *announcer) add(c scim.Change) {
	if len(c.UserIDs)+len(c.GroupIDs)+len(c.Emails) == 0 {
		return
	}
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		// After the stop: sent in series, as before the announcer.
		a.send(changeMessage{Users: c.UserIDs, Groups: c.GroupIDs, Emails: c.Emails})
		return
	}
	p := &a.pending
	if !p.All {
		p.Users = append(p.Users, c.UserIDs...)
		p.Groups = append(p.Groups, c.GroupIDs...)
		p.Emails = append(p.Emails, c.Emails...)
		a.count += len(c.UserIDs) + len(c.GroupIDs) + len(c.Emails)
		if a.count > maxPendingAnnouncements {
			a.log.Warn("too many SCIM changes waiting to be announced to the leader; asking it for a full reconcile instead", "pending", a.count)
			*p, a.count = changeMessage{All: true}, 0
		}
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default: // a send is due already and will take these too
	}
}

// run sends what is pending until stop is closed, then sends what is left
// and returns; add sends at once from then on.
func (a *announcer) run(stop <-chan struct{}) {
	for {
		select {
		case <-a.wake:
			a.flush()
		case <-stop:
			a.mu.Lock()
			a.stopped = true
			a.mu.Unlock()
			a.flush()
			return
		}
	}
}

// flush sends everything pending, in as few notifications as the payload
// limit allows.
func (a *announcer) flush() {
	a.mu.Lock()
	m := a.pending
	a.pending, a.count = changeMessage{}, 0
	a.mu.Unlock()
	if m.All {
		a.send(m)
		return
	}
	for _, part := range splitChange(m, store.MaxNotifyPayload) {
		a.send(part)
	}
}

func (a *announcer) send(m changeMessage) {
	if len(m.Users)+len(m.Groups)+len(m.Emails) == 0 && !m.All {
		return
	}
	if err := a.n.Notify(changesChannel, encodeMessage(m)); err != nil {
		// The leader's next full run covers it.
		a.log.Warn("cannot announce a SCIM change to the leader; the next full reconcile covers it", "error", err)
	}
}

// splitChange cuts m into messages whose JSON stays within limit bytes.
// One item too long for a message of its own becomes a request for a full
// run (encodeMessage), as a change that large always did.
func splitChange(m changeMessage, limit int) []changeMessage {
	var out []changeMessage
	var cur changeMessage
	size := len(`{"u":[],"g":[],"e":[]}`)
	put := func(item string, list func(*changeMessage) *[]string) {
		// An item costs its JSON string (escapes counted) and a comma.
		raw, _ := json.Marshal(item)
		cost := len(raw) + 1
		if size+cost > limit && len(cur.Users)+len(cur.Groups)+len(cur.Emails) > 0 {
			out = append(out, cur)
			cur, size = changeMessage{}, len(`{"u":[],"g":[],"e":[]}`)
		}
		l := list(&cur)
		*l = append(*l, item)
		size += cost
	}
	users := func(c *changeMessage) *[]string { return &c.Users }
	groups := func(c *changeMessage) *[]string { return &c.Groups }
	emails := func(c *changeMessage) *[]string { return &c.Emails }
	for _, u := range m.Users {
		put(u, users)
	}
	for _, g := range m.Groups {
		put(g, groups)
	}
	for _, e := range m.Emails {
		put(e, emails)
	}
	if len(cur.Users)+len(cur.Groups)+len(cur.Emails) > 0 {
		out = append(out, cur)
	}
	return out
}
