package main

// End-to-end tests of the operator tools (issue 4): reload, backup, audit,
// report access, validate and status against the running daemon.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

const deployersMapping = "  - group: cf-deployers\n    account: prod\n    roles: [Workers Platform Admin]\n"

func (e *e2e) rewriteConfig(edit func(string) string) {
	e.t.Helper()
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, []byte(edit(string(raw))), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) auditActions() []string {
	e.t.Helper()
	code, out, errOut := e.cli("audit", "--json")
	if code != 0 {
		e.t.Fatalf("audit --json: %d %s", code, errOut)
	}
	var recs []struct{ Action, Actor, Reason string }
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		e.t.Fatalf("audit --json: %v\n%s", err, out)
	}
	var acts []string
	for _, r := range recs {
		acts = append(acts, r.Action+"/"+r.Actor)
	}
	return acts
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestE2EReloadThatRemovesAMappingGoesThroughTheGuard(t *testing.T) {
	e := startE2E(t, e2eOptions{debounce: "100ms"})
	g := e.createGroup("cf-deployers")
	var ids []string
	for i := range 30 {
		ids = append(ids, e.createUser(fmt.Sprintf("user%02d@example.com", i)))
	}
	e.addMembers(g, ids...)
	e.waitFor(15*time.Second, "30 members invited", func() bool { return len(e.fake.Members(e2eAccount)) == 30 })

	// A broken config by SIGHUP: rejected, logged, audited; the running one stays.
	good, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.rewriteConfig(func(s string) string { return s + "bogus_key: 1\n" })
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitFor(5*time.Second, "the rejected reload in the daemon's log", func() bool {
		return strings.Contains(e.logs.String(), "config reload rejected; the running config stays") && strings.Contains(e.logs.String(), "bogus_key")
	})
	// The CLI reads the config too (for the socket): put the good one back.
	if err := os.WriteFile(e.cfgPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if !has(e.auditActions(), "config_reload_rejected/reload") {
		t.Error("the rejected reload is not audited")
	}
	code, out, errOut := e.cli("audit", "--since", "1m")
	t.Logf("audit after the rejected SIGHUP reload:\n%s", out)
	if code != 0 || !strings.Contains(out, "bogus_key") {
		t.Errorf("audit does not carry the rejection reason: %d %s %s", code, out, errOut)
	}

	// Removing the mapping by reload: 30 removals > max_removals 25.
	if err := os.WriteFile(e.cfgPath, []byte(strings.Replace(string(good), deployersMapping, "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = e.cli("reload")
	t.Logf("scimflare reload:\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(out, "1 removed") || !strings.Contains(out, "removal guard TRIPPED on prod: 30 removal(s) withheld") {
		t.Fatalf("reload: %d\n%s%s", code, out, errOut)
	}
	if got := e.writes("DELETE"); got != 0 {
		t.Fatalf("%d removals reached Cloudflare through a reload", got)
	}
	if n := len(e.fake.Members(e2eAccount)); n != 30 {
		t.Fatalf("members = %d after the reload, want 30 kept by the guard", n)
	}
	resp, err := http.Get(e.root + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with a tripped guard, want 503", resp.StatusCode)
	}
	acts := e.auditActions()
	if !has(acts, "config_reload/reload") || !has(acts, "guard_tripped/reload") {
		t.Errorf("audit lacks the reload or the guard trip: %v", acts)
	}
	code, out, _ = e.cli("status")
	t.Logf("status with the tripped guard:\n%s", out)
	if code != 0 || !strings.Contains(out, "TRIPPED on prod") {
		t.Errorf("status: %d %s", code, out)
	}
	if code, out, errOut := e.cli("apply", "--force"); code != 0 {
		t.Fatalf("apply --force: %d %s %s", code, out, errOut)
	}
	if n := len(e.fake.Members(e2eAccount)); n != 0 {
		t.Errorf("members = %d after apply --force, want 0", n)
	}
}

func TestE2EBackupWhileServing(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	g := e.createGroup("cf-deployers")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := e.createUser(fmt.Sprintf("busy%04d@example.com", i))
			e.addMembers(g, id)
		}
	}()
	dir := t.TempDir()
	t.Chdir(dir) // --out is relative to the caller, not to the daemon
	time.Sleep(200 * time.Millisecond)
	var outs []string
	for i := range 3 {
		code, out, errOut := e.cli("backup", "--out", fmt.Sprintf("backup-%d.db", i))
		if code != 0 {
			close(stop)
			wg.Wait()
			t.Fatalf("backup while serving: %d %s %s", code, out, errOut)
		}
		outs = append(outs, out)
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("scimflare backup --out backup-2.db:\n%s", outs[2])
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("backup-%d.db", i))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
		if err := store.CheckFile(p, 0); err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		n, err := st.CountUsers()
		if _, verr := st.VerifyAudit(); verr != nil {
			t.Errorf("audit trail of %s: %v", p, verr)
		}
		st.Close()
		if err != nil || n == 0 {
			t.Errorf("%s holds %d users (%v), want the ones written before it", p, n, err)
		}
		t.Logf("%s: %d users", filepath.Base(p), n)
	}
}

func TestE2EOperatorCommands(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	alice := e.createUser("alice@example.com")
	g := e.createGroup("cf-deployers")
	e.addMembers(g, alice)
	e.waitFor(5*time.Second, "alice invited", func() bool { _, ok := e.member("alice@example.com"); return ok })

	code, out, errOut := e.cli("grant", "--user", "alice@example.com", "--account", "prod", "--role", "Administrator", "--for", "1h", "--reason", "INC-42")
	if code != 0 {
		t.Fatalf("grant: %d %s %s", code, out, errOut)
	}
	afterGrant := time.Now()
	time.Sleep(20 * time.Millisecond)
	if code, out, errOut := e.cli("token", "create", "--name", "okta"); code != 0 {
		t.Fatalf("token create: %d %s %s", code, out, errOut)
	}

	code, out, _ = e.cli("audit")
	t.Logf("scimflare audit:\n%s", out)
	for _, want := range []string{"grant (!)", "token_create (!)", "add_member (!)", "INC-42"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit lacks %q: %d", want, code)
		}
	}
	code, out, _ = e.cli("audit", "verify")
	t.Logf("scimflare audit verify:\n%s", out)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Errorf("audit verify: %d %s", code, out)
	}

	code, out, errOut = e.cli("report", "access")
	t.Logf("scimflare report access:\n%s", out)
	if code != 0 || !strings.Contains(out, "group cf-deployers") || !strings.Contains(out, "Administrator") || !strings.Contains(out, "grant g-") {
		t.Errorf("report access: %d %s %s", code, out, errOut)
	}
	code, out, _ = e.cli("report", "access", "--at", afterGrant.Format(time.RFC3339Nano), "--csv")
	t.Logf("scimflare report access --at T --csv:\n%s", out)
	if code != 0 || !strings.Contains(out, "alice@example.com,prod,Workers Platform Admin,group cf-deployers,") ||
		!strings.Contains(out, "alice@example.com,prod,Administrator,grant g-") {
		t.Errorf("report access --at: %d %s", code, out)
	}

	code, out, _ = e.cli("status")
	t.Logf("scimflare status:\n%s", out)
	for _, want := range []string{"okta  age 0h  expires", "pending expiries", "alice@example.com  Administrator", "budget left"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}

	code, out, errOut = e.cli("validate")
	t.Logf("scimflare validate:\n%s%s", out, errOut)
	if code != 0 || !strings.Contains(errOut, `no SCIM group is called "cf-oncall"`) || strings.Contains(errOut, `"cf-deployers"`) {
		t.Errorf("validate over the socket: %d %s %s", code, out, errOut)
	}
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	raw, _ := os.ReadFile(e.cfgPath)
	if err := os.WriteFile(typo, []byte(strings.Replace(string(raw), "[Workers Platform Admin]", "[Workers Platfrom Admin]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var o, eo strings.Builder
	code = run([]string{"validate", "--config", typo, "--online"}, &o, &eo)
	t.Logf("scimflare validate --online (typo):\n%s%s", o.String(), eo.String())
	if code != 1 || !strings.Contains(eo.String(), `did you mean "Workers Platform Admin"`) {
		t.Errorf("validate --online with a typo: %d %s %s", code, o.String(), eo.String())
	}
	code, out, errOut = e.cli("validate", "--online")
	if code != 0 || !strings.Contains(out, "every role, permission group and resource group name resolves") {
		t.Errorf("validate --online: %d %s %s", code, out, errOut)
	}
}
