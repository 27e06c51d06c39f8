package sync

// Intents close the gap between a Cloudflare write and the ledger commit
// that records it. Before every create or update the reconciler commits
// what it is about to own, as an entry without a member id: the "intent".
// The answer then confirms it (the entry gets its member id) or, when the
// answer proves nothing changed, takes it back. When the answer is lost (a
// reset after the write, a timeout, a restart between the write and its
// commit) the intent stays, and the next fresh listing of the account
// settles it: a member that exists is scimflare's, not adopted, so a role
// scimflare granted is never filed as found; a member that does not exist
// was never invited.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// lostAnswer ends the reason of an audit record written when a listing
// shows a change whose answer never arrived.
const lostAnswer = "applied by an earlier write whose answer was lost (connection reset, timeout or restart); recorded from what Cloudflare shows now"

// isIntent: the entry was written before a create or update and no answer
// has confirmed it yet. Every confirmed entry carries the member id.
func isIntent(e store.LedgerEntry) bool { return e.MemberID == "" }

func planEntry(e store.LedgerEntry) plan.LedgerEntry {
	return plan.LedgerEntry{MemberID: e.MemberID, Created: e.Created, Managed: e.Managed, Found: e.Found}
}

func storeEntry(accountID, email string, e plan.LedgerEntry, now time.Time) store.LedgerEntry {
	return store.LedgerEntry{
		AccountID: accountID, Email: email, MemberID: e.MemberID, Created: e.Created,
		Managed: e.Managed, Found: e.Found, UpdatedAt: now,
	}
}

func lookup(m *plan.Actuals, lower string) *plan.Actual {
	if a, ok := m.Get(lower); ok {
		return &a
	}
	return nil
}

func sortedSet(keys ...[]string) []string {
	out := slices.Concat(keys...)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, k := range a {
		if !slices.Contains(b, k) {
			out = append(out, k)
		}
	}
	return out
}

// intentOf is the entry to commit before ch is written, and the commit.
// A create claims the keys it invites with, plus those of an earlier,
// unsettled invitation of the same email. An update claims what the
// entry already managed plus the keys it adds, never a key found on the
// member: prev's Found, or, for a member not yet in the ledger, every key
// it holds now (what adoption files as found). The member cache keeps the
// member as it is before the write, for settling to compare against.
func intentOf(ch plan.Change, prev plan.LedgerEntry, had bool, act plan.Actual, now time.Time) (plan.LedgerEntry, store.SyncCommit) {
	var e plan.LedgerEntry
	c := store.SyncCommit{}
	if ch.Op == plan.OpCreate {
		claims := ch.NewLedger.Managed
		if had && prev.MemberID == "" {
			// An earlier invitation's answer was lost and no listing has
			// settled it yet: its claims stand beside this one's, or its
			// keys would be filed as found when this invitation is refused
			// as a duplicate.
			claims = sortedSet(prev.Managed, claims)
		}
		e = plan.LedgerEntry{Created: true, Managed: sortedSet(claims)}
		c.DeleteCache = []store.CachedMember{{AccountID: ch.AccountID, Email: ch.Email}}
	} else if ch.Converts() {
		// The write replaces roles with their policies: the claims are
		// the policies, so that a lost answer settles to keys the member
		// will be listed with.
		e = plan.LedgerEntry{
			Created: prev.Created,
			Managed: sortedSet(ch.NewLedger.Managed, ch.Removed),
			Found:   sortedSet(ch.NewLedger.Found),
		}
		c.PutCache = []store.CachedMember{{AccountID: ch.AccountID, MemberID: act.MemberID, Email: ch.Email, Status: act.Status, Keys: act.Keys}}
	} else {
		found := prev.Found
		if !had {
			found = act.Keys
		}
		e = plan.LedgerEntry{
			Created: prev.Created,
			Managed: sortedSet(prev.Managed, minus(ch.Added, found)),
			Found:   sortedSet(found),
		}
		c.PutCache = []store.CachedMember{{AccountID: ch.AccountID, MemberID: act.MemberID, Email: ch.Email, Status: act.Status, Keys: act.Keys}}
	}
	c.PutLedger = []store.LedgerEntry{storeEntry(ch.AccountID, ch.Email, e, now)}
	return e, c
}

