package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scimflare/scimflare/internal/terminal"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// ErrNotEmail: explain was asked about something that is not an email.
var ErrNotEmail = errors.New("not an email address")

// ExplainOptions tune Explain.
type ExplainOptions struct {
	// Live lists every account's members instead of reading the member
	// cache: ceil(members/50) calls per account on top of the name lookups.
	Live bool
}

// Explanation answers "why does this person have this access, or not":
// for one email, every role it holds in each account and every role it
// should hold, each with its reasons. `scimflare explain --json` prints it
// as is; times are RFC 3339, absent ones are omitted.
type Explanation struct {
	Email string    `json:"email"`
	At    time.Time `json:"at"` // the moment explained
	// PlanOnly: scimflare computes changes but writes none to Cloudflare.
	PlanOnly bool `json:"plan_only"`
	// Users are the SCIM users whose identity email is Email, and a user
	// whose userName is Email but whose identity email is not.
	Users []ExplainedUser `json:"scim_users"`
	// Notes are facts about the person that change every account: not in
	// SCIM, inactive, no identity email, protected.
	Notes    []string           `json:"notes"`
	Accounts []ExplainedAccount `json:"accounts"`
}

// ExplainedUser is one SCIM user behind the email.
type ExplainedUser struct {
	ID          string     `json:"id"`
	UserName    string     `json:"userName"`
	Email       string     `json:"email"` // identity email; "" when the IdP sent none
	Active      bool       `json:"active"`
	ActiveSince *time.Time `json:"active_since,omitempty"`
}

// Sources of an account's Cloudflare side.
const (
	SourceCache = "cache" // the member list of the last full scan, kept current by every change applied since
	SourceLive  = "live"  // listed for this explain
	SourceNone  = "none"  // never listed, and no API token to list it
)

// ExplainedAccount is the person in one configured account.
type ExplainedAccount struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Source says where Cloudflare's side comes from; ScannedAt is when the
	// cached list was taken (SourceCache only).
	Source    string     `json:"source"`
	ScannedAt *time.Time `json:"scanned_at,omitempty"`
	// Member is nil when the email is not a member (nor invited).
	Member *ExplainedMember `json:"member"`
	// GuardTripped: the removal guard of this account tripped and has not
	// been overridden with `apply --force`.
	GuardTripped bool            `json:"guard_tripped"`
	Roles        []ExplainedRole `json:"roles"`
}

// Ownership of a member.
const (
	OwnedCreated = "created"     // scimflare invited the member
	OwnedAdopted = "adopted"     // the member existed; scimflare added roles to it
	OwnedNone    = "not_managed" // scimflare has granted this member nothing
)

// ExplainedMember is the Cloudflare member.
type ExplainedMember struct {
	ID        string `json:"id"`
	Status    string `json:"status"` // "accepted", or "pending" for an invitation
	Ownership string `json:"ownership"`
}

// States of a role.
const (
	StateGranted  = "granted"   // held, wanted, and granted by scimflare
	StateAdopted  = "adopted"   // held since before scimflare adopted the member: never changed by it
	StateToAdd    = "to_add"    // wanted, not held: the next reconcile adds it
	StateToRemove = "to_remove" // held, not wanted: the next reconcile removes it
	StateWithheld = "withheld"  // a change the next reconcile would make, held back (see Withheld)
	StateDrift    = "drift"     // held, but neither granted by scimflare nor found at adoption
	StateEnded    = "ended"     // not held; its time-bound source ended
)

