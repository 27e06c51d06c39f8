package main

// Every command through run (main's body), with --config where users put
// it: right after the command, after the positional arguments, between
// them, as --config=FILE and before the command. Issue 16 point 1: the
// earlier tests appended --config to a fixed argument list and missed that
// `token revoke NAME --config F` could never work.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// cliCase is one command: its words (command and subcommand names and
// positional arguments), its flags, and what a success prints.
type cliCase struct {
	words []string
	flags []string
	// setup runs before each form and returns extra words or flags
	// (a fresh token to revoke, a grant id); nil for none.
	setup func(t *testing.T, form int) (words, flags []string)
	// want is in stdout on success; check, when set, judges the result.
	want  string
	check func(t *testing.T, stdout string)
	// daemonOnly: without a daemon the command must fail with this
	// sentence instead.
	offlineErr string
}

// configForms places --config at every spot a user may type it.
func configForms(cfg string, words, flags []string) [][]string {
	var forms [][]string
	add := func(parts ...[]string) {
		var f []string
		for _, p := range parts {
			f = append(f, p...)
		}
		for _, g := range forms {
			if slices.Equal(g, f) {
				return
			}
		}
		forms = append(forms, f)
	}
	c := []string{"--config", cfg}
	eq := []string{"--config=" + cfg}
	add(words[:1], c, words[1:], flags)  // right after the command
	add(words, flags, c)                 // at the end
	add(words, eq, flags)                // --config=F after the positionals
	add(words[:1], eq, words[1:], flags) // --config=F right after the command
	add(c, words, flags)                 // before the command
	if len(words) > 1 {
		n := len(words) - 1
		add(words[:n], c, words[n:], flags) // before the last positional
	}
	return forms
}

func runMain(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func everyCommand(cfgPath, dir string) []cliCase {
	grantID := func(t *testing.T, form int) ([]string, []string) {
		t.Helper()
		code, out, errOut := runMain("grant", "--config", cfgPath, "--user", "alice@example.com", "--account", "prod",
			"--role", "Administrator", "--for", "1h", "--reason", "INC-7 setup for revoke")
		if code != 0 {
			t.Fatalf("grant for revoke: %d %s %s", code, out, errOut)
		}
		_, rest, _ := strings.Cut(out, "(grant ")
		id, _, _ := strings.Cut(rest, ")")
		if id == "" {
			t.Fatalf("grant names no id: %q", out)
		}
		return nil, []string{"--grant", id}
	}
	newToken := func(t *testing.T, form int) ([]string, []string) {
		t.Helper()
		name := fmt.Sprintf("leaked-%d", form)
		if code, out, errOut := runMain("token", "create", "--config", cfgPath, "--name", name); code != 0 {
			t.Fatalf("token create %s: %d %s %s", name, code, out, errOut)
		}
		return []string{name}, nil
	}
	isJSON := func(t *testing.T, out string) {
		t.Helper()
		if !json.Valid([]byte(out)) {
			t.Errorf("not JSON: %q", out)
		}
	}
	return []cliCase{
		{words: []string{"validate"}, want: "is valid"},
		{words: []string{"plan"}, check: func(t *testing.T, out string) {
			t.Helper()
			if !strings.Contains(out, "Plan:") && !strings.Contains(out, "No changes.") {
				t.Errorf("plan printed no plan:\n%s", out)
			}
		}},
		{words: []string{"plan"}, flags: []string{"--json"}, check: isJSON},
		{words: []string{"apply"}, want: "applied"},
		{words: []string{"grant"}, flags: []string{"--user", "alice@example.com", "--account", "prod", "--role", "Administrator", "--for", "1h", "--reason", "INC-7"}, want: "granted alice@example.com"},
		{words: []string{"revoke"}, setup: grantID, want: "revoked grant"},
		{words: []string{"explain"}, flags: []string{"--user", "alice@example.com"}, want: "alice@example.com, as of"},
		{words: []string{"explain"}, flags: []string{"--user", "alice@example.com", "--json"}, check: isJSON},
		{words: []string{"audit"}, flags: []string{"--since", "1h"}, want: "record(s)"},
		{words: []string{"audit"}, flags: []string{"--json"}, check: isJSON},
		{words: []string{"audit", "verify"}, want: "audit trail intact"},
		{words: []string{"report", "access"}, want: "grant(s)"},
		{words: []string{"report", "access"}, flags: []string{"--csv"}, want: "user,account,role"},
		// A flag before the subcommand.
		{words: []string{"report"}, flags: []string{"--csv", "access"}, want: "user,account,role"},
		{words: []string{"token", "create"}, setup: func(t *testing.T, form int) ([]string, []string) {
			return nil, []string{"--name", fmt.Sprintf("new-%d", form), "--ttl", "30d"}
		}, want: "created SCIM token"},
		{words: []string{"token", "list"}, want: "NAME"},
		{words: []string{"token", "revoke"}, setup: newToken, want: "revoked SCIM token", check: func(t *testing.T, out string) {
			t.Helper()
			name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(out), `revoked SCIM token "`), `"`)
			_, list, _ := runMain("token", "list", "--config", cfgPath)
			if strings.Contains(list, name+" ") {
				t.Errorf("token %s still listed after revoke:\n%s", name, list)
			}
		}},
		{words: []string{"backup"}, setup: func(t *testing.T, form int) ([]string, []string) {
			return nil, []string{"--out", filepath.Join(dir, fmt.Sprintf("backup-%d.db", form))}
		}, want: "bbolt consistency check passed"},
		{words: []string{"status"}, want: "last reconcile"},
		{words: []string{"version"}, want: "scimflare "},
		{words: []string{"--version"}, want: "scimflare "},
		{words: []string{"reload"}, want: "reloaded", offlineErr: "no scimflare daemon is running"},
	}
}

