package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/settings"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	syncer "github.com/scimflare/scimflare/sync"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/identity"
)

func init() {
	register("validate", "validate --config FILE [--online]", runValidate)
}

// Lint thresholds.
const (
	adminTTLLimit = 30 * 24 * time.Hour
	tokenAgeLimit = 90 * 24 * time.Hour
)

// LintState is what the state-aware lint reads; *store.BoltStore has it.
type LintState interface {
	GroupByDisplayName(name string) (store.Group, error)
	GroupsByExternalID(externalID string) ([]store.Group, error)
	Tokens() ([]store.Token, error)
	CachedMembers(accountID string) (map[string]store.CachedMember, error)
	MemberCacheScannedAt(accountID string) (time.Time, error)
	ListUsers(afterID string, fn func(store.User) bool) error
}

// Lint finds what is legal but likely wrong in cfg, beyond config.Load's
// own warnings. st nil skips the checks that need the state; notes then
// say what was skipped.
func Lint(cfg *config.Config, st LintState, now time.Time) (warnings []config.Problem, notes []string, err error) {
	warn := func(path, format string, args ...any) {
		warnings = append(warnings, config.Problem{File: cfg.Path, Path: path, Message: fmt.Sprintf(format, args...), Warning: true})
	}
	for i, m := range cfg.Mappings {
		if m.TTL <= adminTTLLimit {
			continue
		}
		for _, r := range m.Roles {
			if strings.Contains(strings.ToLower(r), "admin") {
				warn(fmt.Sprintf("mappings[%d].ttl", i), "ttl %s on role %q is longer than 30 days: time-bound admin access should be short", m.TTL, r)
				break
			}
		}
	}
	protected := map[string]bool{}
	for _, e := range cfg.Sync.Protected {
		protected[identity.Key(e)] = true
	}
	for i, a := range cfg.Accounts {
		if a.Environment != mapping.EnvProduction {
			continue
		}
		path := fmt.Sprintf("accounts[%d]", i)
		if len(protected) == 0 {
			warn(path, "production account %s has no protected member: list a break-glass email under sync.protected so that scimflare can never lock everyone out", a.Name)
			continue
		}
		if st == nil {
			continue
		}
		scanned, err := st.MemberCacheScannedAt(a.ID)
		if err != nil {
			return nil, nil, err
		}
		if scanned.IsZero() {
			notes = append(notes, fmt.Sprintf("account %s was never listed: cannot check that a protected email is a member", a.Name))
			continue
		}
		members, err := st.CachedMembers(a.ID)
		if err != nil {
			return nil, nil, err
		}
		found := false
		for _, m := range members {
			found = found || protected[identity.Key(m.Email)]
		}
		if !found {
			warn(path, "production account %s has no protected member: none of sync.protected was a member at the last listing (%s)", a.Name, scanned.UTC().Format(time.RFC3339))
		}
	}
	if st == nil {
		notes = append(notes, "state not read: skipped the checks for unknown groups and old SCIM tokens")
		return warnings, notes, nil
	}
	for i, m := range cfg.Mappings {
		path := fmt.Sprintf("mappings[%d].group", i)
		switch {
		case m.Group != "":
			_, err := st.GroupByDisplayName(m.Group)
			if errors.Is(err, store.ErrNotFound) {
				warn(path, "no SCIM group is called %q: check the spelling against the group the IdP pushes", m.Group)
			} else if err != nil {
				return nil, nil, err
			}
		case m.GroupExternalID != "":
			gs, err := st.GroupsByExternalID(m.GroupExternalID)
			if err != nil {
				return nil, nil, err
			}
			if len(gs) == 0 {
				warn(fmt.Sprintf("mappings[%d].group_external_id", i), "no SCIM group has externalId %q: check it against the IdP", m.GroupExternalID)
			}
		}
	}
	shared, err := sharedEmails(st)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range shared {
		warn("identity.email_from", "%d active SCIM users (%s) resolve to the Cloudflare email %s: it holds the union of their grants; fix the duplicate in the IdP",
			len(s.ids), strings.Join(s.ids, ", "), s.email)
	}
	toks, err := st.Tokens()
	if err != nil {
		return nil, nil, err
	}
	for _, t := range toks {
		if t.ExpiresAt.IsZero() {
			warn("", "%s", neverExpires(t.Name))
		}
		if age := now.Sub(t.CreatedAt); age > tokenAgeLimit {
			warn("", "SCIM token %q is %d days old: rotate it (token create, then token revoke), or let the IdP authenticate with scim.oidc", t.Name, int(age.Hours()/24))
		}
	}
	return warnings, notes, nil
}

