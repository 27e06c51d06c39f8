package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"math/big"
	"net"
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
)

const (
	hardTokenEnv = "SCIMFLARE_HARDENING_TEST_TOKEN"
	hardToken    = "hardening-test-token"
)

func TestMain(m *testing.M) {
	// Set once here rather than with t.Setenv, so the daemon tests can run
	// in parallel.
	os.Setenv(hardTokenEnv, hardToken)
	os.Exit(m.Run())
}

// testDaemon is daemon.Run on loopback with a plan-only config (no
// Cloudflare token), a clock the test can move, and its logs kept.
type testDaemon struct {
	addr   string
	scheme string
	offset *atomic.Int64 // added to real time by the daemon's clock
	logs   *lockedBuffer
	client *http.Client
}

type lockedBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startDaemon(t *testing.T, extraServer, extraSCIM string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
%sadmin:
  socket: %s
state:
  path: %s
scim:
  token_env: %s
%scloudflare:
  api_token_env: ""
sync:
  schedule: "@every 1h"
accounts:
  - {name: prod, id: 0123456789abcdef0123456789abcdef, environment: production}
mappings:
  - {group: cf-deployers, account: prod, roles: [DNS]}
`, extraServer, filepath.Join(dir, "a.sock"), filepath.Join(dir, "state.db"), hardTokenEnv, extraSCIM)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{offset: &atomic.Int64{}, logs: &lockedBuffer{}, scheme: "http", client: &http.Client{Timeout: 10 * time.Second}}
	now := func() time.Time { return time.Now().Add(time.Duration(d.offset.Load())) }
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Logger: slog.New(slog.NewJSONHandler(d.logs, nil)), Now: now, Ready: ready})
	}()
	select {
	case d.addr = <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v\n%s", err, d.logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start within 10s")
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
		if strings.Contains(d.logs.String(), hardToken) {
			t.Error("the SCIM token appears in the daemon's logs")
		}
		if t.Failed() {
			t.Logf("daemon logs:\n%s", d.logs.String())
		}
	})
	return d
}

func (d *testDaemon) url(path string) string { return d.scheme + "://" + d.addr + path }

// do sends a request from the given local address ("" for the default).
func (d *testDaemon) do(t *testing.T, from, method, path, token, body string) (*http.Response, string) {
	t.Helper()
	c := d.client
	if from != "" {
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.url(path), rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func wantSCIMErrorBody(t *testing.T, body string, status int) {
	t.Helper()
	var e struct {
		Schemas []string `json:"schemas"`
		Status  string   `json:"status"`
		Detail  string   `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %q", err, body)
	}
	if len(e.Schemas) != 1 || e.Schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" || e.Status != strconv.Itoa(status) || e.Detail == "" {
		t.Errorf("not an RFC 7644 error body for %d: %s", status, body)
	}
}