// notApplied reports whether Cloudflare's answer proves the write changed
// nothing: a 4xx refusal of the request itself. A duplicate-invite answer
// to a create proves nothing, as it may answer the client's retry of an
// invitation that landed; nor do 429, 5xx, timeouts or resets.
func notApplied(ch plan.Change, err error) bool {
	var api *cloudflare.APIError
	if !errors.As(err, &api) || api.Status < 400 || api.Status >= 500 || api.Status == http.StatusTooManyRequests {
		return false
	}
	return ch.Op != plan.OpCreate || !errors.Is(err, cloudflare.ErrAlreadyMember)
}

// settleIntent decides what an intent means now that a fresh listing
// shows act (nil: no such member). before is the member as it was when the
// intent was written (nil: scimflare was inviting it). It adds the ledger
// and audit writes to c and returns the entry to plan with (nil: none) and
// the change the listing shows applied (nil: none).
//
//   - invite, member absent: the invitation never landed (or was withdrawn):
//     the intent goes; the plan invites again if still wanted.
//   - invite, member holding any key invited with: scimflare's invitation
//     landed: created, the intent's keys managed, audited now. Other keys
//     it holds were added by hand afterwards: drift.
//   - invite, member holding none of them: someone else invited the email
//     and Cloudflare refused scimflare's invitation: adopted, every key
//     found.
//   - update, member absent: removed outside scimflare: gone, audited.
//   - update, member present: the intent's claims stand (they never include
//     a found key); audited when the member changed since the intent.
func (reg *registry) settleIntent(c *store.SyncCommit, accountID, email string, e plan.LedgerEntry, before, act *plan.Actual) (*plan.LedgerEntry, *plan.Change) {
	now := reg.clock()
	names := reg.result.Names
	if act == nil {
		if before == nil {
			c.DeleteLedger = append(c.DeleteLedger, store.LedgerEntry{AccountID: accountID, Email: email})
			return nil, nil
		}
		g := goneCommit(store.LedgerEntry{AccountID: accountID, Email: email, MemberID: before.MemberID, Managed: e.Managed}, reg.req.actor, now, names)
		c.DeleteLedger = append(c.DeleteLedger, g.DeleteLedger...)
		c.DeleteCache = append(c.DeleteCache, g.DeleteCache...)
		c.Audit = append(c.Audit, g.Audit...)
		return nil, nil
	}
	if act.Email != "" {
		email = act.Email
	}
	keys := sortedSet(act.Keys)
	var entry plan.LedgerEntry
	var ch *plan.Change
	switch {
	case before == nil && len(minus(e.Managed, keys)) == len(e.Managed):
		entry = plan.LedgerEntry{MemberID: act.MemberID, Found: keys}
	case before == nil:
		entry = plan.LedgerEntry{MemberID: act.MemberID, Created: true, Managed: e.Managed}
		ch = &plan.Change{Kind: plan.AddMember, Op: plan.OpCreate, After: keys, Added: keys}
	default:
		entry = plan.LedgerEntry{MemberID: act.MemberID, Created: e.Created, Managed: e.Managed, Found: e.Found}
		if old := sortedSet(before.Keys); !slices.Equal(old, keys) {
			ch = &plan.Change{Kind: plan.UpdateRoles, Op: plan.OpUpdate, Before: old, After: keys,
				Added: minus(keys, old), Removed: minus(old, keys)}
		}
	}
	c.PutLedger = append(c.PutLedger, storeEntry(accountID, email, entry, now))
	if ch != nil {
		ch.AccountID, ch.Email, ch.MemberID, ch.NewLedger = accountID, email, act.MemberID, entry
		ch.Privileged = len(ch.Added) > 0
		ch.Reason = reg.sources(accountID, email, ch.Added)
		if ch.Reason != "" {
			ch.Reason += "; "
		}
		ch.Reason += lostAnswer
		c.Audit = append(c.Audit, store.AuditRecord{
			Time: now, Actor: reg.req.actor, Action: string(ch.Kind), AccountID: accountID, Email: email,
			Before: mapping.KeyNames(ch.Before, names), After: mapping.KeyNames(ch.After, names),
			Reason: ch.Reason, Privileged: ch.Privileged, Sources: reg.auditSources(accountID, email, ch.After),
		})
	}
	return &entry, ch
}