func runEveryCommand(t *testing.T, cfgPath, dir string, daemon bool) {
	for _, c := range everyCommand(cfgPath, dir) {
		name := strings.Join(append(slices.Clone(c.words), c.flags...), " ")
		t.Run(name, func(t *testing.T) {
			n := len(configForms(cfgPath, c.words, c.flags))
			if c.setup != nil {
				w, f := c.setup(t, -1)
				n = len(configForms(cfgPath, slices.Concat(c.words, w), slices.Concat(c.flags, f)))
			}
			for i := range n {
				words, flags := c.words, c.flags
				if c.setup != nil {
					w, f := c.setup(t, i)
					words, flags = slices.Concat(words, w), slices.Concat(flags, f)
				}
				args := configForms(cfgPath, words, flags)[i]
				code, out, errOut := runMain(args...)
				shown := strings.ReplaceAll(strings.Join(args, " "), cfgPath, "F")
				if !daemon && c.offlineErr != "" {
					if code != 1 || !strings.Contains(errOut, c.offlineErr) {
						t.Errorf("scimflare %s without a daemon: exit %d, want 1 and %q\nstdout: %s\nstderr: %s", shown, code, c.offlineErr, out, errOut)
					}
					continue
				}
				if code != 0 {
					t.Errorf("scimflare %s: exit %d\nstdout: %s\nstderr: %s", shown, code, out, errOut)
					continue
				}
				if c.want != "" && !strings.Contains(out, c.want) {
					t.Errorf("scimflare %s: stdout lacks %q:\n%s", shown, c.want, out)
				}
				if c.check != nil {
					c.check(t, out)
				}
			}
		})
	}
}

func TestEveryCommandWithConfigAnywhereDaemonRunning(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	g := e.createGroup("cf-deployers")
	e.addMembers(g, e.createUser("alice@example.com"))
	runEveryCommand(t, e.cfgPath, t.TempDir(), true)
}

