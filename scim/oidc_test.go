package scim_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/scim/oidctest"
)

// entraSCIMAudience is the application id of Entra ID's non-gallery SCIM
// app template: the audience of the tokens Entra provisioning sends.
const entraSCIMAudience = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"

const (
	entraTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	entraAppID  = "3f0e2c4a-1b7d-4e8f-9a6c-5d2b1e0f7a93"
)

// manualClock is a clock the test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type oidcEnv struct {
	*env
	idp   *oidctest.Provider
	clock *manualClock
	v     *scim.OIDCVerifier
	logs  *lockedBuffer
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newOIDCEnv serves SCIM with the static testToken plus JWTs from idp,
// checked as cfg says (Issuer is filled in). The keys are fetched before it
// returns unless the IdP is down.
func newOIDCEnv(t *testing.T, idp *oidctest.Provider, cfg scim.OIDCConfig) *oidcEnv {
	t.Helper()
	clk := &manualClock{t: time.Now().Truncate(time.Second)}
	logs := &lockedBuffer{}
	cfg.Issuer = idp.Issuer()
	cfg.Logger = slogTo(logs)
	v, err := scim.NewOIDCVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = v.Refresh(context.Background(), clk.Now())
	auth := scim.NewAuthenticator(testToken, nil, clk.Now).UseOIDC(v)
	e := newEnv(t, func(o *scim.Options, _ *storeWrap) { o.Auth = auth })
	return &oidcEnv{env: e, idp: idp, clock: clk, v: v, logs: logs}
}

// with sends GET /Users with tok as the bearer token.
func (e *oidcEnv) with(tok string) resp {
	e.t.Helper()
	return e.req("GET", "/Users", "", "Authorization", "Bearer "+tok)
}

// wantRefused checks a 401 SCIM error whose detail contains want and which
// does not echo the token.
func wantRefused(t *testing.T, r resp, tok, want string) {
	t.Helper()
	wantSCIMError(t, r, 401, "")
	var body struct{ Detail string }
	_ = json.Unmarshal(r.raw, &body)
	if !strings.Contains(body.Detail, want) {
		t.Errorf("detail %q does not contain %q", body.Detail, want)
	}
	for _, part := range strings.Split(tok, ".") {
		if len(part) > 8 && strings.Contains(string(r.raw), part) {
			t.Errorf("the error body echoes part of the token: %s", r.raw)
		}
	}
}

func entraClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"aud":      entraSCIMAudience,
		"iss":      iss,
		"iat":      now.Add(-5 * time.Minute).Unix(),
		"nbf":      now.Add(-5 * time.Minute).Unix(),
		"exp":      now.Add(55 * time.Minute).Unix(),
		"aio":      "E2ZgYJg8cP7s5f9x/AAA=",
		"appid":    entraAppID,
		"appidacr": "2",
		"idp":      iss,
		"oid":      "b9b3c6b4-0b0a-4f5e-8a55-0a2b8f1c6d11",
		"rh":       "0.AAAAv4j5cvGGr0GRqy180BHbR2Zgh6qAt0tZ.",
		"sub":      "b9b3c6b4-0b0a-4f5e-8a55-0a2b8f1c6d11",
		"tid":      entraTenant,
		"uti":      "x3F4kq2m9UeB0r7Jd1sAAA",
		"ver":      "1.0",
	}
}

func entraEnv(t *testing.T) *oidcEnv {
	t.Helper()
	idp := oidctest.New(t, oidctest.Options{IssuerPath: "/" + entraTenant + "/"})
	return newOIDCEnv(t, idp, scim.OIDCConfig{
		Audience:       entraSCIMAudience,
		AllowedClients: []string{entraAppID},
		RequiredClaims: map[string]string{"tid": entraTenant},
	})
}

