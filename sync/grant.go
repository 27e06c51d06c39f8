package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
)

// ErrInvalidGrant: a grant or revoke request is unacceptable as given.
var ErrInvalidGrant = errors.New("invalid grant")

// GrantRequest asks for temporary access outside the IdP.
type GrantRequest struct {
	Email   string
	Account string // account name
	Role    string // a role name, or
	Mapping string // the group of a mapping on that account: its roles or policies
	For     time.Duration
	Reason  string
	Actor   string
}

func invalidGrant(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidGrant, fmt.Sprintf(format, args...))
}

// Grant validates and stores a temporary grant, audited, and applies it at
// once with a targeted run for that email.
func (r *Reconciler) Grant(ctx context.Context, g GrantRequest) (store.Grant, *Result, error) {
	cfg := r.config()
	email, err := identity.Email(strings.TrimSpace(g.Email))
	if err != nil {
		return store.Grant{}, nil, invalidGrant("%q: %v", g.Email, err)
	}
	acct, ok := cfg.Table().AccountByName(g.Account)
	if !ok {
		return store.Grant{}, nil, invalidGrant("account %q is not defined under accounts", g.Account)
	}
	if (g.Role == "") == (g.Mapping == "") {
		return store.Grant{}, nil, invalidGrant("give exactly one of a role or a mapping")
	}
	if g.For <= 0 {
		return store.Grant{}, nil, invalidGrant("the duration must be positive")
	}
	if g.For > cfg.Sync.MaxGrantDuration {
		return store.Grant{}, nil, invalidGrant("%s exceeds sync.max_grant_duration %s", g.For, cfg.Sync.MaxGrantDuration)
	}
	if strings.TrimSpace(g.Reason) == "" {
		return store.Grant{}, nil, invalidGrant("a reason is required; it goes into the audit trail")
	}
	var after []string
	if g.Mapping != "" {
		for _, m := range cfg.Mappings {
			if m.Account == acct.Name && (strings.EqualFold(m.Group, g.Mapping) || (m.GroupExternalID != "" && m.GroupExternalID == g.Mapping)) {
				after = append(after, m.Roles...)
				for _, p := range m.Policies {
					after = append(after, strings.Join(p.PermissionGroups, ", ")+" on "+strings.Join(p.ResourceGroups, ", "))
				}
			}
		}
		if len(after) == 0 {
			return store.Grant{}, nil, invalidGrant("no mapping of group %q on account %s", g.Mapping, acct.Name)
		}
	} else {
		// The role follows the account's shape: on an account that does not
		// keep roles it is granted as its permission group (grantKeys).
		if r.cf != nil {
			exists, err := r.roleExists(ctx, cfg, acct, g.Role)
			if err != nil {
				return store.Grant{}, nil, fmt.Errorf("look up role %q in account %s: %w", g.Role, acct.Name, err)
			}
			if !exists {
				return store.Grant{}, nil, invalidGrant("role %q does not exist in account %s", g.Role, acct.Name)
			}
		}
		after = []string{g.Role}
	}
	active := false
	err = r.state.View(func(rd store.Reader) error {
		us, err := rd.UsersByEmail(email)
		active = slices.ContainsFunc(us, func(u store.User) bool {
			return u.Active && identity.Valid(u.Email) && identity.Key(u.Email) == email
		})
		return err
	})
	if err != nil {
		return store.Grant{}, nil, fmt.Errorf("look up user %s: %w", email, err)
	}
	if !active {
		return store.Grant{}, nil, invalidGrant("no active user has email %s; scimflare grants only to users the IdP provisions", email)
	}

	actor := g.Actor
	if actor == "" {
		actor = ActorGrant
	}
	now := r.now()
	id, err := newGrantID()
	if err != nil {
		return store.Grant{}, nil, err
	}
	sg := store.Grant{
		ID: id, Email: email, AccountID: acct.ID, Role: g.Role, Mapping: g.Mapping,
		Start: now, End: now.Add(g.For), Reason: g.Reason, Actor: actor,
	}
	slices.Sort(after)
	audit := store.AuditRecord{
		Time: now, Actor: actor, Action: ActionGrant, AccountID: acct.ID, Email: email, After: after,
		Reason:     fmt.Sprintf("temporary grant %s until %s: %s", id, sg.End.UTC().Format(time.RFC3339), g.Reason),
		Privileged: true,
	}
	sg, err = r.state.PutGrant(sg, audit)
	if err != nil {
		return store.Grant{}, nil, fmt.Errorf("store grant: %w", err)
	}
	res, err := r.execute(ctx, runRequest{kind: targetedRun, actor: ActorGrant, touched: touchedEmails(email)})
	return sg, res, err
}

// Revoke ends a temporary grant now, audited, and applies that at once.
func (r *Reconciler) Revoke(ctx context.Context, id, actor string) (*Result, error) {
	if actor == "" {
		actor = ActorRevoke
	}
	g, err := r.state.GetGrant(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidGrant("no temporary grant has id %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read grant %s: %w", id, err)
	}
	now := r.now()
	switch {
	case !g.RevokedAt.IsZero():
		return nil, invalidGrant("grant %s was already revoked at %s", id, g.RevokedAt.UTC().Format(time.RFC3339))
	case !g.End.After(now):
		return nil, invalidGrant("grant %s already ended at %s", id, g.End.UTC().Format(time.RFC3339))
	}
	g.RevokedAt = now
	what := g.Role
	if what == "" {
		what = "mapping " + g.Mapping
	}
	audit := store.AuditRecord{
		Time: now, Actor: actor, Action: ActionRevoke, AccountID: g.AccountID, Email: g.Email, Before: []string{what},
		Reason: fmt.Sprintf("temporary grant %s revoked (it was granted for: %s)", id, g.Reason),
	}
	if _, err := r.state.PutGrant(g, audit); err != nil {
		return nil, fmt.Errorf("store revocation of grant %s: %w", id, err)
	}
	res, err := r.execute(ctx, runRequest{kind: targetedRun, actor: ActorRevoke, touched: touchedEmails(g.Email)})
	if err != nil || res.Aborted != nil {
		// The revocation is stored; the access it ended must still go.
		// Queue the email so a targeted run retries it, not only the
		// next full run.
		r.Touch(nil, nil, []string{g.Email})
	}
	return res, err
}

func touchedEmails(emails ...string) touched {
	t := newTouched()
	t.add(nil, nil, emails)
	return t
}

func newGrantID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make grant id: %w", err)
	}
	return "g-" + hex.EncodeToString(b[:]), nil
}
