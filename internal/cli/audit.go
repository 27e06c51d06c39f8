package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/terminal"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
)

func init() {
	register("audit", "audit [--since T] [--until T] [--user EMAIL] [--account NAME] [--json] | audit verify", runAudit)
}

// parseWhen reads a point in time given on the command line: RFC 3339, a
// date (midnight UTC), or a duration before now such as 24h or 90d.
func parseWhen(flagName, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := config.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s %q is neither a time such as 2026-01-31T00:00:00Z or 2026-01-31 nor a duration ago such as 24h or 90d", flagName, s)
}

// accountFilter matches an audit record's account id against a name or id
// given by the user. An account no longer in the config can still be named
// by its id.
func accountFilter(cfg *config.Config, v string) func(id string) bool {
	if v == "" {
		return func(string) bool { return true }
	}
	want := v
	if a, ok := cfg.Table().AccountByName(v); ok {
		want = a.ID
	}
	return func(id string) bool { return id == want }
}

func accountLabel(cfg *config.Config, id string) string {
	for _, a := range cfg.Accounts {
		if a.ID == id {
			return a.Name
		}
	}
	return id
}

// auditJSON is one record as `audit --json` prints it.
type auditJSON struct {
	Seq        uint64   `json:"seq"`
	Time       string   `json:"time"`
	Actor      string   `json:"actor"`
	Action     string   `json:"action"`
	Account    string   `json:"account,omitempty"`
	AccountID  string   `json:"account_id,omitempty"`
	Email      string   `json:"email,omitempty"`
	Before     []string `json:"before"`
	After      []string `json:"after"`
	Reason     string   `json:"reason,omitempty"`
	Privileged bool     `json:"privileged"`
	// Sources (version 2 records): why the member holds each role after
	// the change, as data; WithheldBy: the policy that held it back.
	Sources    []store.AuditSource `json:"sources,omitempty"`
	WithheldBy string              `json:"withheld_by,omitempty"`
	Version    int                 `json:"version"`
	PrevHash   string              `json:"prev_hash"`
	Hash       string              `json:"hash"`
}

func runAudit(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	if sub, rest := subcommand(args); sub == "verify" {
		return runAuditVerify(env, rest, out, errOut)
	}
	fs := newFlags("audit", errOut)
	since := fs.String("since", "", "from this time (RFC 3339, date, or a duration ago such as 24h)")
	until := fs.String("until", "", "up to this time")
	user := fs.String("user", "", "only this email")
	account := fs.String("account", "", "only this account (name or id)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && pos[0] == "verify" {
		return usagef("audit verify: checks the whole trail and takes no filter; run it as `audit verify --config FILE`")
	} else if len(pos) > 0 {
		return usagef("audit: unexpected argument %q", pos[0])
	}
	now := env.Now()
	from, err := parseWhen("--since", *since, now)
	if err != nil {
		return err
	}
	to, err := parseWhen("--until", *until, now)
	if err != nil {
		return err
	}
	if !to.IsZero() && to.Before(from) {
		return usagef("audit: --until %s is before --since %s", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	inAccount := accountFilter(env.Config, *account)
	keep := func(r store.AuditRecord) bool {
		return (to.IsZero() || !r.Time.After(to)) && inAccount(r.AccountID) &&
			(*user == "" || identity.Key(r.Email) == identity.Key(*user))
	}
	if *asJSON {
		return printAuditJSON(env, from, keep, out)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tACCOUNT\tEMAIL\tCHANGE\tREASON")
	n := 0
	var werr error
	err = env.Store.Audit(from, func(r store.AuditRecord) bool {
		if !keep(r) {
			return true
		}
		n++
		action := esc(r.Action)
		if r.Privileged {
			action += " (!)"
		}
		_, werr = fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format(time.RFC3339), esc(r.Actor), action,
			esc(accountLabel(env.Config, r.AccountID)), esc(r.Email), change(r.Before, r.After), esc(r.Reason))
		return werr == nil
	})
	if err = errors.Join(err, werr); err != nil {
		return fmt.Errorf("read the audit trail: %w", err)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d record(s); (!) marks a change that raised privilege\n", n)
	return nil
}

func printAuditJSON(env *Env, from time.Time, keep func(store.AuditRecord) bool, out io.Writer) error {
	if _, err := io.WriteString(out, "["); err != nil {
		return err
	}
	first := true
	var werr error
	err := env.Store.Audit(from, func(r store.AuditRecord) bool {
		if !keep(r) {
			return true
		}
		b, err := json.Marshal(auditJSON{
			Seq: r.Seq, Time: r.Time.UTC().Format(time.RFC3339Nano), Actor: r.Actor, Action: r.Action,
			Account: accountLabel(env.Config, r.AccountID), AccountID: r.AccountID, Email: r.Email,
			Before: nonNil(r.Before), After: nonNil(r.After), Reason: r.Reason, Privileged: r.Privileged,
			Sources: r.Sources, WithheldBy: r.WithheldBy, Version: r.Version,
			PrevHash: r.PrevHash, Hash: r.Hash,
		})
		if err != nil {
			werr = err
			return false
		}
		sep := ",\n"
		if first {
			sep, first = "\n", false
		}
		_, werr = fmt.Fprintf(out, "%s%s", sep, b)
		return werr == nil
	})
	if err = errors.Join(err, werr); err != nil {
		return fmt.Errorf("read the audit trail: %w", err)
	}
	_, err = io.WriteString(out, "\n]\n")
	return err
}

func runAuditVerify(env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("audit verify", errOut)
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := env.Store.VerifyAudit(); err != nil {
		if errors.Is(err, store.ErrAuditBroken) {
			return fmt.Errorf("audit trail of %s is BROKEN: %v; every record before it is intact", env.Store.Location(), err)
		}
		return fmt.Errorf("verify the audit trail: %w", err)
	}
	seq, hash, err := env.Store.AuditHead()
	if err != nil {
		return err
	}
	if seq == 0 {
		fmt.Fprintln(out, "audit trail intact: no records yet")
		return nil
	}
	fmt.Fprintf(out, "audit trail intact: %d record(s), each linked to the one before; head hash %s\n", seq, hash)
	return nil
}

func change(before, after []string) string {
	if len(before) == 0 && len(after) == 0 {
		return "-"
	}
	return "[" + strings.Join(terminal.EscapeAll(before), ", ") + "] -> [" + strings.Join(terminal.EscapeAll(after), ", ") + "]"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
