// Package oidctest is an in-process OpenID Connect issuer for tests: it
// serves discovery (/.well-known/openid-configuration) and a JWKS over real
// HTTP on loopback and signs access tokens with go-jose, so that scimflare's
// JWT checks run against the same wire formats an IdP sends.
//
// It is test support: production code must never import it, and it must
// never listen beyond loopback.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Key is one signing key of the issuer.
type Key struct {
	KID     string
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
}

// PublicPEM is the key's public half as PEM, what an attacker can read from
// the JWKS and try as an HMAC secret.
func (k *Key) PublicPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Private.Public())
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Options configures a Provider.
type Options struct {
	// IssuerPath is appended to the server URL to form the issuer, e.g.
	// "/<tenant-id>/" for Entra ID's https://sts.windows.net/<tenant-id>/
	// shape. Empty means the bare URL.
	IssuerPath string
	// Alg of the first key: RS256 when empty.
	Alg jose.SignatureAlgorithm
}

// Provider is a running issuer. Methods are safe for concurrent use.
type Provider struct {
	hs     *httptest.Server
	issuer string

	mu        sync.Mutex
	published []*Key
	current   *Key
	down      bool
	seq       int
	discovery int
	jwks      int
}

// New starts a provider on loopback and stops it when the test ends.
func New(t testing.TB, opts Options) *Provider {
	t.Helper()
	p := &Provider{}
	if opts.Alg == "" {
		opts.Alg = jose.RS256
	}
	k := p.newKey(t, opts.Alg)
	p.published, p.current = []*Key{k}, k
	mux := http.NewServeMux()
	p.hs = httptest.NewServer(mux)
	t.Cleanup(p.hs.Close)
	p.issuer = p.hs.URL + opts.IssuerPath
	base := strings.TrimSuffix(opts.IssuerPath, "/")
	mux.HandleFunc("GET "+base+"/.well-known/openid-configuration", p.serveDiscovery)
	mux.HandleFunc("GET "+base+"/keys", p.serveJWKS)
	return p
}

// Issuer is the iss value and scim.oidc.issuer.
func (p *Provider) Issuer() string { return p.issuer }

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.discovery++
	down := p.down
	p.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{
		"issuer":                                p.issuer,
		"jwks_uri":                              strings.TrimSuffix(p.issuer, "/") + "/keys",
		"token_endpoint":                        strings.TrimSuffix(p.issuer, "/") + "/token",
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
	})
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.jwks++
	down := p.down
	var set jose.JSONWebKeySet
	for _, k := range p.published {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Private.Public(), KeyID: k.KID, Algorithm: string(k.Alg), Use: "sig"})
	}
	p.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (p *Provider) newKey(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("oidctest: unsupported algorithm %s", alg)
	}
	if err != nil {
		t.Fatalf("oidctest: generate key: %v", err)
	}
	p.mu.Lock()
	p.seq++
	kid := fmt.Sprintf("key-%d", p.seq)
	p.mu.Unlock()
	return &Key{KID: kid, Alg: alg, Private: priv}
}

// Current is the key new tokens are signed with.
func (p *Provider) Current() *Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// Rotate publishes a fresh key of alg, signs with it from now on, and
// withdraws every older key, as an IdP finishing a rotation does.
func (p *Provider) Rotate(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	k := p.newKey(t, alg)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.published, p.current = []*Key{k}, k
	return k
}

// SetDown makes discovery and JWKS answer 503 (true) or serve again.
func (p *Provider) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Fetches is how many discovery and JWKS requests arrived.
func (p *Provider) Fetches() (discovery, jwks int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.discovery, p.jwks
}

// Sign returns a compact JWT with claims, signed by the current key.
func (p *Provider) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return SignWith(t, p.Current(), claims)
}

// SignWith signs claims with k, its kid in the header.
func SignWith(t testing.TB, k *Key, claims map[string]any) string {
	t.Helper()
	return SignTyped(t, k, "JWT", claims)
}

// SignTyped is SignWith with the JOSE typ header set to typ ("" for none).
func SignTyped(t testing.TB, k *Key, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.KID}}, opts)
	if err != nil {
		t.Fatalf("oidctest: signer: %v", err)
	}
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatalf("oidctest: sign: %v", err)
	}
	return raw
}

// SignHMAC signs claims with HS256 and secret, naming kid in the header:
// the key-confusion attack when secret is a public key.
func SignHMAC(t testing.TB, secret []byte, kid string, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatalf("oidctest: hmac signer: %v", err)
	}
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatalf("oidctest: hmac sign: %v", err)
	}
	return raw
}

// Unsigned returns an "alg": "none" token carrying claims.
func Unsigned(t testing.TB, claims map[string]any) string {
	t.Helper()
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("oidctest: claims: %v", err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(body) + "."
}