func TestRepeatedFailedAuthGets429ButValidTokensAreServed(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "", "")
	// Successes interleaved with failures neither count nor reset.
	for i := range 9 {
		if resp, _ := d.do(t, "", "GET", "/scim/v2/Users", "wrong-"+strconv.Itoa(i), ""); resp.StatusCode != 401 {
			t.Fatalf("bad token %d: %d, want 401", i, resp.StatusCode)
		}
		if resp, _ := d.do(t, "", "GET", "/scim/v2/Users", hardToken, ""); resp.StatusCode != 200 {
			t.Fatalf("good token after %d failures: %d, want 200", i+1, resp.StatusCode)
		}
	}
	if resp, _ := d.do(t, "", "GET", "/scim/v2/Users", "", ""); resp.StatusCode != 401 {
		t.Fatalf("10th failure (no token): %d, want 401", resp.StatusCode)
	}
	// Blocked: a wrong token now gets 429 without reaching the handler.
	resp, body := d.do(t, "", "GET", "/scim/v2/Users", "wrong-after-block", "")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 10 failures, a bad token gets %d, want 429", resp.StatusCode)
	}
	wantSCIMErrorBody(t, body, 429)
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q, want 1..60 seconds", resp.Header.Get("Retry-After"))
	}
	// A valid token from the same (possibly shared) address is still
	// served: otherwise anyone behind the IdP's egress could stop
	// deprovisioning by sending bad tokens.
	resp, body = d.do(t, "", "POST", "/scim/v2/Users", hardToken, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a valid token from a blocked address: %d %s, want 201", resp.StatusCode, body)
	}
	if resp, _ := d.do(t, "", "GET", "/scim/v2/Users", "", ""); resp.StatusCode != 429 {
		t.Errorf("no token from a blocked address: %d, want 429", resp.StatusCode)
	}
	// Health and metrics stay reachable: only SCIM is gated.
	if resp, _ := d.do(t, "", "GET", "/healthz", "", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz from a blocked address: %d", resp.StatusCode)
	}
	// Another client address is unaffected.
	if resp, body := d.do(t, "127.0.0.2", "GET", "/scim/v2/Users", "wrong", ""); resp.StatusCode != 401 {
		t.Errorf("another address: %d %s, want 401", resp.StatusCode, body)
	}
	_, metrics := d.do(t, "", "GET", "/metrics", "", "")
	if !strings.Contains(metrics, "scimflare_scim_auth_blocked_total 2") {
		t.Errorf("/metrics must count the two refused requests:\n%s", grepLines(metrics, "auth_blocked"))
	}
	if !strings.Contains(d.logs.String(), "blocked after repeated failed authentications") {
		t.Error("the block is not logged")
	}
	// Once the window has passed, a bad token is answered 401 again.
	d.offset.Store(int64(61 * time.Second))
	if resp, _ := d.do(t, "", "GET", "/scim/v2/Users", "wrong-later", ""); resp.StatusCode != 401 {
		t.Errorf("after the window: %d, want 401", resp.StatusCode)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestServerTimeoutsAreAllSet(t *testing.T) {
	// The timeouts are fields of the http.Server literal in Run; a slow
	// client test per timeout would take minutes, so the literal is read.
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "daemon.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		sel, ok := lit.Type.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Server" {
			return true
		}
		fields := map[string]ast.Expr{}
		for _, e := range lit.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok {
				fields[kv.Key.(*ast.Ident).Name] = kv.Value
			}
		}
		if h, ok := fields["Handler"]; !ok || !strings.Contains(exprString(h), "routes") {
			return true
		}
		found = true
		for _, name := range []string{"ReadHeaderTimeout", "ReadTimeout", "WriteTimeout", "IdleTimeout", "MaxHeaderBytes"} {
			v, ok := fields[name]
			if !ok {
				t.Errorf("the public http.Server sets no %s", name)
				continue
			}
			if s := exprString(v); s == "0" {
				t.Errorf("the public http.Server sets %s to 0", name)
			}
		}
		return true
	})
	if !found {
		t.Fatal("no http.Server literal serving d.routes() in daemon.go")
	}
}

func exprString(e ast.Expr) string {
	var b strings.Builder
	ast.Inspect(e, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.Ident:
			b.WriteString(x.Name)
		case *ast.BasicLit:
			b.WriteString(x.Value)
		}
		return true
	})
	return b.String()
}

func TestSlowLorisClientIsCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 10s read-header timeout")
	}
	t.Parallel()
	d := startDaemon(t, "", "")
	conn, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: scimflare\r\n"); err != nil {
		t.Fatal(err)
	}
	// A header that never ends, a byte every 200ms: without a read-header
	// timeout this holds the connection for an hour.
	closed := make(chan time.Duration, 1)
	go func() {
		r := bufio.NewReader(conn)
		_, _ = io.ReadAll(r)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(20 * time.Second)
	for {
		select {
		case took := <-closed:
			if took < 9*time.Second {
				t.Errorf("cut off after %s: sooner than the 10s read-header timeout, so something else closed it", took)
			}
			t.Logf("slow-loris connection closed by the server after %s", took.Round(100*time.Millisecond))
			return
		case <-tick.C:
			_, _ = conn.Write([]byte("X"))
		case <-limit:
			t.Fatal("a client sending its header a byte at a time still held the connection after 20s")
		}
	}
}

