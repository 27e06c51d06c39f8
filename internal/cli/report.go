package cli

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

func init() {
	register("report", "report access [--at T] [--csv]", runReport)
}

// AccessRow is one line of the access review: Email holds Role on Account.
type AccessRow struct {
	Email, Account, Role, Source string
	GrantedAt, ExpiresAt         time.Time // zero: unknown / never
}

// Sources of access in the review.
const (
	SourceAdopted   = "adopted"
	SourceDrift     = "drift"
	SourceUndesired = "managed, no longer desired (removal pending)"
)

func runReport(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("report access", errOut)
	at := fs.String("at", "", "as of this past time (RFC 3339, date, or a duration ago such as 90d)")
	asCSV := fs.Bool("csv", false, "print CSV")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "access" {
		return usagef("report: say `report access`")
	}
	now := env.Now()
	when, err := parseWhen("--at", *at, now)
	if err != nil {
		return err
	}
	var rows []AccessRow
	var note string
	if when.IsZero() || !when.Before(now) {
		held, err := ReplayAudit(env.Store, now)
		if err != nil {
			return err
		}
		rows, err = accessNow(ctx, env, now, held)
		if err != nil {
			return err
		}
		note = "as of " + now.UTC().Format(time.RFC3339) + ": Cloudflare members from scimflare's member cache (last listing plus every change since), sources from the current mapping table and grants"
	} else {
		held, err := ReplayAudit(env.Store, when)
		if err != nil {
			return err
		}
		rows = held.Rows(env.Config)
		note = "as of " + when.UTC().Format(time.RFC3339) + ", rebuilt from the audit trail: access scimflare granted, adopted or reported as drift; see README \"Access review\" for its limits"
	}
	if *asCSV {
		return writeAccessCSV(out, rows)
	}
	fmt.Fprintln(out, "# access "+note)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tACCOUNT\tROLE\tSOURCE\tGRANTED AT\tEXPIRES AT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", esc(r.Email), esc(r.Account), esc(r.Role), esc(r.Source), stamp(r.GrantedAt, "unknown"), stamp(r.ExpiresAt, "never"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d grant(s)\n", len(rows))
	return nil
}

func stamp(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}

func writeAccessCSV(out io.Writer, rows []AccessRow) error {
	w := csv.NewWriter(out)
	_ = w.Write([]string{"user", "account", "role", "source", "granted_at", "expires_at"})
	for _, r := range rows {
		_ = w.Write([]string{r.Email, r.Account, r.Role, r.Source, stamp(r.GrantedAt, ""), stamp(r.ExpiresAt, "")})
	}
	w.Flush()
	return w.Error()
}

// accessNow lists what every cached Cloudflare member holds, each key with
// where it comes from: a mapping's group or a temporary grant (from the
// desired state and the ledger), adopted (found when scimflare adopted the
// member), or drift (granted outside scimflare).
func accessNow(ctx context.Context, env *Env, now time.Time, held *Held) ([]AccessRow, error) {
	desired, names, err := env.Reconciler.Desired(ctx, now)
	if err != nil {
		return nil, err
	}
	var rows []AccessRow
	for _, a := range env.Config.Accounts {
		ledger, err := env.Store.Ledger(a.ID)
		if err != nil {
			return nil, fmt.Errorf("read the ledger of account %s: %w", a.Name, err)
		}
		cached, err := env.Store.CachedMembers(a.ID)
		if err != nil {
			return nil, fmt.Errorf("read the member cache of account %s: %w", a.Name, err)
		}
		for fold, m := range cached {
			le := ledger[fold]
			dm, _ := desired.Accounts[a.ID].Get(identity.Key(m.Email))
			for _, key := range m.Keys {
				row := AccessRow{Email: m.Email, Account: a.Name, Role: mapping.KeyName(key, names)}
				switch {
				case slices.Contains(le.Managed, key):
					row.Source = SourceUndesired
					if dm.Keys.Has(key) {
						row.Source, row.ExpiresAt = describeSources(dm.Keys.Reasons(key))
					}
				case slices.Contains(le.Found, key):
					row.Source = SourceAdopted
				default:
					row.Source = SourceDrift
				}
				if m.Status == "pending" {
					row.Source += " (invite pending)"
				}
				if h := held.get(a.ID, m.Email, row.Role); h != nil {
					row.GrantedAt = h.Since
				} else if row.Source != SourceDrift && !le.UpdatedAt.IsZero() {
					row.GrantedAt = le.UpdatedAt
				}
				rows = append(rows, row)
			}
		}
		// Every account, not only user-groups ones: an account that left
		// user-groups mode holds access through its groups until a run
		// empties them (the trail records each removal).
		rows = append(rows, held.groupRows(func(string) string { return a.Name }, a.ID)...)
	}
	sortRows(rows)
	return rows, nil
}

