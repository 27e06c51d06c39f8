package main

// Issue 13, "the first hour": what a new user meets. Each test drives the
// binary or run (main's body) with --config as users type it.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// TestBinaryLinksNoTestCode: the fake Cloudflare `serve --dev` runs is the
// production-safe core; the binary must not link `testing` (test flags,
// test-only code paths) nor the OpenAPI validator the tests use.
func TestBinaryLinksNoTestCode(t *testing.T) {
	for _, pkg := range []string{".", "../../bench/fakecloudflare"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Split(string(out), "\n") {
			if dep == "testing" || strings.Contains(dep, "kin-openapi") || strings.HasSuffix(dep, "/cftest") {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}

// firstHourConfig writes a plan-only config (no Cloudflare token) into dir
// with the given state and socket paths as written.
func firstHourConfig(t *testing.T, dir, state, socket, extra string) string {
	t.Helper()
	yaml := "server:\n  listen: \"127.0.0.1:0\"\nadmin:\n  socket: " + socket + "\nstate:\n  path: " + state + `
scim:
  token_env: FIRSTHOUR_SCIM_TOKEN
cloudflare:
  api_token_env: ""
sync:
  schedule: "@every 1h"
accounts:
  - name: prod
    id: 0123456789abcdef0123456789abcdef
    environment: production
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
` + extra
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRelativePathsResolveAgainstTheConfigFolder: `status --config
// /abs/dev.yaml` from another folder used to miss the daemon and create an
// empty state file in the current folder.
func TestRelativePathsResolveAgainstTheConfigFolder(t *testing.T) {
	cfgDir, elsewhere := t.TempDir(), t.TempDir()
	cfg := firstHourConfig(t, cfgDir, "./state.db", "./admin.sock", "")
	t.Chdir(elsewhere)
	if code, out, errOut := runMain("token", "create", "--name", "okta", "--config", cfg); code != 0 {
		t.Fatalf("token create: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "state.db")); err != nil {
		t.Errorf("the state file is not beside the config file: %v", err)
	}
	if code, out, errOut := runMain("token", "list", "--config", cfg); code != 0 || !strings.Contains(out, "okta") {
		t.Errorf("token list from another folder: %d %s %s", code, out, errOut)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) > 0 {
		t.Errorf("commands created %s in the current folder", entries[0].Name())
	}
}

// TestReadOnlyCommandsNeverCreateState: a read-only command on a config
// whose state does not exist is one sentence, and no file appears.
func TestReadOnlyCommandsNeverCreateState(t *testing.T) {
	dir := t.TempDir()
	cfg := firstHourConfig(t, dir, "./state.db", "./admin.sock", "")
	for _, args := range [][]string{
		{"status"}, {"audit"}, {"audit", "verify"}, {"explain", "--user", "alice@example.com"},
		{"report", "access"}, {"plan"}, {"token", "list"}, {"backup", "--out", filepath.Join(dir, "copy.db")},
	} {
		code, out, errOut := runMain(append(args, "--config", cfg)...)
		if code != 1 || !strings.Contains(errOut, "no state file at "+filepath.Join(dir, "state.db")) || !strings.Contains(errOut, "never creates it") {
			t.Errorf("%s without state: exit %d, want 1 and a sentence naming the missing state file\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
			t.Fatalf("%s created the state file", strings.Join(args, " "))
		}
	}
	if code, out, errOut := runMain("validate", "--config", cfg); code != 0 {
		t.Errorf("validate without state: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
		t.Fatal("validate created the state file")
	}
}

// TestCommandNamesTheDaemonsConfig: a --config other than the running
// daemon's is named, and read-only commands reach the daemon even when the
// local file does not load (a typo must not block status or audit verify).
func TestCommandNamesTheDaemonsConfig(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"reload"}} {
		code, out, errOut := runMain(append(args, "--config", other)...)
		if code != 0 || !strings.Contains(errOut, "runs with "+e.cfgPath+", not "+other) {
			t.Errorf("%s --config other.yaml: exit %d, want 0 and a note naming the daemon's config\nstdout: %s\nstderr: %s", args[0], code, out, errOut)
		}
	}
	if _, _, errOut := runMain("status", "--config", e.cfgPath); strings.Contains(errOut, "runs with") {
		t.Errorf("a note although --config is the daemon's own: %s", errOut)
	}

	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, append(raw, []byte("\nsync_typo: 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ args []string }{{[]string{"status"}}, {[]string{"audit", "verify"}}} {
		code, out, errOut := runMain(append(c.args, "--config", broken)...)
		if code != 0 || !strings.Contains(errOut, "does not load") || !strings.Contains(errOut, "sync_typo") || !strings.Contains(errOut, e.cfgPath) {
			t.Errorf("%s with a broken local config: exit %d\nstdout: %s\nstderr: %s", c.args[0], code, out, errOut)
		}
	}
	// A command that changes something never runs on a file that does not
	// load.
	if code, _, errOut := runMain("apply", "--config", broken); code != 1 || !strings.Contains(errOut, "sync_typo") {
		t.Errorf("apply with a broken config: exit %d, want 1 naming the key\n%s", code, errOut)
	}
}

// TestValidateChecksBaseURLAsServeDoes: validate accepted
// http://127.0.0.1:PORT/client/v4 (a prefix test) and serve then refused it
// as "not an absolute http(s) URL"; both now refuse it naming the port.
func TestValidateChecksBaseURLAsServeDoes(t *testing.T) {
	dir := t.TempDir()
	cfg := firstHourConfig(t, dir, "./state.db", "./admin.sock", "")
	raw, _ := os.ReadFile(cfg)
	fixed := strings.Replace(string(raw), "cloudflare:\n", "cloudflare:\n  base_url: http://127.0.0.1:PORT/client/v4\n", 1)
	if err := os.WriteFile(cfg, []byte(fixed), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"validate", "serve"} {
		code, out, errOut := runMain(cmd, "--config", cfg)
		if code != 1 || !strings.Contains(errOut, "cloudflare.base_url") || !strings.Contains(errOut, `invalid port ":PORT"`) {
			t.Errorf("%s with base_url …:PORT: exit %d, want 1 naming the key and the port\nstdout: %s\nstderr: %s", cmd, code, out, errOut)
		}
	}
}

// TestHelpDescribesEveryCommand: `COMMAND --help` has a description and
// examples and exits 0; completion scripts exist for bash, zsh and fish.
func TestHelpDescribesEveryCommand(t *testing.T) {
	for _, d := range commandDocs {
		code, out, errOut := runMain(d.name, "--help")
		if code != 0 || !strings.Contains(out, "usage: scimflare "+d.name) || !strings.Contains(out, "examples:") || !strings.Contains(out, "scimflare "+d.name) {
			t.Errorf("%s --help: exit %d\nstdout: %s\nstderr: %s", d.name, code, out, errOut)
		}
		if _, top, _ := runMain("help"); !strings.Contains(top, d.short) {
			t.Errorf("scimflare help lacks %s's description %q", d.name, d.short)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runMain("completion", shell)
		if code != 0 || !strings.Contains(out, "scimflare") || len(out) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes\n%s", shell, code, len(out), errOut)
		}
	}
	if _, out, _ := runMain("__complete", "token", ""); !strings.Contains(out, "create\nlist\nrevoke") {
		t.Errorf("token's subcommands are not completed:\n%s", out)
	}
	if _, out, _ := runMain("__complete", "plan", "--de"); !strings.Contains(out, "--detailed-exitcode") {
		t.Errorf("plan's flags are not completed:\n%s", out)
	}
	if code, out, _ := runMain("--version"); code != 0 || !strings.HasPrefix(out, "scimflare ") {
		t.Errorf("--version: %d %q", code, out)
	}
}

// served is a child `serve` whose JSON log lines are kept.
type served struct {
	addr string
	logs *syncBuffer
	stop func()
}

func startServe(t *testing.T, bin, cfg string, env ...string) *served {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{logs: newSyncBuffer()}
	addr, done := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			_, _ = s.logs.Write(append(bytes.Clone(sc.Bytes()), '\n'))
			var l struct{ Msg, Listen string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "scimflare serving" {
				addr <- l.Listen
			}
		}
	}()
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
	}
	t.Cleanup(s.stop)
	select {
	case s.addr = <-addr:
	case <-done:
		t.Fatalf("serve exited before serving:\n%s", s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start within 30s:\n%s", s.logs.String())
	}
	return s
}

// logLines are the JSON log lines whose msg is msg.
func logLines(logs, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOperatorLogs: the start-up line, the first enforce-mode summary,
// every SCIM 4xx at WARN with detail and client (never the token), the
// access log, `applied` lines with their reason, one summary line per
// reconcile; and the budget metric agrees with status.
func TestOperatorLogs(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: procCFToken})
	cfg := procConfig(t, dir, fake.URL(), "@every 1h", "200ms")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("log:\n  level: info\n  format: json\n  access_log: true\n")
	f.Close()
	s := startServe(t, bin, cfg, "PROC_SCIM_TOKEN="+procSCIMToken, "PROC_CF_TOKEN="+procCFToken)
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", s.logs.String())
		}
	}()

	start := logLines(s.logs.String(), "scimflare starting")
	if len(start) != 1 || start[0]["mode"] != "enforce" || !strings.Contains(start[0]["accounts"].(string), e2eAccount) ||
		!strings.Contains(start[0]["scim_auth"].(string), "$PROC_SCIM_TOKEN") || start[0]["version"] == nil || start[0]["commit"] == nil {
		t.Errorf("start-up line: %v", start)
	}
	if first := logLines(s.logs.String(), "first enforce-mode start against this account: scimflare will now write to it"); len(first) != 1 ||
		first[0]["account"] != "prod" || !strings.Contains(first[0]["mappings"].(string), "cf-deployers -> Workers Platform Admin") {
		t.Errorf("first enforce-mode summary: %v", first)
	}

	// An IdP's typo: a filter on "activ".
	code, _ := get(t, "http://"+s.addr+"/scim/v2/Users?filter=activ%20eq%20", procSCIMToken)
	bad, _ := get(t, "http://"+s.addr+"/scim/v2/Users", "not-the-token-4b7e")
	if code != 400 || bad != 401 {
		t.Fatalf("want 400 and 401, got %d and %d", code, bad)
	}
	client := &http.Client{}
	st, u, err := scimCall(client, s.addr, "POST", "/Users", userBody("alice@example.com"))
	if err != nil || st != 201 {
		t.Fatalf("create user: %d %v", st, err)
	}
	st, _, err = scimCall(client, s.addr, "POST", "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "cf-deployers",
		"members": []any{map[string]any{"value": u["id"]}}})
	if err != nil || st != 201 {
		t.Fatalf("create group: %d %v", st, err)
	}
	// The run logs its "applied" lines before its summary line: wait for
	// the summary of the run that applied the change.
	waitUntil(t, 15*time.Second, "the summary of the run that applied the change", func() bool {
		for _, r := range logLines(s.logs.String(), "reconcile finished") {
			if r["applied"] == 1.0 {
				return true
			}
		}
		return false
	})

	logs := s.logs.String()
	refused := logLines(logs, "SCIM request refused")
	var saw400, saw401 bool
	for _, r := range refused {
		if r["level"] != "WARN" || !strings.HasPrefix(r["client"].(string), "127.0.0.1:") || r["detail"] == "" {
			t.Errorf("a refused request logged without level WARN, client or detail: %v", r)
		}
		saw400 = saw400 || r["status"] == 400.0 && strings.Contains(r["detail"].(string), "activ")
		saw401 = saw401 || r["status"] == 401.0
	}
	if !saw400 || !saw401 {
		t.Errorf("the 400 (with its detail) and the 401 are not both logged: %v", refused)
	}
	if strings.Contains(logs, "not-the-token-4b7e") || strings.Contains(logs, procSCIMToken) || strings.Contains(logs, procCFToken) {
		t.Error("a token appears in the logs")
	}
	if acc := logLines(logs, "SCIM request"); len(acc) < 4 {
		t.Errorf("access log: %d lines for 4 requests", len(acc))
	}
	applied := logLines(logs, "applied")
	if applied[0]["reason"] != "member of cf-deployers (mappings[0])" {
		t.Errorf("applied line without its reason: %v", applied[0])
	}
	runs := logLines(logs, "reconcile finished")
	if len(runs) < 2 || runs[0]["kind"] != "full" || runs[0]["cloudflare_calls"].(float64) < 1 || runs[len(runs)-1]["applied"] != 1.0 ||
		runs[len(runs)-1]["trigger"] != "idp-push" || runs[len(runs)-1]["duration"] == nil || runs[len(runs)-1]["withheld"] != 0.0 {
		t.Errorf("reconcile summary lines: %v", runs)
	}
	// With a Cloudflare client the budget is exported, and agrees with status.
	_, metrics := get(t, "http://"+s.addr+"/metrics", "")
	if !strings.Contains(metrics, "\nscimflare_cloudflare_budget_left ") {
		t.Error("scimflare_cloudflare_budget_left is missing with a Cloudflare client")
	}
}

// TestPlanOnlyStartWithoutCredentials: no SCIM credential is a warning at
// start (every request would get 401), and in plan-only mode there is no
// budget metric, as status shows "n/a" (a 0 fired "budget exhausted").
func TestPlanOnlyStartWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	cfg := procConfig(t, dir, "", "@every 1h", "1s")
	s := startServe(t, bin, cfg, "PROC_SCIM_TOKEN=")
	if w := logLines(s.logs.String(), "no SCIM credential: every SCIM request will be refused with 401 until one exists"); len(w) != 1 || w[0]["level"] != "WARN" {
		t.Errorf("no warning about the missing SCIM credential:\n%s", s.logs.String())
	}
	if start := logLines(s.logs.String(), "scimflare starting"); len(start) != 1 || !strings.HasPrefix(start[0]["mode"].(string), "plan-only") {
		t.Errorf("start-up line: %v", start)
	}
	_, metrics := get(t, "http://"+s.addr+"/metrics", "")
	code, status, errOut := runMain("status", "--config", cfg)
	if code != 0 || !strings.Contains(status, "n/a") {
		t.Fatalf("status: %d %s %s", code, status, errOut)
	}
	if strings.Contains(metrics, "scimflare_cloudflare_budget_left") {
		t.Error("plan-only: status says n/a but /metrics exports scimflare_cloudflare_budget_left")
	}
}