func TestOIDCEntraProvisioningTokenIsAccepted(t *testing.T) {
	e := entraEnv(t)
	if !strings.HasSuffix(e.idp.Issuer(), "/"+entraTenant+"/") {
		t.Fatalf("issuer %q is not Entra-shaped", e.idp.Issuer())
	}
	tok := e.idp.Sign(t, entraClaims(e.idp.Issuer(), e.clock.Now()))
	if r := e.with(tok); r.status != 200 {
		t.Fatalf("Entra-shaped token: %d %s", r.status, r.raw)
	}
	// Writes work too, and the static token keeps working beside JWTs.
	e.token = tok
	e.createUser("ada@example.com")
	if r := e.with(testToken); r.status != 200 {
		t.Fatalf("static token beside OIDC: %d %s", r.status, r.raw)
	}
	if r := e.with("sfscim_not-a-token"); r.status != 401 {
		t.Fatalf("unknown static token: %d", r.status)
	}
	if e.v.Problem() != "" {
		t.Fatalf("problem reported with keys loaded: %s", e.v.Problem())
	}
	// RFC 9068 access tokens, and tokens without a typ header, are accepted.
	for _, typ := range []string{"at+jwt", "application/at+jwt", ""} {
		tok := oidctest.SignTyped(t, e.idp.Current(), typ, entraClaims(e.idp.Issuer(), e.clock.Now()))
		if r := e.with(tok); r.status != 200 {
			t.Errorf("access token with typ %q: %d %s", typ, r.status, r.raw)
		}
	}
}