// describeSources names every reason for a key; access expires when its
// last bounded source ends, and never if any source is unbounded.
func describeSources(reasons []plan.Reason) (string, time.Time) {
	var parts []string
	var end time.Time
	bounded := true
	for _, r := range reasons {
		var s string
		if r.Kind == plan.ReasonGrant {
			s = "grant " + r.GrantID
		} else {
			s = "group " + strings.Join(r.Path, " > ")
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
		if r.Expires.IsZero() {
			bounded = false
		} else if r.Expires.After(end) {
			end = r.Expires
		}
	}
	if !bounded {
		end = time.Time{}
	}
	return strings.Join(parts, ", "), end
}

func sortRows(rows []AccessRow) {
	slices.SortFunc(rows, func(a, b AccessRow) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(identity.Key(a.Email), identity.Key(b.Email)), cmp.Compare(a.Role, b.Role))
	})
}

// Held is access rebuilt from the audit trail: per account and email, the
// role names held and since when.
type Held struct {
	members map[heldKey]map[string]*HeldRole
	emails  map[heldKey]string // as last written
	// groups is access through user groups (report_usergroups.go).
	groups map[groupKey]*heldGroup
}

type heldKey struct{ account, email string }

// HeldRole is one role name held, since when, why, and until when as the
// reason that granted it said.
type HeldRole struct {
	Since, Expires time.Time
	Source         string
}

func (h *Held) get(account, email, role string) *HeldRole {
	return h.members[heldKey{account, identity.Key(email)}][role]
}

// Change kinds whose After is the member's whole set of roles afterwards.
var memberChanges = map[string]bool{"add_member": true, "update_roles": true, "remove_member": true, "expire_grant": true}

var (
	reMapping = regexp.MustCompile(`^member of (.+?) \(mappings\[\d+\]\)(?: until (\S+))?$`)
	reGrant   = regexp.MustCompile(`^temporary grant (\S+)(?: until (\S+))?$`)
)

