package main

// End-to-end tests: the real daemon (SCIM over HTTP, bbolt file, reconciler,
// admin socket) on loopback, pointed at the fake Cloudflare, driven only
// through SCIM requests and the CLI.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

const (
	e2eAccount   = "0123456789abcdef0123456789abcdef"
	e2eSCIMToken = "e2e-scim-token"
	e2eCFToken   = "e2e-cloudflare-token"
)

type e2e struct {
	t       *testing.T
	fake    *cftest.Server
	base    string // SCIM base URL
	root    string // http://addr
	cfgPath string
	logs    *syncBuffer
	// stop shuts the daemon down and waits for it (also at cleanup).
	stop func()
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { b := &syncBuffer{mu: make(chan struct{}, 1)}; return b }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

type e2eOptions struct {
	unmanaged   string
	debounce    string
	extraConfig string
	beforeStart func(fake *cftest.Server)
	// editConfig rewrites the config text before it is written.
	editConfig func(string) string
}

// startE2E starts the fake Cloudflare and the daemon. Mappings:
// cf-deployers -> Workers Platform Admin; cf-oncall -> Administrator, ttl 2s.
func startE2E(t *testing.T, o e2eOptions) *e2e {
	t.Helper()
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	if o.beforeStart != nil {
		o.beforeStart(fake)
	}
	cfgPath := writeE2EConfig(t, dir, fake, o)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Ready: ready})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start within 10s")
	}
	var stopOnce gosync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("daemon stopped with %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("daemon did not stop within 20s")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if strings.Contains(logs.String(), e2eCFToken) || strings.Contains(logs.String(), e2eSCIMToken) {
			t.Error("a token appears in the daemon's logs")
		}
		if t.Failed() {
			t.Logf("daemon logs:\n%s", logs.String())
		}
	})
	e := &e2e{t: t, fake: fake, root: "http://" + addr, base: "http://" + addr + "/scim/v2", cfgPath: cfgPath, logs: logs, stop: stop}
	// The startup full reconcile must finish before the test pushes.
	e.waitFor(10*time.Second, "the startup reconcile (/readyz 200)", func() bool {
		resp, err := http.Get(e.root + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return e
}

// writeE2EConfig writes the e2e config into dir (state, socket and config
// file all inside it) and sets the token variables it names.
func writeE2EConfig(t *testing.T, dir string, fake *cftest.Server, o e2eOptions) string {
	t.Helper()
	t.Setenv("E2E_SCIM_TOKEN", e2eSCIMToken)
	t.Setenv("E2E_CF_TOKEN", e2eCFToken)
	if o.unmanaged == "" {
		o.unmanaged = "report"
	}
	if o.debounce == "" {
		o.debounce = "300ms"
	}
	cfgYAML := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
admin:
  socket: %s
state:
  path: %s
scim:
  token_env: E2E_SCIM_TOKEN
cloudflare:
  api_token_env: E2E_CF_TOKEN
  base_url: %s
  request_budget: 1200
sync:
  schedule: "@every 1h"
  debounce: %s
  unmanaged: %s
  max_grant_duration: 24h
  guards:
    max_removals: 25
    max_removal_percent: 20
  protected: [breakglass@example.com]
accounts:
  - name: prod
    id: %s
    environment: production
    grant_shape: roles
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
    ttl: 2s
%s`, filepath.Join(dir, "admin.sock"), filepath.Join(dir, "state.db"), fake.URL(), o.debounce, o.unmanaged, e2eAccount, o.extraConfig)
	if o.editConfig != nil {
		cfgYAML = o.editConfig(cfgYAML)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

func (e *e2e) scim(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eSCIMToken)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// cli runs a scimflare command as a user would; with the daemon up it goes
// over the admin socket.
func (e *e2e) cli(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(append(args, "--config", e.cfgPath), &out, &errOut)
	return code, out.String(), errOut.String()
}

// runs counts the finished reconciles of trigger, from /metrics: the event
// a test waits on instead of sleeping past the debounce.
func (e *e2e) runs(trigger string) float64 {
	e.t.Helper()
	res, err := http.Get(e.root + "/metrics")
	if err != nil {
		e.t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("GET /metrics: %v", err)
	}
	var n float64
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "scimflare_reconcile_runs_total{") || !strings.Contains(line, `trigger="`+trigger+`"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			n += v
		}
	}
	return n
}

