package daemon

import (
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/store"
)

// logStart logs the start-up line: what runs, in which mode, against
// which accounts, and how SCIM clients authenticate; and warns when no
// SCIM credential exists (every request would then get 401).
func logStart(log *slog.Logger, cfg *config.Config, st store.Backend, opt Options, planOnly bool) {
	mode := cfg.Sync.Mode
	if planOnly && mode == config.ModeEnforce {
		mode = config.ModePlanOnly + " (no Cloudflare token in " + tokenSource(cfg) + ")"
	}
	var accounts []string
	for _, a := range cfg.Accounts {
		accounts = append(accounts, a.Name+"="+a.ID)
	}
	var auth []string
	if cfg.StaticSCIMToken() != "" {
		auth = append(auth, "static token from $"+cfg.SCIM.TokenEnv)
	}
	stored := 0
	if toks, err := st.Tokens(); err == nil {
		now := time.Now()
		for _, t := range toks {
			if t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt) {
				stored++
			}
		}
	}
	if stored > 0 {
		auth = append(auth, "stored tokens ("+itoa(stored)+" active)")
	}
	if cfg.SCIM.OIDC.Issuer != "" {
		auth = append(auth, "OIDC JWTs from "+cfg.SCIM.OIDC.Issuer)
	}
	log.Info("scimflare starting", "version", opt.Version, "commit", opt.Commit, "config", cfg.Path,
		"mode", mode, "accounts", strings.Join(accounts, ","), "mappings", len(cfg.Mappings),
		"scim_auth", strings.Join(auth, "; "), "cloudflare", cfg.Cloudflare.BaseURL)
	if len(auth) == 0 {
		tokenEnv := cfg.SCIM.TokenEnv
		if tokenEnv == "" {
			tokenEnv = "scim.token_env"
		}
		log.Warn("no SCIM credential: every SCIM request will be refused with 401 until one exists",
			"fix", "export "+tokenEnv+"=<secret>, or run `scimflare token create --name idp --config "+cfg.Path+"`, or set scim.oidc")
	}
}

func tokenSource(cfg *config.Config) string {
	if cfg.Cloudflare.APITokenFile != "" {
		return cfg.Cloudflare.APITokenFile
	}
	if cfg.Cloudflare.APITokenEnv == "" {
		return "cloudflare.api_token_env (unset)"
	}
	return "$" + cfg.Cloudflare.APITokenEnv
}

func itoa(n int) string { return strconv.Itoa(n) }

// logFirstEnforce says, for every account scimflare has never reconciled
// (no ledger entry, no member scan), what it is about to manage there and
// why, before the first enforce-mode run writes to it.
func logFirstEnforce(log *slog.Logger, cfg *config.Config, st store.Backend) {
	for _, a := range cfg.Accounts {
		// The scan time first: an account listed before is not new, and
		// its ledger (a million entries, maybe) need not be read at start.
		if at, err := st.MemberCacheScannedAt(a.ID); err != nil || !at.IsZero() {
			continue
		}
		ledger, err := st.Ledger(a.ID)
		if err != nil || len(ledger) > 0 {
			continue
		}
		var maps []string
		for _, m := range cfg.Mappings {
			if m.Account != a.Name {
				continue
			}
			what := strings.Join(m.Roles, ", ")
			if len(m.Policies) > 0 {
				var pgs []string
				for _, p := range m.Policies {
					pgs = append(pgs, strings.Join(p.PermissionGroups, "+")+" on "+strings.Join(p.ResourceGroups, "+"))
				}
				what = "policies " + strings.Join(pgs, "; ")
			}
			group := m.Group
			if group == "" {
				group = "externalId " + m.GroupExternalID
			}
			maps = append(maps, group+" -> "+what)
		}
		unmanaged := "members and roles it did not grant are reported, never changed (sync.unmanaged: report)"
		if cfg.Sync.Unmanaged == config.UnmanagedRemove {
			unmanaged = "roles it did not grant are REMOVED (sync.unmanaged: remove)"
		}
		log.Warn("first enforce-mode start against this account: scimflare will now write to it",
			"account", a.Name, "id", a.ID, "environment", a.Environment,
			"mappings", strings.Join(maps, "; "),
			"why", "members of the mapped IdP groups get these grants; a member scimflare granted and the IdP no longer maps loses them; "+unmanaged,
			"protected", strings.Join(cfg.Sync.Protected, ","),
			"guards", "max_removals="+itoa(cfg.Sync.Guards.MaxRemovals)+" per run",
			"dry_run", "scimflare plan --config "+cfg.Path)
	}
}