// ReplayAudit rebuilds who held which role up to and including until, by
// replaying the audit trail in order:
//   - a member change (add_member, update_roles, remove_member,
//     expire_grant) sets the member's roles to its After list; a role new
//     in After is held from the record's time, with the source and expiry
//     its reason names ("member of G (mappings[i]) until T", "temporary
//     grant ID until T"); roles already in Before of a member the trail
//     has not seen yet were there before scimflare: adopted;
//   - drift adds the role found, as drift; member_gone drops the member.
//
// It is only as complete as the trail: access granted outside scimflare
// appears only once a full run reported it, and the end of drift is not
// recorded.
func ReplayAudit(st store.Backend, until time.Time) (*Held, error) {
	h := &Held{members: map[heldKey]map[string]*HeldRole{}, emails: map[heldKey]string{}}
	err := st.Audit(time.Time{}, func(r store.AuditRecord) bool {
		if r.Time.After(until) || r.AccountID == "" {
			return true
		}
		if h.replayGroup(r) || r.Email == "" {
			return true
		}
		k := heldKey{r.AccountID, identity.Key(r.Email)}
		cur, seen := h.members[k]
		switch {
		case memberChanges[r.Action]:
			next := map[string]*HeldRole{}
			source, expires := parseReason(r.Reason)
			bySource := sourcesByRole(r.Sources)
			for _, role := range r.After {
				if s, ok := bySource[role]; ok {
					// A record that carries its sources as data (version 2):
					// per role, no prose to read back.
					source, expires = s.source, s.expires
				}
				switch {
				case cur[role] != nil:
					next[role] = cur[role]
				case !seen && slices.Contains(r.Before, role):
					next[role] = &HeldRole{Since: r.Time, Source: SourceAdopted}
				case slices.Contains(r.Before, role):
					next[role] = &HeldRole{Since: r.Time, Source: SourceDrift}
				default:
					next[role] = &HeldRole{Since: r.Time, Source: source, Expires: expires}
				}
			}
			if len(next) == 0 {
				delete(h.members, k)
				return true
			}
			h.members[k], h.emails[k] = next, r.Email
		case r.Action == "drift":
			if cur == nil {
				cur = map[string]*HeldRole{}
				h.members[k], h.emails[k] = cur, r.Email
			}
			for _, role := range r.Before {
				if cur[role] == nil {
					cur[role] = &HeldRole{Since: r.Time, Source: SourceDrift}
				}
			}
		case r.Action == "member_gone":
			delete(h.members, k)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("replay the audit trail: %w", err)
	}
	return h, nil
}

type roleSource struct {
	source  string
	expires time.Time
}

// sourcesByRole is, per role, the sources an audit record carries as data
// (words as `report access` shows them) and when the last bounded one ends
// (zero when any source is unbounded).
func sourcesByRole(src []store.AuditSource) map[string]roleSource {
	type acc struct {
		parts   []string
		end     time.Time
		bounded bool
	}
	by := map[string]*acc{}
	var order []string
	for _, s := range src {
		a := by[s.Role]
		if a == nil {
			a = &acc{bounded: true}
			by[s.Role] = a
			order = append(order, s.Role)
		}
		part := "grant " + s.GrantID
		if s.Kind != "grant" {
			part = "group " + strings.Join(s.Path, " > ")
		}
		if !slices.Contains(a.parts, part) {
			a.parts = append(a.parts, part)
		}
		if s.Expires.IsZero() {
			a.bounded = false
		} else if s.Expires.After(a.end) {
			a.end = s.Expires
		}
	}
	out := map[string]roleSource{}
	for _, role := range order {
		a := by[role]
		rs := roleSource{source: strings.Join(a.parts, ", ")}
		if a.bounded {
			rs.expires = a.end
		}
		out[role] = rs
	}
	return out
}

// parseReason reads the sources and the latest end out of a change's
// reason as the reconciler words it (records written before sources were
// data); an unrecognised reason is kept whole.
func parseReason(reason string) (string, time.Time) {
	var parts []string
	var end time.Time
	bounded := true
	for _, p := range strings.Split(reason, "; ") {
		var s, until string
		if m := reMapping.FindStringSubmatch(p); m != nil {
			s, until = "group "+m[1], m[2]
		} else if m := reGrant.FindStringSubmatch(p); m != nil {
			s, until = "grant "+m[1], m[2]
		} else {
			continue
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
		t, err := time.Parse(time.RFC3339, until)
		if until == "" || err != nil {
			bounded = false
		} else if t.After(end) {
			end = t
		}
	}
	if len(parts) == 0 {
		return oneLine(reason), time.Time{}
	}
	if !bounded {
		end = time.Time{}
	}
	return strings.Join(parts, ", "), end
}

// Rows lists the rebuilt access, sorted by account, email and role.
func (h *Held) Rows(cfg *config.Config) []AccessRow {
	var rows []AccessRow
	for k, roles := range h.members {
		for role, hr := range roles {
			rows = append(rows, AccessRow{Email: h.emails[k], Account: accountLabel(cfg, k.account), Role: role, Source: hr.Source, GrantedAt: hr.Since, ExpiresAt: hr.Expires})
		}
	}
	rows = append(rows, h.groupRows(func(id string) string { return accountLabel(cfg, id) }, "")...)
	sortRows(rows)
	return rows
}