func TestBodyLimitIs413(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "", "  max_body_bytes: 2048\n")
	big := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"big@example.com","nickName":"` + strings.Repeat("x", 4096) + `"}`
	resp, body := d.do(t, "", "POST", "/scim/v2/Users", hardToken, big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("4 KiB body with max_body_bytes 2048: %d, want 413", resp.StatusCode)
	}
	wantSCIMErrorBody(t, body, 413)
	// Chunked, so no Content-Length announces the size.
	req, _ := http.NewRequest("POST", d.url("/scim/v2/Users"), io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+hardToken)
	req.ContentLength = -1
	resp2, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 4 KiB body: %d, want 413", resp2.StatusCode)
	}
	resp, body = d.do(t, "", "GET", "/scim/v2/Users?filter="+`userName%20eq%20"big@example.com"`, hardToken, "")
	if !strings.Contains(body, `"totalResults":0`) {
		t.Errorf("an oversized create was stored: %d %s", resp.StatusCode, body)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "scimflare test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSWhenCertFileIsSet(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	d := startDaemon(t, fmt.Sprintf("  tls_cert_file: %s\n  tls_key_file: %s\n", certFile, keyFile), "")
	plain, err := http.Get("http://" + d.addr + "/scim/v2/Users")
	if err == nil {
		b, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode < 400 {
			t.Fatalf("plain HTTP to the TLS listener answered %d", plain.StatusCode)
		}
		t.Logf("plain HTTP refused: %d %s", plain.StatusCode, strings.TrimSpace(string(b)))
	}
	d.scheme = "https"
	d.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, body := d.do(t, "", "GET", "/scim/v2/Users", hardToken, "")
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS SCIM request: %d tls=%v %s", resp.StatusCode, resp.TLS != nil, body)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("HTTPS answers lack Strict-Transport-Security: %q", hsts)
	}
	// A client that does not trust the certificate fails the handshake.
	if _, err := http.Get(d.url("/healthz")); err == nil {
		t.Error("an untrusting client completed the TLS handshake with a self-signed certificate")
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "", "")
	cases := []struct {
		method, path, token string
		status              int
	}{
		{"GET", "/scim/v2/Users", hardToken, 200},
		{"GET", "/scim/v2/ServiceProviderConfig", hardToken, 200},
		{"GET", "/scim/v2/Users/no-such-id", hardToken, 404},
		{"GET", "/scim/v2/Users", "wrong", 401},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 0}, // 200 or 503 depending on the first run; headers either way
		{"GET", "/metrics", "", 200},
		{"GET", "/no/such/path", "", 404},
		{"POST", "/healthz", "", 405},
	}
	for i := range 9 { // with the 401 above, ten: then the 429 of a blocked address
		cases = append(cases, struct {
			method, path, token string
			status              int
		}{"GET", "/scim/v2/Groups", "wrong" + strconv.Itoa(i), 401})
	}
	cases = append(cases, struct {
		method, path, token string
		status              int
	}{"GET", "/scim/v2/Groups", "wrong-blocked", 429})
	for _, tc := range cases {
		resp, _ := d.do(t, "", tc.method, tc.path, tc.token, "")
		if tc.status != 0 && resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		for h, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Cache-Control":           "no-store",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "default-src 'none'",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := resp.Header.Get(h); !strings.Contains(got, want) {
				t.Errorf("%s %s (%d): %s = %q, want %q", tc.method, tc.path, resp.StatusCode, h, got, want)
			}
		}
	}
}