// ExplainedRole is one role (or policy) of the person in one account.
type ExplainedRole struct {
	Role string `json:"role"` // name; a policy reads "<permission groups> on <resource groups>"
	Has  bool   `json:"has"`  // held in Cloudflare now (per Source)
	// Should: a live mapping or temporary grant asks for it.
	Should bool `json:"should"`
	// Managed: scimflare granted it and takes it away when no source is left.
	Managed bool   `json:"managed"`
	State   string `json:"state"`
	// Change is the kind of the change the next reconcile makes to this
	// role (add_member, update_roles, remove_member, expire_grant), if any.
	Change string `json:"change,omitempty"`
	// Withheld says which policy holds the change back: "protected", "last
	// super administrator", or the removal guard's reason.
	Withheld string `json:"withheld,omitempty"`
	// Via names the user groups (accounts[].model: user_groups) the role
	// is held through, as opposed to on the member itself.
	Via     []string          `json:"via_user_groups,omitempty"`
	Reasons []ExplainedReason `json:"reasons"`
}

// Kinds of reason.
const (
	ReasonMapping  = "mapping"   // an IdP group through a mapping
	ReasonGrant    = "grant"     // a temporary grant
	ReasonEnded    = "ended"     // a mapping's ttl or expires_at, or a temporary grant, that has ended
	ReasonAdopted  = "adopted"   // found on the member at adoption
	ReasonDrift    = "drift"     // neither granted nor found
	ReasonNoSource = "no_source" // granted by scimflare, no longer asked for
	ReasonWaiting  = "waiting"   // user groups: cannot join the group yet (not a member, or a pending one Cloudflare refuses)
)

// ExplainedReason is one reason for (or against) a role. Fields not
// relevant to Kind are omitted.
type ExplainedReason struct {
	Kind string `json:"kind"`
	// Mapping is the index in `mappings`, MappingGroup its group (or
	// "externalId X"), Account its account.
	Mapping      *int   `json:"mapping,omitempty"`
	MappingGroup string `json:"mapping_group,omitempty"`
	Account      string `json:"account,omitempty"`
	// Path is the group names from the mapped group down to the group that
	// holds the user directly: one name when the membership is direct.
	Path []string `json:"path,omitempty"`
	TTL  string   `json:"ttl,omitempty"`
	// Grant is a temporary grant's id, with its reason and actor.
	Grant       string     `json:"grant,omitempty"`
	GrantReason string     `json:"grant_reason,omitempty"`
	Actor       string     `json:"actor,omitempty"`
	Start       *time.Time `json:"start,omitempty"`   // when a ttl or a grant started
	Expires     *time.Time `json:"expires,omitempty"` // when the source ends, or ended
	Text        string     `json:"text"`              // the reason in words
}

// Explain says, for one email and per account, which roles it has in
// Cloudflare and which it should have, and why. Cloudflare's side comes
// from the member cache (how old it is is part of the answer) unless
// o.Live; names cost the usual name-lookup calls. It reads and plans like
// a reconcile, without waiting for a running one, and writes nothing.
func (r *Reconciler) Explain(ctx context.Context, email string, o ExplainOptions) (*Explanation, error) {
	email = strings.TrimSpace(email)
	if !strings.Contains(email, "@") {
		return nil, fmt.Errorf("explain %q: %w", email, ErrNotEmail)
	}
	// The SCIM side is looked up as typed (to name a user whose address
	// the identity rule refuses); Cloudflare's side by the rule's key.
	// A preview plans every email against the member cache, which is
	// what the next reconcile will see; Live makes it list instead.
	rn := r.newPreviewRun("explain", o.Live, r.now())
	saved, err := r.loadStatus()
	if err != nil {
		return nil, fmt.Errorf("explain %s: %w", email, err)
	}
	rn.saved, rn.latched = saved, saved.Tripped
	if _, err := rn.readAndPlan(ctx); err != nil {
		rn.abort(err)
		return nil, fmt.Errorf("explain %s: %w", email, err)
	}
	x := &Explanation{Email: email, At: rn.now, PlanOnly: rn.planOnly, Notes: []string{}}
	if err := x.scimUsers(r.state, rn.cfg); err != nil {
		return nil, fmt.Errorf("explain %s: %w", email, err)
	}
	for i, a := range rn.cfg.Accounts {
		x.Accounts = append(x.Accounts, rn.explainAccount(i, a, identity.Key(email), slices.Contains(saved.Tripped, a.ID)))
	}
	return x, nil
}