func TestEveryCommandWithConfigAnywhereNoDaemon(t *testing.T) {
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	cfgPath := writeE2EConfig(t, dir, fake, e2eOptions{})
	// What the IdP pushed before the daemon stopped.
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	u, err := st.CreateUser(now, store.User{UserName: "alice@example.com", Email: "alice@example.com", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(now, store.Group{DisplayName: "cf-deployers"}, []store.MemberRef{{ID: u.ID, Type: store.MemberUser}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	runEveryCommand(t, cfgPath, dir, false)
}

// TestHelpExitsZero: `COMMAND --help` prints the command's usage and exits
// 0, with or without --config (issue 13: `plan --help` said "--config FILE
// is required" and `serve --help` exited 1).
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--help"}, {"plan", "--help"}, {"plan", "-h"}, {"validate", "--help"},
		{"token", "revoke", "--help"}, {"audit", "verify", "-help"}, {"report", "access", "--help"}, {"help"}, {"--help"},
	} {
		code, out, errOut := runMain(args...)
		if code != 0 || !strings.Contains(out+errOut, "usage:") || strings.Contains(out+errOut, "is required") {
			t.Errorf("scimflare %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// TestTokenTTLZeroIsRefusedAndNeverIsWarned: `--ttl 0` used to mean a SCIM
// token that never expires (issue 16 point 11); it is now an error, the
// unlimited token must be asked for as --ttl never, and validate and status
// warn about it.
func TestTokenTTLZeroIsRefusedAndNeverIsWarned(t *testing.T) {
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	cfg := writeE2EConfig(t, dir, fake, e2eOptions{})

	for _, ttl := range []string{"0", "0d", "0s", "-1h"} {
		code, out, errOut := runMain("token", "create", "--name", "okta", "--ttl", ttl, "--config", cfg)
		if code != 1 || !strings.Contains(errOut, "--ttl never") || strings.Contains(out, "created") {
			t.Errorf("token create --ttl %s: exit %d, want 1 and a sentence naming --ttl never\nstdout: %s\nstderr: %s", ttl, code, out, errOut)
		}
	}
	if _, list, _ := runMain("token", "list", "--config", cfg); strings.Contains(list, "okta") {
		t.Fatalf("a refused --ttl still stored a token:\n%s", list)
	}
	if code, out, errOut := runMain("token", "create", "--name", "rotating", "--config", cfg); code != 0 || !strings.Contains(out, "expires") {
		t.Fatalf("token create with the default ttl: %d %s %s", code, out, errOut)
	}
	_, status, _ := runMain("status", "--config", cfg)
	_, _, lint := runMain("validate", "--config", cfg)
	if strings.Contains(status, "never expires") || strings.Contains(lint, "never expires") {
		t.Errorf("a warning about a token that expires:\nstatus: %s\nvalidate: %s", status, lint)
	}

	code, out, errOut := runMain("token", "create", "--name", "forever", "--ttl", "never", "--config", cfg)
	if code != 0 || strings.Contains(out, "expires") {
		t.Fatalf("token create --ttl never: %d %s %s", code, out, errOut)
	}
	_, list, _ := runMain("token", "list", "--config", cfg)
	if !strings.Contains(list, "forever") || !strings.Contains(list, "never") {
		t.Errorf("token list does not show the token that never expires:\n%s", list)
	}
	code, status, errOut = runMain("status", "--config", cfg)
	if code != 0 || !strings.Contains(status, `warning: SCIM token "forever" never expires`) || strings.Contains(status, `"rotating" never`) {
		t.Errorf("status must warn about the token that never expires, and only it: %d\n%s%s", code, status, errOut)
	}
	code, out, lint = runMain("validate", "--config", cfg)
	if code != 0 || !strings.Contains(lint, `warning: `) || !strings.Contains(lint, `SCIM token "forever" never expires`) {
		t.Errorf("validate must warn about the token that never expires: %d\n%s%s", code, out, lint)
	}
}

// TestRevokedTokenIsRefusedAtOnce: the point of `token revoke NAME --config
// F` is that a leaked secret stops working; the next SCIM request with it
// is refused.
func TestRevokedTokenIsRefusedAtOnce(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	code, out, errOut := runMain("token", "create", "--name", "leaked", "--config", e.cfgPath)
	if code != 0 {
		t.Fatalf("token create: %d %s %s", code, out, errOut)
	}
	secret := strings.Split(out, "\n")[1]
	status := func() int {
		req, err := http.NewRequest("GET", e.base+"/Users", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != http.StatusOK {
		t.Fatalf("the new token is refused: %d", got)
	}
	if code, out, errOut := runMain("token", "revoke", "leaked", "--config", e.cfgPath); code != 0 || !strings.Contains(out, `revoked SCIM token "leaked"`) {
		t.Fatalf("token revoke leaked --config F: %d %s %s", code, out, errOut)
	}
	if got := status(); got != http.StatusUnauthorized {
		t.Errorf("the revoked token still works: %d", got)
	}
}
