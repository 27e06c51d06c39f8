package daemon_test

// End-to-end tests of the credential checks: the real daemon on loopback,
// the fake Cloudflare, and an in-process OIDC issuer.

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
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	"github.com/scimflare/scimflare/scim/oidctest"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

const (
	credAccount   = "0123456789abcdef0123456789abcdef"
	credSCIMToken = "cred-test-static-scim-token-5f1e"
	credCFOld     = "cred-test-cloudflare-token-old-9a7c"
	credCFNew     = "cred-test-cloudflare-token-new-3b2d"
	credAudience  = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
	credTenant    = "9188040d-6c67-4c5b-b112-36a304b66dad"
	credAppID     = "6a4e0d0f-2f6b-4c53-9d7e-1c9b2e5f8a01"
)

type logBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type credRun struct {
	t      *testing.T
	fake   *cftest.Server
	idp    *oidctest.Provider
	root   string
	logs   *logBuffer
	bodies bytes.Buffer // every HTTP answer the test read
	file   string       // the Cloudflare token file
	skew   atomic.Int64 // added to the daemon's clock
}

func (r *credRun) now() time.Time { return time.Now().Add(time.Duration(r.skew.Load())) }

type credOptions struct {
	cfToken  string // the token scimflare is given
	mode     string
	idpDown  bool
	info     cftest.TokenInfo
	noOIDC   bool
	fakeSees string // the token the fake accepts; cfToken when empty
	recheck  time.Duration
}