type sharedEmail struct {
	email string
	ids   []string
}

// sharedEmails finds the Cloudflare emails (by the identity rule) that
// more than one active SCIM user resolves to. It reads every user: validate
// is an offline check, not a probe.
func sharedEmails(st LintState) ([]sharedEmail, error) {
	byKey := map[string][]string{}
	err := st.ListUsers("", func(u store.User) bool {
		if u.Active && identity.Valid(u.Email) {
			k := identity.Key(u.Email)
			byKey[k] = append(byKey[k], u.ID)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("list SCIM users: %w", err)
	}
	var out []sharedEmail
	for k, ids := range byKey {
		if len(ids) > 1 {
			out = append(out, sharedEmail{email: k, ids: ids})
		}
	}
	slices.SortFunc(out, func(a, b sharedEmail) int { return strings.Compare(a.email, b.email) })
	return out, nil
}

func runValidate(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("validate", errOut)
	online := fs.Bool("online", false, "also resolve every name against Cloudflare")
	if err := parse(fs, args); err != nil {
		return err
	}
	path := fs.Lookup("config").Value.String()
	if path == "" {
		return usagef("validate: --config FILE is required")
	}
	// Validate the file named, which need not be the config the daemon
	// runs with.
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	// serve would refuse to start; say so now.
	if err := cfg.CheckAdminSocket(); err != nil {
		return err
	}
	warnings := cfg.Warnings
	var st LintState
	if env.Store != nil {
		st = env.Store
	}
	more, notes, err := Lint(cfg, st, env.Now())
	if err != nil {
		return fmt.Errorf("read the state for lint: %w", err)
	}
	warnings = append(warnings, more...)
	for _, w := range warnings {
		fmt.Fprintln(errOut, "warning: "+esc(w.String()))
	}
	for _, n := range notes {
		fmt.Fprintln(errOut, "note: "+esc(n))
	}
	if *online {
		problems, err := resolveOnline(ctx, cfg)
		if err != nil {
			return err
		}
		var bad int
		for _, p := range problems {
			if p.Warning {
				fmt.Fprintf(errOut, "warning: %s: %s: %s\n", cfg.Path, p.Path, esc(p.Message))
				continue
			}
			bad++
			fmt.Fprintf(errOut, "%s: %s: %s\n", cfg.Path, p.Path, esc(p.Message))
		}
		if bad > 0 {
			return fmt.Errorf("%s: %d name(s) do not resolve in Cloudflare", cfg.Path, bad)
		}
		fmt.Fprintln(out, "every role, permission group and resource group name resolves in Cloudflare")
	}
	fmt.Fprintf(out, "%s is valid (%d accounts, %d mappings, %d warnings)\n", cfg.Path, len(cfg.Accounts), len(cfg.Mappings), len(warnings))
	return nil
}

// cloudflareClient builds a client from the config's token, or returns nil
// when there is none. It is not the reconciler's: the file validated need
// not be the config the reconciler runs with.
func cloudflareClient(cfg *config.Config) (*cloudflare.Client, error) {
	token, err := cfg.CloudflareToken()
	if err != nil || token == "" {
		return nil, err
	}
	return cloudflare.New(cloudflare.Config{BaseURL: cfg.Cloudflare.BaseURL, Token: token, Budget: cfg.Cloudflare.RequestBudget})
}

// resolveOnline resolves every name of the table against Cloudflare.
func resolveOnline(ctx context.Context, cfg *config.Config) ([]mapping.Problem, error) {
	cf, err := cloudflareClient(cfg)
	if err != nil {
		return nil, err
	}
	if cf == nil {
		return nil, usagef("validate --online needs a Cloudflare API token (cloudflare.api_token_env or api_token_file)")
	}
	cats, err := syncer.Catalogs(ctx, cf, settings.Reconciler(cfg))
	if err != nil {
		return nil, err
	}
	_, problems := mapping.Resolve(cfg.Table(), cats)
	return problems, nil
}