func (e *e2e) waitFor(limit time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("timed out after %s waiting for %s", limit, what)
}

// Entra ID's create-user shape (learn.microsoft.com, "Tutorial: Develop and
// plan provisioning for a SCIM endpoint in Microsoft Entra ID", request 1).
func (e *e2e) createUser(email string) string {
	e.t.Helper()
	code, body := e.scim("POST", "/Users", map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"externalId": "ext-" + email,
		"userName":   email,
		"active":     true,
		"emails":     []any{map[string]any{"primary": true, "type": "work", "value": email}},
		"name":       map[string]any{"formatted": email, "familyName": "Doe", "givenName": "Jo"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "Platform"},
	})
	if code != http.StatusCreated {
		e.t.Fatalf("create user %s: %d %v", email, code, body)
	}
	return body["id"].(string)
}

func (e *e2e) createGroup(name string) string {
	e.t.Helper()
	code, body := e.scim("POST", "/Groups", map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"externalId":  "ext-" + name,
		"displayName": name,
		"members":     []any{},
	})
	if code != http.StatusCreated {
		e.t.Fatalf("create group %s: %d %v", name, code, body)
	}
	return body["id"].(string)
}

// addMembers uses Entra's add-member shape ("Add", path members, a list).
func (e *e2e) addMembers(groupID string, userIDs ...string) {
	e.t.Helper()
	var vals []any
	for _, id := range userIDs {
		vals = append(vals, map[string]any{"value": id})
	}
	code, body := e.scim("PATCH", "/Groups/"+groupID, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "Add", "path": "members", "value": vals}},
	})
	if code != http.StatusNoContent {
		e.t.Fatalf("add members: %d %v", code, body)
	}
}

// deactivate uses Entra's shape: op "Replace", value "False" as a string.
func (e *e2e) deactivate(userID string) {
	e.t.Helper()
	code, body := e.scim("PATCH", "/Users/"+userID, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "Replace", "path": "active", "value": "False"}},
	})
	if code != http.StatusNoContent {
		e.t.Fatalf("deactivate: %d %v", code, body)
	}
}

func (e *e2e) member(email string) (cftest.Member, bool) {
	return e.fake.Member(e2eAccount, email)
}

func (e *e2e) roleID(name string) string { return e.fake.RoleID(e2eAccount, name) }

func (e *e2e) writes(method string) int {
	n := 0
	for _, w := range e.fake.Writes() {
		if w.Method == method {
			n++
		}
	}
	return n
}

func TestE2EEntraPushGrantsExactlyTheMappedRoles(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	alice := e.createUser("alice@example.com")
	bob := e.createUser("bob@example.com")
	e.createUser("carol@example.com") // in no mapped group
	deployers := e.createGroup("cf-deployers")
	e.createGroup("unmapped-group")
	e.addMembers(deployers, alice, bob)

	admin := e.roleID("Workers Platform Admin")
	e.waitFor(5*time.Second, "alice and bob in Cloudflare", func() bool {
		a, okA := e.member("alice@example.com")
		b, okB := e.member("bob@example.com")
		return okA && okB && slices.Equal(a.Roles, []string{admin}) && slices.Equal(b.Roles, []string{admin})
	})
	if _, ok := e.member("carol@example.com"); ok {
		t.Error("carol is in no mapped group and must not be invited")
	}
	if got := len(e.fake.Members(e2eAccount)); got != 2 {
		t.Errorf("account has %d members, want exactly 2", got)
	}
	// The targeted run lists nothing: exactly one write per changed member.
	if got := e.writes("POST"); got != 2 {
		t.Errorf("%d create calls, want 2", got)
	}
	code, out, errOut := e.cli("plan", "--detailed-exitcode")
	if code != 0 {
		t.Errorf("plan after convergence: exit %d, want 0 (no changes)\n%s%s", code, out, errOut)
	}
}