func credConfig(t *testing.T, o credOptions, fake *cftest.Server, idp *oidctest.Provider, file string) *config.Config {
	t.Helper()
	dir := filepath.Dir(file)
	if o.mode == "" {
		o.mode = "enforce"
	}
	oidc := ""
	if !o.noOIDC {
		oidc = fmt.Sprintf(`  oidc:
    issuer: %q
    audience: %s
    allowed_clients: [%s]
    required_claims: {tid: %s}
`, idp.Issuer(), credAudience, credAppID, credTenant)
	}
	y := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
admin:
  socket: %s
state:
  path: %s
scim:
  token_env: CRED_TEST_SCIM_TOKEN
%scloudflare:
  api_token_env: ""
  api_token_file: %s
  base_url: %s
sync:
  schedule: "@every 1h"
  debounce: 100ms
  mode: %s
accounts:
  - name: prod
    id: %s
    environment: production
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
`, filepath.Join(dir, "admin.sock"), filepath.Join(dir, "state.db"), oidc, file, fake.URL(), o.mode, credAccount)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startCred runs the daemon; err is Run's error when it refused to start.
func startCred(t *testing.T, o credOptions) (*credRun, error) {
	t.Helper()
	t.Setenv("CRED_TEST_SCIM_TOKEN", credSCIMToken)
	if o.fakeSees == "" {
		o.fakeSees = o.cfToken
	}
	fake := cftest.New(t, cftest.Options{Accounts: []string{credAccount}, Token: o.fakeSees})
	fake.SetTokenInfo(o.info)
	idp := oidctest.New(t, oidctest.Options{IssuerPath: "/" + credTenant + "/"})
	idp.SetDown(o.idpDown)
	file := filepath.Join(t.TempDir(), "cf-token")
	if err := os.WriteFile(file, []byte(o.cfToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := credConfig(t, o, fake, idp, file)
	r := &credRun{t: t, fake: fake, idp: idp, logs: &logBuffer{}, file: file}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{
			Logger: slog.New(slog.NewJSONHandler(r.logs, nil)), Ready: ready, Now: r.now,
			TokenFilePoll: 50 * time.Millisecond, TokenRecheck: o.recheck,
		})
	}()
	select {
	case addr := <-ready:
		r.root = "http://" + addr
	case err := <-done:
		cancel()
		return r, err
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("daemon did not start within 20s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon stopped with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop within 20s")
		}
		if t.Failed() {
			t.Logf("daemon logs:\n%s", r.logs.String())
		}
	})
	return r, nil
}

func (r *credRun) get(path, token string) (int, string) {
	r.t.Helper()
	return r.do("GET", path, token, "")
}

func (r *credRun) do(method, path, token, body string) (int, string) {
	r.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.root+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r.bodies.Write(raw)
	r.bodies.WriteString(fmt.Sprintln(resp.Header))
	return resp.StatusCode, string(raw)
}

func (r *credRun) readyz() (int, []string) {
	r.t.Helper()
	code, body := r.get("/readyz", "")
	var doc struct{ Warnings []string }
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		r.t.Fatalf("/readyz body is not JSON: %s", body)
	}
	return code, doc.Warnings
}

func (r *credRun) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *credRun) jwt(now time.Time) string {
	iss := r.idp.Issuer()
	return r.idp.Sign(r.t, map[string]any{
		"aud": credAudience, "iss": iss, "idp": iss, "tid": credTenant, "appid": credAppID, "appidacr": "2",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"oid": "0b8c1f4e-7d2a-4e55-9b61-3c1d2e3f4a5b", "sub": "0b8c1f4e-7d2a-4e55-9b61-3c1d2e3f4a5b", "ver": "1.0",
	})
}

func containsAny(hay string, needles ...string) string {
	for _, n := range needles {
		if n != "" && strings.Contains(hay, n) {
			return n
		}
	}
	return ""
}

func TestServeRefusesAnInvalidOrInactiveCloudflareTokenInEnforceMode(t *testing.T) {
	cases := []struct {
		name string
		o    credOptions
		want string
	}{
		{"refused", credOptions{cfToken: credCFOld, fakeSees: "some-other-token", noOIDC: true}, "is not valid: Cloudflare refused it (cloudflare GET /user/tokens/verify: HTTP 403 Forbidden: error 10000: Authentication error)"},
		{"disabled", credOptions{cfToken: credCFOld, info: cftest.TokenInfo{Status: "disabled"}, noOIDC: true}, "is disabled, not active"},
		{"past its expiry", credOptions{cfToken: credCFOld, info: cftest.TokenInfo{ExpiresOn: time.Now().Add(-time.Hour)}, noOIDC: true}, "expired at"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := startCred(t, c.o)
			if err == nil {
				t.Fatal("serve started with an unusable Cloudflare token")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, "serve will not start in enforce mode") ||
				!strings.Contains(msg, "cloudflare.api_token_file "+r.file) || strings.Contains(msg, "\n") {
				t.Fatalf("error is not the one sentence expected: %q", msg)
			}
			if leak := containsAny(msg+r.logs.String(), credCFOld, "some-other-token"); leak != "" {
				t.Fatalf("token %q leaked into the error or logs", leak)
			}
		})
	}
}

func TestPlanOnlyServesWithAnInactiveCloudflareToken(t *testing.T) {
	r, err := startCred(t, credOptions{cfToken: credCFOld, mode: "plan-only", info: cftest.TokenInfo{Status: "disabled"}, noOIDC: true})
	if err != nil {
		t.Fatalf("plan-only refused to start: %v", err)
	}
	_, warn := r.readyz()
	if len(warn) != 1 || !strings.Contains(warn[0], "is disabled, not active") {
		t.Fatalf("/readyz warnings = %q", warn)
	}
}

func TestCloudflareTokenExpiryIsWarnedAndExported(t *testing.T) {
	expires := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	r, err := startCred(t, credOptions{cfToken: credCFOld, info: cftest.TokenInfo{ExpiresOn: expires}, noOIDC: true})
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("the startup reconcile", func() bool { code, _ := r.readyz(); return code == 200 })
	code, warn := r.readyz()
	if code != 200 || len(warn) != 1 || !strings.Contains(warn[0], "expires at "+expires.UTC().Format(time.RFC3339)) || !strings.Contains(warn[0], "in 10 day(s)") {
		t.Fatalf("/readyz %d warnings = %q", code, warn)
	}
	_, metrics := r.get("/metrics", "")
	want := "scimflare_cloudflare_token_expiry_timestamp_seconds " + strconv.FormatFloat(float64(expires.Unix()), 'g', -1, 64)
	if !strings.Contains(metrics, want) {
		t.Fatalf("/metrics lacks %q", want)
	}
	if !strings.Contains(r.logs.String(), `"msg":"cloudflare api token expires soon"`) {
		t.Fatalf("no expiry warning in the log:\n%s", r.logs.String())
	}

	// Far from expiry: no warning, and the gauge moves with the new answer.
	later := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	r.fake.SetTokenInfo(cftest.TokenInfo{ExpiresOn: later})
	r.fake.SetToken(credCFNew)
	if err := os.WriteFile(r.file, []byte(credCFNew), 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the re-verification after the token file changed", func() bool { _, w := r.readyz(); return len(w) == 0 })
	_, metrics = r.get("/metrics", "")
	if !strings.Contains(metrics, "scimflare_cloudflare_token_expiry_timestamp_seconds "+strconv.FormatFloat(float64(later.Unix()), 'g', -1, 64)) {
		t.Fatal("the expiry gauge did not follow the new token")
	}
}

func TestCloudflareTokenRecheckReportsARevokedTokenAndAMissingFileKeepsTheToken(t *testing.T) {
	r, err := startCred(t, credOptions{cfToken: credCFOld, noOIDC: true, recheck: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("the startup reconcile", func() bool { code, _ := r.readyz(); return code == 200 })
	// A half-done rotation: the file is gone. The current token stays.
	if err := os.Remove(r.file); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the missing file to be reported", func() bool {
		return strings.Contains(r.logs.String(), "the current token stays in use")
	})
	if _, warn := r.readyz(); len(warn) != 0 {
		t.Fatalf("the token still verifies, yet /readyz warns: %q", warn)
	}
	// Revoked while running: the re-check reports it; serve keeps running
	// and readiness is the reconciler's business.
	r.fake.SetTokenInfo(cftest.TokenInfo{Status: "disabled"})
	r.waitFor("the re-check to report the disabled token", func() bool {
		_, warn := r.readyz()
		return len(warn) == 1 && strings.Contains(warn[0], "is disabled, not active")
	})
	if !strings.Contains(r.logs.String(), "changes to Cloudflare will fail until it is replaced") {
		t.Fatal("the revoked token is not in the log")
	}
}

// One full run: JWTs and static tokens over SCIM, the IdP down at start and
// back, a Cloudflare token rotated through its file and used by the
// reconciler. Then no token may appear in anything the daemon said.
func TestCredentialsFullRunRotatesAndLeaksNothing(t *testing.T) {
	r, err := startCred(t, credOptions{cfToken: credCFOld, idpDown: true})
	if err != nil {
		t.Fatal(err)
	}
	// The IdP is down: the daemon serves, static tokens work, and /readyz
	// (still 200: static tokens and the reconciler are fine) and the log say
	// why JWTs are refused.
	r.waitFor("the startup reconcile", func() bool { code, _ := r.readyz(); return code == 200 })
	if code, body := r.get("/scim/v2/Users", credSCIMToken); code != 200 {
		t.Fatalf("static token with the IdP down: %d %s", code, body)
	}
	code, warn := r.readyz()
	if code != 200 || len(warn) != 1 || !strings.Contains(warn[0], "cannot fetch the signing keys of scim.oidc.issuer "+r.idp.Issuer()) {
		t.Fatalf("/readyz %d warnings = %q", code, warn)
	}
	if !strings.Contains(r.logs.String(), "scim.oidc: cannot fetch the issuer's signing keys") {
		t.Fatalf("the log does not report the OIDC problem:\n%s", r.logs.String())
	}
	early := r.jwt(r.now())
	if code, body := r.get("/scim/v2/Users", early); code != 401 || !strings.Contains(body, "the token cannot be checked") {
		t.Fatalf("JWT with the IdP down: %d %s", code, body)
	}

	// The IdP comes back: once the refetch interval has passed (on the
	// daemon's clock), the next JWT fetches the keys.
	r.idp.SetDown(false)
	r.skew.Store(int64(31 * time.Second))
	tok := r.jwt(r.now())
	if code, body := r.get("/scim/v2/Users", tok); code != 200 {
		t.Fatalf("JWT after the IdP came back: %d %s", code, body)
	}
	if _, warn := r.readyz(); len(warn) != 0 {
		t.Fatalf("/readyz still warns: %q", warn)
	}
	if code, body := r.do("POST", "/scim/v2/Users", tok, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com","active":true}`); code != 201 {
		t.Fatalf("create with a JWT: %d %s", code, body)
	}
	bad := r.idp.Sign(t, map[string]any{"iss": r.idp.Issuer(), "aud": "someone-else", "exp": r.now().Add(time.Hour).Unix()})
	if code, body := r.get("/scim/v2/Users", bad); code != 401 || !strings.Contains(body, "token audience does not match scim.oidc.audience") {
		t.Fatalf("wrong audience: %d %s", code, body)
	}

	// Rotate the Cloudflare token: the fake stops accepting the old one, the
	// file gets the new one, and the next reconcile must use it.
	r.fake.SetToken(credCFNew)
	if err := os.WriteFile(r.file, []byte(credCFNew+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the rotated token to be verified", func() bool {
		return strings.Count(r.logs.String(), `"msg":"cloudflare api token verified"`) >= 2
	})
	code, body := r.do("POST", "/scim/v2/Groups", credSCIMToken, fmt.Sprintf(
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"cf-deployers","members":[{"value":%q}]}`, userID(t, r, tok)))
	if code != 201 {
		t.Fatalf("create group: %d %s", code, body)
	}
	r.waitFor("the member to be created in Cloudflare with the new token", func() bool {
		return len(r.fake.Members(credAccount)) == 1
	})

	r.get("/metrics", "")
	all := r.logs.String() + r.bodies.String()
	sig := func(jwt string) string { return jwt[strings.LastIndexByte(jwt, '.')+1:] }
	if leak := containsAny(all, credSCIMToken, credCFOld, credCFNew, early, tok, bad, sig(early), sig(tok), sig(bad)); leak != "" {
		t.Fatalf("a secret appears in the run's logs or HTTP answers: %.20s…", leak)
	}
	if strings.Contains(all, "eyJ") {
		t.Fatal("something JWT-shaped appears in the run's logs or HTTP answers")
	}
}

func userID(t *testing.T, r *credRun, tok string) string {
	t.Helper()
	_, body := r.get("/scim/v2/Users?filter="+strings.ReplaceAll(`userName eq "ada@example.com"`, " ", "%20"), tok)
	var list struct {
		Resources []struct{ ID string } `json:"Resources"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Resources) != 1 {
		t.Fatalf("find user: %s", body)
	}
	return list.Resources[0].ID
}