// Desired is the desired state at now, every key with its reasons, and
// the names of the keys: what a reconcile at now plans toward, read the way
// Explain reads it (the cached names when usable; without a Cloudflare
// client every name stands for itself). A name that does not resolve is an
// error, as it aborts a reconcile. It waits for no running reconcile and
// writes nothing.
func (r *Reconciler) Desired(ctx context.Context, now time.Time) (*plan.Desired, map[string]string, error) {
	rn := r.newPreviewRun("report", false, now)
	if _, err := rn.buildDesired(ctx); err != nil {
		return nil, nil, fmt.Errorf("compute desired state: %w", err)
	}
	return rn.desired, rn.result.Names, nil
}

func (x *Explanation) scimUsers(st State, cfg *Settings) error {
	var users []store.User
	err := st.View(func(rd store.Reader) error {
		us, err := rd.UsersByEmail(x.Email)
		if err != nil {
			return err
		}
		u, err := rd.UserByUserName(x.Email)
		switch {
		case err == nil:
			if !slices.ContainsFunc(us, func(o store.User) bool { return o.ID == u.ID }) {
				us = append(us, u)
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		users = us
		return nil
	})
	if err != nil {
		return fmt.Errorf("look up SCIM users: %w", err)
	}
	active := false
	for _, u := range users {
		eu := ExplainedUser{ID: u.ID, UserName: u.UserName, Email: u.Email, Active: u.Active}
		if !u.ActiveSince.IsZero() {
			eu.ActiveSince = ptr(u.ActiveSince.UTC())
		}
		x.Users = append(x.Users, eu)
		who := fmt.Sprintf("SCIM user %s (userName %s)", u.ID, u.UserName)
		switch {
		case u.Email == "":
			x.note("%s has no identity email (identity.email_from: %s): scimflare grants it nothing", who, cfg.Identity.EmailFrom)
		case !identity.Valid(u.Email):
			_, err := identity.Email(u.Email)
			x.note("%s has identity email %q, which the identity rule refuses (%v): scimflare grants it nothing", who, u.Email, err)
		case identity.Key(u.Email) != identity.Key(x.Email):
			x.note("%s has identity email %s, not this one: explain --user %s shows its access", who, u.Email, u.Email)
		case !u.Active:
			x.note("%s is inactive (active: false): it loses every grant, temporary ones included, at the next reconcile", who)
		default:
			active = true
		}
	}
	if len(users) == 0 {
		x.note("no SCIM user has this email or userName: no mapping or temporary grant applies, so any role it holds was not granted from the IdP")
	}
	if slices.ContainsFunc(cfg.Sync.Protected, func(p string) bool { return identity.Key(p) == identity.Key(x.Email) }) {
		x.note("protected (sync.protected): scimflare never adds, changes or removes anything on this member")
	}
	if !active && len(users) > 0 && !slices.ContainsFunc(users, func(u store.User) bool {
		return identity.Valid(u.Email) && identity.Key(u.Email) == identity.Key(x.Email)
	}) {
		x.note("no SCIM user has this identity email: no mapping or temporary grant applies to it")
	}
	if x.PlanOnly {
		x.note("plan-only: scimflare computes the changes below but does not make them")
	}
	return nil
}

func (x *Explanation) note(format string, args ...any) {
	x.Notes = append(x.Notes, fmt.Sprintf(format, args...))
}

func ptr[T any](v T) *T { return &v }

func (rn *run) explainAccount(i int, a mapping.Account, lower string, tripped bool) ExplainedAccount {
	in, rd := rn.inputs[i], rn.reads[i]
	ea := ExplainedAccount{Name: a.Name, ID: a.ID, GuardTripped: tripped, Roles: []ExplainedRole{}}
	switch {
	case rd.fresh:
		ea.Source = SourceLive
	case !rd.scannedAt.IsZero():
		ea.Source, ea.ScannedAt = SourceCache, ptr(rd.scannedAt.UTC())
	default:
		ea.Source = SourceNone
	}
	act, present := in.Actual.Get(lower)
	led, inLedger := in.Ledger.Get(lower)
	dm := memberOf(in.Desired, lower)
	// On a user-groups account the member plan holds the per-member part;
	// the person should hold it all, and holds some through groups.
	dm, via, waits := rn.explainGroups(a.ID, lower, dm)
	wanted := len(keysOfDesired(dm)) > 0
	if present {
		em := &ExplainedMember{ID: act.MemberID, Status: act.Status, Ownership: OwnedNone}
		switch {
		case inLedger && led.Created:
			em.Ownership = OwnedCreated
		case inLedger:
			em.Ownership = OwnedAdopted
		}
		ea.Member = em
	}
	adopting := present && !inLedger && wanted

	var expired []plan.Expired
	for _, e := range in.Expired {
		if identity.Key(e.Email) == lower {
			expired = append(expired, e)
		}
	}
	var kept []plan.Change
	for _, ac := range rn.result.Changes.Accounts {
		if ac.ID != a.ID {
			continue
		}
		for _, ch := range ac.Changes {
			if identity.Key(ch.Email) == lower {
				kept = append(kept, ch)
			}
		}
	}
	var held []plan.Withheld
	for _, w := range rn.result.Changes.Withheld {
		if w.Change.AccountID == a.ID && identity.Key(w.Change.Email) == lower {
			held = append(held, w)
		}
	}

	keys := map[string]bool{}
	if present {
		for _, k := range act.Keys {
			keys[k] = true
		}
	}
	for k := range via {
		keys[k] = true
	}
	for _, k := range keysOfDesired(dm) {
		keys[k] = true
	}
	for _, e := range expired {
		keys[e.Key] = true
	}
	for k := range keys {
		er := ExplainedRole{Reasons: []ExplainedReason{}}
		er.Role = mapping.KeyNames([]string{k}, rn.result.Names)[0]
		er.Via = via[k]
		er.Has = present && slices.Contains(act.Keys, k) || len(er.Via) > 0
		er.Should = dm != nil && dm.Keys.Has(k)
		// What an owned group grants, scimflare manages.
		er.Managed = inLedger && slices.Contains(led.Managed, k) || len(er.Via) > 0
		found := er.Has && len(er.Via) == 0 && (adopting || (inLedger && slices.Contains(led.Found, k)))
		drift := er.Has && !er.Managed && !found && !er.Should

		if er.Should {
			for _, reason := range dm.Keys.Reasons(k) {
				er.Reasons = append(er.Reasons, rn.explainReason(reason, rn.now, false))
			}
		}
		if w := waits[k]; w != "" && !er.Has {
			er.Reasons = append(er.Reasons, ExplainedReason{Kind: ReasonWaiting, Text: w})
		}
		for _, e := range expired {
			if e.Key == k {
				er.Reasons = append(er.Reasons, rn.explainReason(e.Reason, rn.now, true))
			}
		}
		switch {
		case found && adopting:
			er.Reasons = append(er.Reasons, ExplainedReason{Kind: ReasonAdopted,
				Text: "on the member in Cloudflare already: scimflare adopts the member at the next reconcile and never changes this role"})
		case found:
			er.Reasons = append(er.Reasons, ExplainedReason{Kind: ReasonAdopted,
				Text: "found on the member when scimflare adopted it: not managed, never changed by scimflare"})
		case drift:
			what := "reported only (sync.unmanaged: report)"
			if rn.cfg.Sync.Unmanaged == UnmanagedRemove {
				what = "removed by the next reconcile (sync.unmanaged: remove)"
			}
			er.Reasons = append(er.Reasons, ExplainedReason{Kind: ReasonDrift,
				Text: "in Cloudflare, but neither granted by scimflare nor found at adoption: drift, " + what})
		case er.Has && er.Managed && !er.Should && !slices.ContainsFunc(expired, func(e plan.Expired) bool { return e.Key == k }):
			er.Reasons = append(er.Reasons, ExplainedReason{Kind: ReasonNoSource,
				Text: "granted by scimflare, and no mapping or temporary grant asks for it any more"})
		}

		for _, ch := range kept {
			if slices.Contains(ch.Added, k) || slices.Contains(ch.Removed, k) || slices.Contains(ch.RemovedUnmanaged, k) {
				er.Change = string(ch.Kind)
			}
		}
		for _, w := range held {
			if slices.Contains(w.Change.Added, k) || slices.Contains(w.Change.Removed, k) || slices.Contains(w.Change.RemovedUnmanaged, k) {
				er.Change, er.Withheld = string(w.Change.Kind), w.Why
			}
		}
		switch {
		case er.Withheld != "":
			er.State = StateWithheld
		case er.Change != "" && !er.Has:
			er.State = StateToAdd
		case er.Change != "":
			er.State = StateToRemove
		case found:
			er.State = StateAdopted
		case er.Has && er.Should:
			er.State = StateGranted
		case drift:
			er.State = StateDrift
		case !er.Has && !er.Should:
			er.State = StateEnded
		case er.Has:
			// Held and managed, not asked for, and no change planned: only
			// possible while a run's reads disagree; say what is true.
			er.State = StateGranted
		default:
			er.State = StateToAdd
		}
		ea.Roles = append(ea.Roles, er)
	}
	slices.SortFunc(ea.Roles, func(x, y ExplainedRole) int { return strings.Compare(x.Role, y.Role) })
	return ea
}

// memberOf is the member under key in t; nil when t wants nothing of it.
func memberOf(t *plan.Wanted, key string) *plan.DesiredMember {
	if dm, ok := t.Get(key); ok {
		return &dm
	}
	return nil
}

func keysOfDesired(dm *plan.DesiredMember) []string {
	if dm == nil {
		return nil
	}
	return dm.Keys.KeyList()
}

// explainReason puts one plan reason in words, with what the config and
// the stored grant add to it.
func (rn *run) explainReason(r plan.Reason, now time.Time, ended bool) ExplainedReason {
	er := ExplainedReason{Kind: r.Kind}
	if ended {
		er.Kind = ReasonEnded
	}
	if !r.Expires.IsZero() {
		er.Expires = ptr(r.Expires.UTC())
	}
	var what string
	if r.Kind == plan.ReasonGrant {
		er.Grant = r.GrantID
		what = "temporary grant " + r.GrantID
		for _, g := range rn.grants {
			if g.ID != r.GrantID {
				continue
			}
			er.GrantReason, er.Actor, er.Start = g.Reason, g.Actor, ptr(g.Start.UTC())
			what += fmt.Sprintf(" by %s at %s: %q", g.Actor, stamp(g.Start), g.Reason)
			if !g.RevokedAt.IsZero() && !g.RevokedAt.After(now) {
				what += ", revoked"
			}
		}
	} else {
		er.Mapping, er.Path = ptr(r.MappingIndex), slices.Clone(r.Path)
		var m mapping.ResolvedMapping
		for _, rm := range rn.res.Mappings {
			if rm.Index == r.MappingIndex {
				m = rm
			}
		}
		er.MappingGroup, er.Account = m.GroupLabel(), rn.result.AccountNames[m.AccountID]
		what = fmt.Sprintf("group %s → mappings[%d] (%s on %s)", strings.Join(r.Path, " > "), r.MappingIndex, er.MappingGroup, er.Account)
		if len(r.Path) > 1 {
			what = fmt.Sprintf("group %s, nested in %s → mappings[%d] (%s on %s)", r.Path[len(r.Path)-1],
				strings.Join(r.Path[:len(r.Path)-1], " > "), r.MappingIndex, er.MappingGroup, er.Account)
		}
		if m.TTL > 0 && !r.Expires.IsZero() && (m.ExpiresAt == nil || r.Expires.Before(*m.ExpiresAt)) {
			er.TTL = compact(m.TTL)
			er.Start = ptr(r.Expires.Add(-m.TTL).UTC())
			what += fmt.Sprintf(", ttl %s from %s", er.TTL, stamp(*er.Start))
		} else if m.ExpiresAt != nil {
			what += ", expires_at"
		}
	}
	switch {
	case r.Expires.IsZero():
	case ended:
		what += fmt.Sprintf(": ended %s (%s ago)", stamp(r.Expires), short(now.Sub(r.Expires)))
	default:
		what += fmt.Sprintf(", until %s (in %s)", stamp(r.Expires), short(r.Expires.Sub(now)))
	}
	er.Text = what
	return er
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// short is a duration for people: seconds under a minute, else minutes.
func short(d time.Duration) string {
	if d < time.Minute {
		return compact(d.Round(time.Second))
	}
	return compact(d.Round(time.Minute))
}

// compact drops zero trailing units: 12h, 1h30m, 90s stay readable.
func compact(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// WriteText prints the explanation for a terminal: the person, then one
// block per account with an aligned table of roles and their reasons.
func (x *Explanation) WriteText(w io.Writer) error {
	var b strings.Builder
	// Values from SCIM and Cloudflare cannot forge a line or a colour.
	esc := terminal.Escape
	fmt.Fprintf(&b, "%s, as of %s\n", esc(x.Email), stamp(x.At))
	for _, u := range x.Users {
		state := "inactive"
		if u.Active {
			state = "active"
			if u.ActiveSince != nil {
				state += " since " + stamp(*u.ActiveSince)
			}
		}
		email := u.Email
		if email == "" {
			email = "(none)"
		}
		fmt.Fprintf(&b, "  SCIM user %s: userName %s, identity email %s, %s\n", esc(u.ID), esc(u.UserName), esc(email), state)
	}
	for _, n := range x.Notes {
		fmt.Fprintf(&b, "  note: %s\n", esc(n))
	}
	for _, a := range x.Accounts {
		fmt.Fprintf(&b, "\naccount %s (%s)\n", esc(a.Name), esc(a.ID))
		switch a.Source {
		case SourceLive:
			b.WriteString("  Cloudflare: listed just now\n")
		case SourceCache:
			fmt.Fprintf(&b, "  Cloudflare: member list of %s (%s old; --live lists it now)\n", stamp(*a.ScannedAt), short(x.At.Sub(*a.ScannedAt)))
		default:
			b.WriteString("  Cloudflare: never listed (no API token): what the member holds is unknown\n")
		}
		if m := a.Member; m != nil {
			own := map[string]string{OwnedCreated: "invited by scimflare", OwnedAdopted: "adopted by scimflare", OwnedNone: "not managed by scimflare"}[m.Ownership]
			fmt.Fprintf(&b, "  member %s, %s, %s\n", esc(m.ID), esc(m.Status), own)
		} else {
			b.WriteString("  not a member\n")
		}
		if a.GuardTripped {
			b.WriteString("  removal guard TRIPPED on this account: `scimflare apply --force` after review\n")
		}
		if len(a.Roles) == 0 {
			b.WriteString("  no role held or wanted\n")
			continue
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ROLE\tHAS\tSHOULD\tSTATE\tWHY")
		for _, r := range a.Roles {
			state := r.State
			if r.Withheld != "" {
				state += " (" + r.Withheld + ")"
			}
			var lines []string
			for _, why := range r.Reasons {
				lines = append(lines, why.Text)
			}
			for _, g := range r.Via {
				lines = append(lines, "held through user group "+g)
			}
			if r.Change != "" && r.Withheld == "" {
				lines = append(lines, "next reconcile: "+r.Change)
			} else if r.Change != "" {
				lines = append(lines, "next reconcile would "+r.Change+", but it is withheld")
			}
			if len(lines) == 0 {
				lines = []string{"-"}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", esc(r.Role), yesNo(r.Has), yesNo(r.Should), esc(state), esc(lines[0]))
			for _, l := range lines[1:] {
				fmt.Fprintf(tw, "  \t\t\t\t%s\n", esc(l))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