func TestE2EDeactivationRemovesAccessWithinDebounce(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	alice := e.createUser("alice@example.com")
	g := e.createGroup("cf-deployers")
	e.addMembers(g, alice)
	e.waitFor(5*time.Second, "alice invited", func() bool { _, ok := e.member("alice@example.com"); return ok })

	listsBefore := e.fake.Calls("GET", cloudflare.RouteMembers)
	start := time.Now()
	e.deactivate(alice)
	e.waitFor(5*time.Second, "alice removed", func() bool { _, ok := e.member("alice@example.com"); return !ok })
	t.Logf("access removed %s after the deactivating PATCH (debounce 300ms)", time.Since(start).Round(10*time.Millisecond))
	if got := e.fake.Calls("GET", cloudflare.RouteMembers) - listsBefore; got != 0 {
		t.Errorf("the event-driven run listed members %d times, want 0", got)
	}
	code, out, _ := e.cli("status")
	if code != 0 || !strings.Contains(out, "guard") {
		t.Errorf("status: %d %s", code, out)
	}
}

func TestE2ETTLGrantExpiresWhileUserStaysInGroup(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	dave := e.createUser("dave@example.com")
	oncall := e.createGroup("cf-oncall")
	e.addMembers(oncall, dave)
	adminRole := e.roleID("Administrator")
	var granted time.Time
	e.waitFor(5*time.Second, "dave granted Administrator", func() bool {
		m, ok := e.member("dave@example.com")
		if ok && slices.Contains(m.Roles, adminRole) {
			granted = time.Now()
			return true
		}
		return false
	})
	e.waitFor(6*time.Second, "dave's 2s ttl grant to end", func() bool { _, ok := e.member("dave@example.com"); return !ok })
	t.Logf("ttl grant removed %s after it was seen granted (ttl 2s)", time.Since(granted).Round(10*time.Millisecond))
	code, body := e.scim("GET", "/Groups/"+oncall, nil)
	if code != 200 || !strings.Contains(fmt.Sprint(body["members"]), dave) {
		t.Errorf("dave must still be in cf-oncall after expiry: %d %v", code, body)
	}
}

func TestE2EHandAddedRoleIsDrift(t *testing.T) {
	for _, mode := range []string{"report", "remove"} {
		t.Run(mode, func(t *testing.T) {
			e := startE2E(t, e2eOptions{unmanaged: mode})
			alice := e.createUser("alice@example.com")
			g := e.createGroup("cf-deployers")
			e.addMembers(g, alice)
			e.waitFor(5*time.Second, "alice invited", func() bool { _, ok := e.member("alice@example.com"); return ok })
			// Someone adds a role in the dashboard.
			m, _ := e.member("alice@example.com")
			e.fake.RemoveMember(e2eAccount, m.Email)
			m.Roles = append(m.Roles, e.roleID("Administrator"))
			e.fake.AddMember(e2eAccount, m)

			code, out, errOut := e.cli("plan", "--json")
			if code != 0 {
				t.Fatalf("plan --json: %d %s", code, errOut)
			}
			var p struct {
				Drift []struct{ Email, Account, Role string } `json:"drift"`
			}
			if err := json.Unmarshal([]byte(out), &p); err != nil {
				t.Fatalf("plan --json is not JSON: %v\n%s", err, out)
			}
			found := false
			for _, d := range p.Drift {
				if strings.EqualFold(d.Email, "alice@example.com") && d.Role == "Administrator" {
					found = true
				}
			}
			if !found {
				t.Fatalf("plan --json does not report alice's hand-added Administrator as drift: %s", out)
			}
			if code, out, errOut := e.cli("apply"); code != 0 {
				t.Fatalf("apply: %d %s %s", code, out, errOut)
			}
			m, _ = e.member("alice@example.com")
			hasAdmin := slices.Contains(m.Roles, e.roleID("Administrator"))
			if mode == "report" && !hasAdmin {
				t.Error("unmanaged: report must leave the hand-added role in place")
			}
			if mode == "remove" && hasAdmin {
				t.Error("unmanaged: remove must take the hand-added role away")
			}
			if !slices.Contains(m.Roles, e.roleID("Workers Platform Admin")) {
				t.Error("the managed role must stay")
			}
		})
	}
}