// TestLogLevelFollowsReload: log.level is read at start and on reload; at
// warn the access log's INFO lines stop and the 4xx WARN lines stay.
func TestLogLevelFollowsReload(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	cfg := procConfig(t, dir, "", "@every 1h", "1s")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	write := func(level string) {
		t.Helper()
		if err := os.WriteFile(cfg, append(raw, []byte("log:\n  level: "+level+"\n  format: json\n  access_log: true\n")...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("info")
	s := startServe(t, bin, cfg, "PROC_SCIM_TOKEN="+procSCIMToken)
	users := "http://" + s.addr + "/scim/v2/Users"
	if code, _ := get(t, users, procSCIMToken); code != 200 {
		t.Fatalf("GET /Users: %d", code)
	}
	// The line is written as the request ends, and read from the
	// process's stderr: wait for it rather than race it.
	waitUntil(t, 5*time.Second, "the access log line at info", func() bool { return len(logLines(s.logs.String(), "SCIM request")) >= 1 })
	if n := len(logLines(s.logs.String(), "SCIM request")); n != 1 {
		t.Fatalf("access log at info: %d lines, want 1\n%s", n, s.logs.String())
	}
	write("warn")
	if code, out, errOut := runMain("reload", "--config", cfg); code != 0 {
		t.Fatalf("reload: %d %s %s", code, out, errOut)
	}
	get(t, users, procSCIMToken)
	get(t, users+"?filter=activ%20eq%20", procSCIMToken)
	waitUntil(t, 5*time.Second, "the 400 logged at WARN", func() bool { return len(logLines(s.logs.String(), "SCIM request refused")) == 1 })
	if n := len(logLines(s.logs.String(), "SCIM request")); n != 1 {
		t.Errorf("access log after reload to warn: %d lines, want still 1\n%s", n, s.logs.String())
	}
}

// TestReadOnlyCommandsLeaveTheStateUnchanged: looking at the state never
// writes to it (no bucket added, no schema stamped, no transaction
// committed), and works on a file the user may only read.
func TestReadOnlyCommandsLeaveTheStateUnchanged(t *testing.T) {
	dir := t.TempDir()
	cfg := firstHourConfig(t, dir, "./state.db", "./admin.sock", "")
	if code, out, errOut := runMain("token", "create", "--name", "okta", "--config", cfg); code != 0 {
		t.Fatalf("token create: %d %s %s", code, out, errOut)
	}
	state := filepath.Join(dir, "state.db")
	if err := os.Chmod(state, 0o400); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"status"}, {"audit"}, {"audit", "verify"}, {"explain", "--user", "alice@example.com"},
		{"report", "access"}, {"plan"}, {"token", "list"}, {"backup", "--out", filepath.Join(dir, "copy.db")},
	} {
		if code, out, errOut := runMain(append(args, "--config", cfg)...); code != 0 {
			t.Errorf("%s on a read-only state file: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
	}
	if after, err := os.ReadFile(state); err != nil || !bytes.Equal(before, after) {
		t.Errorf("a read-only command changed the state file (%v)", err)
	}
}