func TestOIDCClientCredentialsTokensAreAccepted(t *testing.T) {
	cases := []struct {
		name   string
		alg    jose.SignatureAlgorithm
		path   string
		cfg    scim.OIDCConfig
		claims func(iss string, now time.Time) map[string]any
	}{
		{
			name: "Okta custom authorization server, cid and scp",
			alg:  jose.RS256, path: "/oauth2/aus1a2b3c4d5e6f7g8h9",
			cfg: scim.OIDCConfig{Audience: "api://scimflare", AllowedClients: []string{"0oa1b2c3d4e5f6g7h8i9"}},
			claims: func(iss string, now time.Time) map[string]any {
				return map[string]any{
					"ver": 1, "jti": "AT.q1w2e3r4t5y6", "iss": iss, "aud": "api://scimflare",
					"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
					"cid": "0oa1b2c3d4e5f6g7h8i9", "scp": []string{"scim.provision"}, "sub": "0oa1b2c3d4e5f6g7h8i9",
				}
			},
		},
		{
			name: "Keycloak service account, azp and audience array, ES256",
			alg:  jose.ES256, path: "/realms/corp",
			cfg: scim.OIDCConfig{
				Audience: "scimflare", AllowedClients: []string{"scim-pusher"},
				RequiredClaims: map[string]string{"scope": "scim", "roles": "provisioner"},
			},
			claims: func(iss string, now time.Time) map[string]any {
				return map[string]any{
					"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": "8f6e2d1c",
					"iss": iss, "aud": []string{"scimflare", "account"}, "sub": "3c1e1c58-service-account",
					"typ": "Bearer", "azp": "scim-pusher", "scope": "scim", "clientId": "scim-pusher",
					"roles": []string{"offline_access", "provisioner"},
				}
			},
		},
		{
			name: "RFC 9068 client_id with EdDSA",
			alg:  jose.EdDSA, path: "",
			cfg: scim.OIDCConfig{Audience: "https://scim.example.com", AllowedClients: []string{"pusher"}},
			claims: func(iss string, now time.Time) map[string]any {
				return map[string]any{
					"iss": iss, "aud": "https://scim.example.com", "exp": now.Add(time.Hour).Unix(),
					"client_id": "pusher", "sub": "pusher", "scope": "scim",
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			idp := oidctest.New(t, oidctest.Options{IssuerPath: c.path, Alg: c.alg})
			e := newOIDCEnv(t, idp, c.cfg)
			tok := idp.Sign(t, c.claims(idp.Issuer(), e.clock.Now()))
			if r := e.with(tok); r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
	}
}

func TestOIDCRefusals(t *testing.T) {
	e := entraEnv(t)
	iss := e.idp.Issuer()
	now := e.clock.Now()
	edit := func(f func(c map[string]any)) map[string]any {
		c := entraClaims(iss, now)
		f(c)
		return c
	}
	stranger := oidctest.New(t, oidctest.Options{IssuerPath: "/" + entraTenant + "/"})
	forged := *stranger.Current()
	forged.KID = e.idp.Current().KID // right kid, wrong key

	cases := []struct {
		name string
		tok  string
		want string
	}{
		{"expired", e.idp.Sign(t, edit(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), "token has expired"},
		{"not yet valid", e.idp.Sign(t, edit(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), "token is not valid yet"},
		{"issued in the future", e.idp.Sign(t, edit(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() })), "issued in the future"},
		{"no exp", e.idp.Sign(t, edit(func(c map[string]any) { delete(c, "exp") })), "token has no expiry"},
		{"wrong issuer", e.idp.Sign(t, edit(func(c map[string]any) { c["iss"] = "https://sts.windows.net/00000000-0000-0000-0000-000000000000/" })), "token issuer does not match scim.oidc.issuer"},
		{"wrong audience", e.idp.Sign(t, edit(func(c map[string]any) { c["aud"] = "00000002-0000-0000-c000-000000000000" })), "token audience does not match scim.oidc.audience"},
		{"audience array without ours", e.idp.Sign(t, edit(func(c map[string]any) { c["aud"] = []string{"a", "b"} })), "token audience does not match scim.oidc.audience"},
		{"client not allowed", e.idp.Sign(t, edit(func(c map[string]any) { c["appid"] = "11111111-2222-3333-4444-555555555555" })), "is not in scim.oidc.allowed_clients"},
		{"no client claim", e.idp.Sign(t, edit(func(c map[string]any) { delete(c, "appid") })), "token names no client"},
		{"missing required claim", e.idp.Sign(t, edit(func(c map[string]any) { delete(c, "tid") })), `token lacks claim "tid" required by scim.oidc.required_claims`},
		{"required claim differs", e.idp.Sign(t, edit(func(c map[string]any) { c["tid"] = "another-tenant" })), `token claim "tid" does not match scim.oidc.required_claims`},
		{"alg none", oidctest.Unsigned(t, entraClaims(iss, now)), `token signing algorithm "none" is refused`},
		{"HMAC with the public key as secret", oidctest.SignHMAC(t, e.idp.Current().PublicPEM(), e.idp.Current().KID, entraClaims(iss, now)), `token signing algorithm "HS256" is refused`},
		{"signed by another key under a known kid", oidctest.SignWith(t, &forged, entraClaims(iss, now)), "token signature does not verify"},
		{"garbage that looks like a JWT", "eyJhbGciOi.eyJpc3MiOi.c2ln", "not a valid JWT"},
		{"ID token by JOSE typ", oidctest.SignTyped(t, e.idp.Current(), "id+jwt", entraClaims(iss, now)), `token type (JOSE typ header) "id+jwt" is not an access token type`},
		{"ID token with nonce", e.idp.Sign(t, edit(func(c map[string]any) { c["nonce"] = "n-0S6_WzA2Mj" })), "carries the nonce claim of an OIDC ID token"},
		{"ID token with at_hash", e.idp.Sign(t, edit(func(c map[string]any) { c["at_hash"] = "77QmUPtjPfzWtF2AnpK9RQ" })), "carries the at_hash claim of an OIDC ID token"},
		{"Keycloak ID token", e.idp.Sign(t, edit(func(c map[string]any) { c["typ"] = "ID" })), `token is an ID token (typ claim "ID")`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantRefused(t, e.with(c.tok), c.tok, c.want)
		})
	}
	if strings.Contains(e.logs.String(), "eyJ") {
		t.Fatalf("a JWT reached the log:\n%s", e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "token audience does not match") {
		t.Fatalf("refusals are not logged with their reason:\n%s", e.logs.String())
	}
}

func TestOIDCClockSkewIsSixtySeconds(t *testing.T) {
	e := entraEnv(t)
	now := e.clock.Now()
	claims := entraClaims(e.idp.Issuer(), now)
	claims["exp"] = now.Add(-30 * time.Second).Unix()
	claims["nbf"] = now.Add(30 * time.Second).Unix()
	tok := e.idp.Sign(t, claims)
	if r := e.with(tok); r.status != 200 {
		t.Fatalf("30s of skew refused: %d %s", r.status, r.raw)
	}
	e.clock.Add(45 * time.Second) // exp is now 75s past
	wantRefused(t, e.with(tok), tok, "token has expired")
}

func TestOIDCKeyRotationWithoutRestart(t *testing.T) {
	e := entraEnv(t)
	old := e.idp.Sign(t, entraClaims(e.idp.Issuer(), e.clock.Now()))
	if r := e.with(old); r.status != 200 {
		t.Fatalf("before rotation: %d %s", r.status, r.raw)
	}
	_, jwksBefore := e.idp.Fetches()

	e.idp.Rotate(t, jose.PS256)
	e.clock.Add(31 * time.Second)
	fresh := e.idp.Sign(t, entraClaims(e.idp.Issuer(), e.clock.Now()))
	if r := e.with(fresh); r.status != 200 {
		t.Fatalf("token signed with the rotated key: %d %s", r.status, r.raw)
	}
	if r := e.with(fresh); r.status != 200 {
		t.Fatalf("second use of the rotated key: %d %s", r.status, r.raw)
	}
	if _, jwks := e.idp.Fetches(); jwks != jwksBefore+1 {
		t.Fatalf("rotation cost %d JWKS fetches, want exactly 1", jwks-jwksBefore)
	}
	// The IdP withdrew the old key: tokens signed with it stop working.
	wantRefused(t, e.with(old), old, "token signing key (kid) is not in the key set")
}

func TestOIDCUnknownKidFloodIsBounded(t *testing.T) {
	e := entraEnv(t)
	e.clock.Add(time.Minute)
	stranger := oidctest.New(t, oidctest.Options{})
	_, before := e.idp.Fetches()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := *stranger.Current()
			k.KID = fmt.Sprintf("made-up-%d-%s", i, rand.Text())
			tok := oidctest.SignWith(t, &k, entraClaims(e.idp.Issuer(), e.clock.Now()))
			if r := e.with(tok); r.status != 401 {
				t.Errorf("token with an unknown kid: %d", r.status)
			}
		}()
	}
	wg.Wait()
	if _, jwks := e.idp.Fetches(); jwks-before != 1 {
		t.Fatalf("40 unknown kids within 30s made %d JWKS fetches, want 1", jwks-before)
	}
	e.clock.Add(31 * time.Second)
	k := *stranger.Current()
	k.KID = "made-up-later"
	tok := oidctest.SignWith(t, &k, entraClaims(e.idp.Issuer(), e.clock.Now()))
	wantRefused(t, e.with(tok), tok, "not in the key set")
	if _, jwks := e.idp.Fetches(); jwks-before != 2 {
		t.Fatalf("after the interval: %d JWKS fetches, want 2", jwks-before)
	}
	// A valid token still works amid the flood.
	if r := e.with(e.idp.Sign(t, entraClaims(e.idp.Issuer(), e.clock.Now()))); r.status != 200 {
		t.Fatalf("valid token after the flood: %d %s", r.status, r.raw)
	}
}

func TestOIDCIdPDownAtStart(t *testing.T) {
	idp := oidctest.New(t, oidctest.Options{IssuerPath: "/" + entraTenant + "/"})
	idp.SetDown(true)
	e := newOIDCEnv(t, idp, scim.OIDCConfig{Audience: entraSCIMAudience, RequiredClaims: map[string]string{"tid": entraTenant}})
	p := e.v.Problem()
	if !strings.Contains(p, "cannot fetch the signing keys of scim.oidc.issuer "+idp.Issuer()) || !strings.Contains(p, "503") {
		t.Fatalf("problem = %q", p)
	}
	if r := e.with(testToken); r.status != 200 {
		t.Fatalf("static token with the IdP down: %d %s", r.status, r.raw)
	}
	tok := idp.Sign(t, entraClaims(idp.Issuer(), e.clock.Now()))
	wantRefused(t, e.with(tok), tok, "the token cannot be checked: cannot fetch the signing keys")

	// The IdP comes back: once the refetch interval has passed, the next
	// JWT fetches the keys itself.
	idp.SetDown(false)
	e.clock.Add(31 * time.Second)
	tok = idp.Sign(t, entraClaims(idp.Issuer(), e.clock.Now()))
	if r := e.with(tok); r.status != 200 {
		t.Fatalf("after the IdP recovered: %d %s", r.status, r.raw)
	}
	if e.v.Problem() != "" {
		t.Fatalf("problem still reported: %s", e.v.Problem())
	}
	// Down again: the keys already known keep working.
	idp.SetDown(true)
	if err := e.v.Refresh(context.Background(), e.clock.Now()); err == nil {
		t.Fatal("refresh against a down IdP succeeded")
	}
	if r := e.with(tok); r.status != 200 || e.v.Problem() != "" {
		t.Fatalf("known keys dropped when a refresh failed: %d, problem %q", r.status, e.v.Problem())
	}
}

func TestOIDCRunRetriesUntilTheIdPAnswers(t *testing.T) {
	idp := oidctest.New(t, oidctest.Options{})
	idp.SetDown(true)
	v, err := scim.NewOIDCVerifier(scim.OIDCConfig{Issuer: idp.Issuer(), Audience: "a", MinRefetch: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); v.Run(ctx, time.Now) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for d, _ := idp.Fetches(); d < 2; d, _ = idp.Fetches() {
		if time.Now().After(deadline) {
			t.Fatal("Run did not retry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	idp.SetDown(false)
	for v.Problem() != "" {
		if time.Now().After(deadline) {
			t.Fatalf("Run never loaded the keys: %s", v.Problem())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOIDCDiscoveryIssuerMustMatch(t *testing.T) {
	idp := oidctest.New(t, oidctest.Options{IssuerPath: "/" + entraTenant + "/"})
	// Configured without the trailing slash Entra publishes.
	v, err := scim.NewOIDCVerifier(scim.OIDCConfig{Issuer: strings.TrimSuffix(idp.Issuer(), "/"), Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	err = v.Refresh(context.Background(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "set scim.oidc.issuer to exactly the issuer the IdP publishes") {
		t.Fatalf("err = %v", err)
	}
	if _, err := scim.NewOIDCVerifier(scim.OIDCConfig{Issuer: idp.Issuer()}); err == nil {
		t.Fatal("an issuer without an audience was accepted")
	}
}

// TestOIDCPlainHTTPOnlyToExactLoopback: a jwks_uri whose host merely starts
// with "localhost" is a foreign host, and an https issuer must not be
// redirected to plain http, where anyone on the path could serve keys.
func TestOIDCPlainHTTPOnlyToExactLoopback(t *testing.T) {
	var issuer string
	lookalike := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": "http://localhost.attacker.example/keys"})
	}))
	defer lookalike.Close()
	issuer = lookalike.URL
	v, err := scim.NewOIDCVerifier(scim.OIDCConfig{Issuer: issuer, Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "not an https URL") {
		t.Fatalf("jwks_uri on localhost.attacker.example: %v, want refused as not https", err)
	}

	plain := oidctest.New(t, oidctest.Options{})
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.Issuer()+r.URL.Path, http.StatusFound)
	}))
	defer secure.Close()
	v, err = scim.NewOIDCVerifier(scim.OIDCConfig{Issuer: secure.URL, Audience: "a", HTTPClient: secure.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "refused redirect from https to http") {
		t.Fatalf("https discovery redirected to http: %v, want the redirect refused", err)
	}
	if d, _ := plain.Fetches(); d != 0 {
		t.Fatalf("the plain-http target was fetched %d times after an https→http redirect", d)
	}
}