func TestE2EMassDeactivationTripsGuardUntilForce(t *testing.T) {
	// "At once": the IdP sends the 100 deactivations concurrently, within
	// one debounce window, so they land in one reconcile.
	e := startE2E(t, e2eOptions{debounce: "2s"})
	g := e.createGroup("cf-deployers")
	var ids []string
	for i := range 100 {
		ids = append(ids, e.createUser(fmt.Sprintf("user%03d@example.com", i)))
	}
	e.addMembers(g, ids...)
	e.waitFor(20*time.Second, "100 members invited", func() bool { return len(e.fake.Members(e2eAccount)) == 100 })

	var wg gosync.WaitGroup
	work := make(chan string)
	for range 10 {
		wg.Go(func() {
			for id := range work {
				e.deactivate(id)
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	e.waitFor(15*time.Second, "/readyz to report the tripped guard", func() bool {
		resp, err := http.Get(e.root + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(string(b)), "guard")
	})
	if got := e.writes("DELETE"); got != 0 {
		t.Fatalf("%d removals reached Cloudflare while the guard was tripped", got)
	}
	if got := len(e.fake.Members(e2eAccount)); got != 100 {
		t.Fatalf("members = %d, want all 100 kept", got)
	}
	code, out, errOut := e.cli("apply", "--force")
	if code != 0 {
		t.Fatalf("apply --force: %d %s %s", code, out, errOut)
	}
	if got := len(e.fake.Members(e2eAccount)); got != 0 {
		t.Errorf("after apply --force %d members remain, want 0", got)
	}
	resp, err := http.Get(e.root + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d after apply --force, want 200", resp.StatusCode)
	}
}

func TestE2EProtectedEmailIsNeverTouched(t *testing.T) {
	e := startE2E(t, e2eOptions{beforeStart: func(f *cftest.Server) {
		f.AddMember(e2eAccount, cftest.Member{Email: "breakglass@example.com", Roles: []string{f.RoleID(e2eAccount, "Super Administrator - All Privileges")}})
	}})
	bg := e.createUser("breakglass@example.com")
	g := e.createGroup("cf-deployers")
	e.addMembers(g, bg)
	code, out, errOut := e.cli("plan", "--json")
	if code != 0 {
		t.Fatalf("plan: %d %s", code, errOut)
	}
	if !strings.Contains(out, `"withheld"`) || !strings.Contains(out, "breakglass@example.com") {
		t.Errorf("plan --json must show the protected change as withheld: %s", out)
	}
	pushes := e.runs("idp-push")
	e.deactivate(bg)
	if code, _, errOut := e.cli("apply"); code != 0 {
		t.Fatalf("apply: %d %s", code, errOut)
	}
	// The deactivation's own targeted run, before or after the apply.
	e.waitFor(10*time.Second, "the targeted run after the deactivation", func() bool { return e.runs("idp-push") > pushes })
	for _, w := range e.fake.Writes() {
		t.Errorf("a write reached Cloudflare for a protected setup: %+v", w)
	}
	m, ok := e.member("breakglass@example.com")
	if !ok || !slices.Equal(m.Roles, []string{e.roleID("Super Administrator - All Privileges")}) {
		t.Errorf("breakglass changed: %+v %v", m, ok)
	}
}

func TestE2EListingFailureRemovesNothing(t *testing.T) {
	// A long debounce keeps event-driven runs out of the way: only the
	// explicit full applies below touch Cloudflare.
	e := startE2E(t, e2eOptions{debounce: "10m", beforeStart: func(f *cftest.Server) {
		for i := range 60 { // more than one page of 50
			f.AddMember(e2eAccount, cftest.Member{Email: fmt.Sprintf("manual%02d@example.com", i), Roles: []string{f.RoleID(e2eAccount, "Administrator")}})
		}
	}})
	alice := e.createUser("alice@example.com")
	g := e.createGroup("cf-deployers")
	e.addMembers(g, alice)
	if code, out, errOut := e.cli("apply"); code != 0 {
		t.Fatalf("apply: %d %s %s", code, out, errOut)
	}
	if _, ok := e.member("alice@example.com"); !ok {
		t.Fatal("alice was not invited")
	}
	// Alice leaves the IdP while Cloudflare fails in the middle of a listing.
	if code, _ := e.scim("DELETE", "/Users/"+alice, nil); code != http.StatusNoContent {
		t.Fatalf("delete user: %d", code)
	}
	e.fake.Inject(cftest.Fault{Method: "GET", Route: cloudflare.RouteMembers, Page: 2, Status: 500, Times: -1})
	code, out, errOut := e.cli("apply")
	if code != 1 {
		t.Fatalf("apply with a failing listing: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "abort") {
		t.Errorf("apply must say it aborted: %q", errOut)
	}
	if got := e.writes("DELETE"); got != 0 {
		t.Errorf("%d removals after a partial listing", got)
	}
	if _, ok := e.member("alice@example.com"); !ok {
		t.Error("alice was removed on a partial read")
	}
	// Once Cloudflare answers again, the next run converges.
	e.fake.ClearFaults()
	if code, out, errOut := e.cli("apply"); code != 0 {
		t.Fatalf("apply after recovery: %d %s %s", code, out, errOut)
	}
	if _, ok := e.member("alice@example.com"); ok {
		t.Error("alice must be removed once the listing succeeds")
	}
	if got := len(e.fake.Members(e2eAccount)); got != 60 {
		t.Errorf("members = %d, want the 60 hand-made ones", got)
	}
}

// A listing that answers HTTP 200 but is not provably complete — "result":
// null, a short page, success:false, a duplicated member — is a failed
// read: apply exits 1 with one sentence, nothing is removed, no ownership
// is forgotten, and the leaver is removed once the listing is whole.
func TestE2EIncompleteListingAbortsAndForgetsNothing(t *testing.T) {
	for _, lf := range []struct {
		name  string
		fault cftest.ListingFault
	}{
		{"result null", cftest.ListingNullResult},
		{"short page", cftest.ListingShortPage},
		{"success false", cftest.ListingUnsuccessful},
		{"duplicate member", cftest.ListingDuplicate},
	} {
		t.Run(lf.name, func(t *testing.T) {
			e := startE2E(t, e2eOptions{debounce: "10m", beforeStart: func(f *cftest.Server) {
				for i := range 55 {
					f.AddMember(e2eAccount, cftest.Member{Email: fmt.Sprintf("manual%02d@example.com", i), Roles: []string{f.RoleID(e2eAccount, "Administrator")}})
				}
			}})
			alice := e.createUser("alice@example.com")
			e.addMembers(e.createGroup("cf-deployers"), alice)
			if code, out, errOut := e.cli("apply"); code != 0 {
				t.Fatalf("apply: %d %s %s", code, out, errOut)
			}
			e.deactivate(alice)
			e.fake.Inject(cftest.Fault{Method: "GET", Route: cloudflare.RouteMembers, Listing: lf.fault, Times: -1})
			code, out, errOut := e.cli("apply")
			if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "abort") {
				t.Fatalf("apply with an incomplete listing: exit %d, want 1 with one sentence\n%s%s", code, out, errOut)
			}
			if got := e.writes("DELETE"); got != 0 {
				t.Errorf("%d removals after an incomplete listing", got)
			}
			for _, a := range e.auditActions() {
				if strings.HasPrefix(a, "member_gone/") {
					t.Errorf("ownership forgotten on an incomplete listing: %v", e.auditActions())
					break
				}
			}
			e.fake.ClearFaults()
			if code, out, errOut := e.cli("apply"); code != 0 {
				t.Fatalf("apply after recovery: %d %s %s", code, out, errOut)
			}
			if _, ok := e.member("alice@example.com"); ok {
				t.Error("the deactivated alice kept her access")
			}
			if got := len(e.fake.Members(e2eAccount)); got != 55 {
				t.Errorf("members = %d, want the 55 hand-made ones", got)
			}
		})
	}
}

func TestE2EServeHealthMetricsAndFileModes(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	e.createUser("alice@example.com")
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.root + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, resp.StatusCode)
		}
	}
	resp, err := http.Get(e.root + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`scimflare_scim_requests_total{endpoint="Users",method="POST",status="201"} 1`,
		"scimflare_reconcile_runs_total", "scimflare_last_success_timestamp_seconds", "scimflare_cloudflare_calls_total"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{cfg.State.Path, cfg.Admin.Socket} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// While the daemon holds the state file, an offline open fails at once
	// instead of hanging: the CLI goes through the socket instead.
	code, out, _ := e.cli("token", "list")
	if code != 0 || !strings.Contains(out, "NAME") {
		t.Errorf("token list over the admin socket: %d %q", code, out)
	}
	// status shows the daemon's verification of its Cloudflare token.
	code, out, errOut := e.cli("status")
	if code != 0 || !strings.Contains(out, "cloudflare token") || !strings.Contains(out, "active") {
		t.Errorf("status must report the verified Cloudflare token: %d %q %q", code, out, errOut)
	}
}