// sources says why keys are wanted, in the words a change's reason uses.
// auditSources is, as data, every reason the member holds each of keys:
// what a reader of the trail (report access --at) uses instead of the
// Reason prose. Keys with no live reason (found, adopted, drift) have none.
func (reg *registry) auditSources(accountID, email string, keys []string) []store.AuditSource {
	dm := reg.planner.wanted(accountID, email)
	if dm == nil {
		return nil
	}
	var out []store.AuditSource
	for _, k := range slices.Sorted(slices.Values(keys)) {
		for _, r := range dm.Keys.Reasons(k) {
			out = append(out, store.AuditSource{
				Role: mapping.KeyName(k, reg.result.Names), Kind: r.Kind, Group: r.Group, Path: slices.Clone(r.Path),
				MappingIndex: r.MappingIndex, GrantID: r.GrantID, Expires: r.Expires,
			})
		}
	}
	return out
}

func (reg *registry) sources(accountID, email string, keys []string) string {
	dm := reg.planner.wanted(accountID, email)
	if dm == nil {
		return ""
	}
	var parts []string
	for _, k := range keys {
		for _, r := range dm.Keys.Reasons(k) {
			if s := r.String(); !slices.Contains(parts, s) {
				parts = append(parts, s)
			}
		}
	}
	return strings.Join(parts, "; ")
}

// settleAll settles every intent of the account against a listing made
// mid-run, with the run's view before it as what the intents changed.
func (reg *registry) settleAll(in *plan.AccountInput, fresh *plan.Actuals) error {
	var lowers []string
	for lower, e := range in.Ledger.All() {
		if e.MemberID == "" {
			lowers = append(lowers, lower)
		}
	}
	if len(lowers) == 0 {
		return nil
	}
	sort.Strings(lowers)
	c := store.SyncCommit{}
	entries := map[string]*plan.LedgerEntry{}
	var settled []plan.Change
	for _, lower := range lowers {
		email := lower
		if b := lookup(in.Actual, lower); b != nil && b.Email != "" {
			email = b.Email
		}
		prev, _ := in.Ledger.Get(lower)
		entry, ch := reg.settleIntent(&c, in.ID, email, prev, lookup(in.Actual, lower), lookup(fresh, lower))
		entries[lower] = entry
		if ch != nil {
			settled = append(settled, *ch)
		}
	}
	if err := reg.commitSettled(c, settled); err != nil {
		return fmt.Errorf("record the outcome of unconfirmed writes: %w", err)
	}
	for lower, entry := range entries {
		if entry == nil {
			in.Ledger.Delete(lower)
		} else {
			in.Ledger.Set(lower, *entry)
		}
	}
	return nil
}

// commitSettled writes what settling decided, in one transaction, and
// reports the changes it found applied.
func (reg *registry) commitSettled(c store.SyncCommit, settled []plan.Change) error {
	if len(c.PutLedger)+len(c.DeleteLedger)+len(c.Audit) == 0 {
		return nil
	}
	if err := reg.state.Commit(c); err != nil {
		return err
	}
	for _, ch := range settled {
		reg.result.Settled = append(reg.result.Settled, ch)
		reg.m.ChangesApplied.WithLabelValues(string(ch.Kind)).Inc()
		reg.log.Warn("a change whose answer was lost is in Cloudflare; recorded now", "account", reg.result.AccountNames[ch.AccountID],
			"kind", string(ch.Kind), "email", ch.Email, "before", mapping.KeyNames(ch.Before, reg.result.Names), "after", mapping.KeyNames(ch.After, reg.result.Names))
	}
	return nil
}

// record stores the ledger entries the plan corrects without a Cloudflare
// change, for accounts this run listed: a cached listing cannot prove a
// key gone, and dropping a managed key on its word would turn it into
// drift that is never removed.
func (reg *registry) record(recs []plan.Record) error {
	byAccount := map[string]store.SyncCommit{}
	now := reg.clock()
	for _, rec := range recs {
		// inputs and reads are both in configuration order.
		i, ok := reg.byID[rec.AccountID]
		if !ok || !reg.reads[i].fresh {
			continue
		}
		c := byAccount[rec.AccountID]
		c.PutLedger = append(c.PutLedger, storeEntry(rec.AccountID, rec.Email, rec.Entry, now))
		byAccount[rec.AccountID] = c
	}
	for i := range reg.inputs {
		in := &reg.inputs[i]
		c, ok := byAccount[in.ID]
		if !ok {
			continue
		}
		if err := reg.state.Commit(c); err != nil {
			return fmt.Errorf("record the ledger of account %s: %w", in.Name, err)
		}
		for _, e := range c.PutLedger {
			in.Ledger.Set(identity.Key(e.Email), planEntry(e))
		}
	}
	return nil
}
