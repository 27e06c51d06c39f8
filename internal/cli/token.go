package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
)

// Audit actor and actions of the token commands.
const (
	ActorToken        = "token"
	ActionTokenCreate = "token_create"
	ActionTokenRevoke = "token_revoke"
)

func init() {
	register("token", "token create --name N [--ttl 90d|never] | token list | token revoke N", runToken)
}

func runToken(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	sub, rest := subcommand(args)
	switch sub {
	case "":
		return usagef("token: say create, list or revoke")
	case "create":
		fs := newFlags("token create", errOut)
		name := fs.String("name", "", "token name")
		ttl := fs.String("ttl", "90d", "lifetime, e.g. 90d, or never")
		if err := parse(fs, rest); err != nil {
			return err
		}
		if *name == "" {
			return usagef("token create: --name is required")
		}
		life, err := tokenTTL(*ttl)
		if err != nil {
			return err
		}
		secret, hash, err := scim.NewToken()
		if err != nil {
			return err
		}
		now := env.Now()
		t := store.Token{Name: *name, Hash: hash, CreatedAt: now}
		if life > 0 {
			t.ExpiresAt = now.Add(life)
		}
		reason := fmt.Sprintf("SCIM token %q created; it can write users and groups", *name)
		if life > 0 {
			reason += ", expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
		} else {
			reason += ", never expires"
		}
		// Creating a token hands out write access to the directory that
		// decides Cloudflare access: flagged as raising privilege.
		rec := store.AuditRecord{Time: now, Actor: ActorToken, Action: ActionTokenCreate, Reason: reason, Privileged: true}
		if err := env.Store.PutTokenAudited(t, rec); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return usagef("token create: a token named %q exists already; revoke it first or pick another name", *name)
			}
			return err
		}
		fmt.Fprintf(out, "created SCIM token %q", *name)
		if life > 0 {
			fmt.Fprintf(out, ", expires %s", t.ExpiresAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(out, "\n%s\nThis secret is shown once and stored only as a hash. Paste it into your IdP's SCIM connector now.\n", secret)
		return nil
	case "list":
		fs := newFlags("token list", errOut)
		if err := parse(fs, rest); err != nil {
			return err
		}
		toks, err := env.Store.Tokens()
		if err != nil {
			return err
		}
		now := env.Now()
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tAGE\tEXPIRES\tSTATE")
		for _, t := range toks {
			exp, state := "never", "active"
			if !t.ExpiresAt.IsZero() {
				exp = t.ExpiresAt.UTC().Format(time.RFC3339)
				if !now.Before(t.ExpiresAt) {
					state = "expired"
				}
			}
			age := now.Sub(t.CreatedAt).Truncate(time.Hour)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", esc(t.Name), t.CreatedAt.UTC().Format(time.RFC3339), formatAge(age), exp, state)
		}
		return tw.Flush()
	case "revoke":
		pos, err := parseArgs(newFlags("token revoke", errOut), rest)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("token revoke: give exactly one token name, e.g. token revoke okta --config FILE")
		}
		name := pos[0]
		rec := store.AuditRecord{Time: env.Now(), Actor: ActorToken, Action: ActionTokenRevoke, Reason: fmt.Sprintf("SCIM token %q revoked", name)}
		if err := env.Store.DeleteTokenAudited(name, rec); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return usagef("token revoke: there is no token named %q", name)
			}
			return err
		}
		fmt.Fprintf(out, "revoked SCIM token %q\n", name)
		return nil
	}
	return usagef("token: unknown subcommand %q (create, list or revoke)", sub)
}

// tokenTTL reads --ttl. A token that never expires is asked for by name:
// "0" reads as "no time at all" to some and as "no limit" to others, and
// the second meaning leaves a leaked secret valid for ever.
func tokenTTL(s string) (time.Duration, error) {
	if s == "never" {
		return 0, nil
	}
	d, err := config.ParseDuration(s)
	switch {
	case err == nil && d > 0:
		return d, nil
	case err == nil:
		return 0, usagef("token create: --ttl %s is not a lifetime: give one such as 90d, or --ttl never for a token that never expires", s)
	default:
		return 0, usagef("token create: --ttl %q is not a duration such as 90d (or never)", s)
	}
}

// neverExpires is the warning validate and status give about a token
// without an expiry.
func neverExpires(name string) string {
	return fmt.Sprintf("SCIM token %q never expires: replace it with one that does (token create --ttl 90d, then token revoke %s)", name, name)
}

func formatAge(d time.Duration) string {
	days := int(d.Hours()) / 24
	if days > 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dh", int(d.Hours()))
}
