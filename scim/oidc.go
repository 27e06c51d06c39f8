package scim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Defaults for OIDCConfig fields left zero.
const (
	// DefaultOIDCLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultOIDCLeeway = 60 * time.Second
	// DefaultOIDCMinRefetch bounds how often a token with an unknown kid may
	// make scimflare fetch the issuer's keys again: a flood of made-up kids
	// costs the IdP at most one request per interval.
	DefaultOIDCMinRefetch = 30 * time.Second
	// DefaultOIDCRefresh is how often Run refreshes keys that were fetched
	// fine, so that keys the IdP withdrew stop being accepted.
	DefaultOIDCRefresh = time.Hour
	// DefaultOIDCTimeout bounds one discovery or JWKS request.
	DefaultOIDCTimeout = 10 * time.Second
)

// maxOIDCDocument caps discovery and JWKS answers: both are a few kB.
const maxOIDCDocument = 1 << 20

// acceptedAlgorithms are the asymmetric JWS algorithms. "none" and the HMAC
// family are absent on purpose: an HMAC "signature" made with the issuer's
// public key as the secret would otherwise verify.
var acceptedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// clientClaims name the client an access token was issued to, in the
// spellings of the IdPs scimflare meets: azp (OIDC, Keycloak), appid (Entra
// ID v1 tokens), cid (Okta), client_id (RFC 9068).
var clientClaims = []string{"azp", "appid", "cid", "client_id"}

// OIDCConfig is scim.oidc plus the knobs tests and the daemon set.
type OIDCConfig struct {
	Issuer         string
	Audience       string
	AllowedClients []string
	RequiredClaims map[string]string

	HTTPClient *http.Client // nil: a client with Timeout
	Timeout    time.Duration
	Leeway     time.Duration
	MinRefetch time.Duration
	Refresh    time.Duration
	Logger     *slog.Logger
}

// OIDCVerifier checks JWT access tokens issued by one OIDC issuer against
// its published keys, which it discovers and caches.
type OIDCVerifier struct {
	cfg    OIDCConfig
	client *http.Client
	log    *slog.Logger

	// fetchMu serialises key fetches, so that a burst of unknown kids waits
	// for one fetch instead of each making its own; lastTry is read and
	// written only under it.
	fetchMu sync.Mutex
	lastTry time.Time

	mu        sync.RWMutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time
	problem   string
}

// NewOIDCVerifier checks the configuration; it makes no request.
func NewOIDCVerifier(cfg OIDCConfig) (*OIDCVerifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("scim.oidc.issuer is empty")
	}
	if cfg.Audience == "" {
		return nil, errors.New("scim.oidc.audience is required when scim.oidc.issuer is set")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultOIDCTimeout
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultOIDCLeeway
	}
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = DefaultOIDCMinRefetch
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultOIDCRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client := &http.Client{Timeout: cfg.Timeout}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
	}
	if client.CheckRedirect == nil {
		client.CheckRedirect = refuseInsecureRedirect
	}
	return &OIDCVerifier{
		cfg:     cfg,
		client:  client,
		log:     cfg.Logger,
		problem: "the signing keys of scim.oidc.issuer " + cfg.Issuer + " have not been fetched yet",
	}, nil
}

// Problem is one sentence on why JWTs cannot be checked now (the issuer's
// keys could not be fetched), or "" when keys are loaded.
func (v *OIDCVerifier) Problem() string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.problem
}

// Run fetches the keys now, then refreshes them every cfg.Refresh, retrying
// a failed fetch with backoff (from MinRefetch up to 5 minutes) until ctx
// ends. now is the daemon's clock.
func (v *OIDCVerifier) Run(ctx context.Context, now func() time.Time) {
	retry := v.cfg.MinRefetch
	for {
		wait := v.cfg.Refresh
		if err := v.Refresh(ctx, now()); err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Warn("scim.oidc: cannot fetch the issuer's signing keys; JWT access tokens are refused until it works, static and stored tokens still work",
				"issuer", v.cfg.Issuer, "err", err.Error(), "retry_in", retry.String())
			wait = retry
			retry = min(retry*2, 5*time.Minute)
		} else {
			retry = v.cfg.MinRefetch
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Refresh fetches discovery and the key set now.
func (v *OIDCVerifier) Refresh(ctx context.Context, now time.Time) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	return v.fetchLocked(ctx, now)
}

// refetchForUnknownKid fetches the keys again unless a fetch was tried
// within MinRefetch. It reports whether it fetched.
func (v *OIDCVerifier) refetchForUnknownKid(ctx context.Context, now time.Time) bool {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if !v.lastTry.IsZero() && now.Sub(v.lastTry) < v.cfg.MinRefetch {
		return false
	}
	if err := v.fetchLocked(ctx, now); err != nil {
		v.log.Warn("scim.oidc: refetching the issuer's signing keys failed", "issuer", v.cfg.Issuer, "err", err.Error())
	}
	return true
}

func (v *OIDCVerifier) fetchLocked(ctx context.Context, now time.Time) error {
	v.lastTry = now
	keys, err := v.fetchKeys(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		// Keys that were fetched before stay in use: an IdP outage must not
		// lock out tokens signed with keys scimflare already knows.
		if len(v.keys) == 0 {
			v.problem = fmt.Sprintf("cannot fetch the signing keys of scim.oidc.issuer %s: %v", v.cfg.Issuer, err)
		}
		return err
	}
	if len(v.keys) > 0 && !sameKids(v.keys, keys) {
		v.log.Info("scim.oidc: the issuer's signing keys changed", "issuer", v.cfg.Issuer, "kids", kids(keys))
	}
	v.keys, v.fetchedAt, v.problem = keys, now, ""
	return nil
}

func (v *OIDCVerifier) fetchKeys(ctx context.Context) ([]jose.JSONWebKey, error) {
	discoveryURL := strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(ctx, discoveryURL, &disc); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if disc.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("discovery at %s names issuer %q, not %q: set scim.oidc.issuer to exactly the issuer the IdP publishes", discoveryURL, disc.Issuer, v.cfg.Issuer)
	}
	if !SecureURL(disc.JWKSURI) {
		return nil, fmt.Errorf("discovery at %s gives jwks_uri %q, which is not an https URL", discoveryURL, disc.JWKSURI)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := v.getJSON(ctx, disc.JWKSURI, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		// A key scimflare cannot use (an unknown kty, an encryption key) is
		// skipped rather than failing the whole set.
		if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key set at %s holds no public signing key", disc.JWKSURI)
	}
	return keys, nil
}

func (v *OIDCVerifier) getJSON(ctx context.Context, url string, dst any) error {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOIDCDocument+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxOIDCDocument {
		return fmt.Errorf("GET %s: answer larger than %d bytes", url, maxOIDCDocument)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: not JSON: %w", url, err)
	}
	return nil
}

// oidcRejection is why a JWT was refused. It matches errBadToken, so the
// SCIM layer answers 401 with the message as detail; the message never
// contains the token.
type oidcRejection struct{ msg string }

func (e *oidcRejection) Error() string { return e.msg }
func (e *oidcRejection) Unwrap() error { return errBadToken }

// oidcUnavailable is a refusal because the issuer's keys could not be
// fetched: it is still a 401 naming the cause, but the server's fault.
type oidcUnavailable struct{ oidcRejection }

func (e *oidcUnavailable) Unwrap() []error { return []error{errBadToken, ErrAuthUnavailable} }

func reject(format string, args ...any) error {
	return &oidcRejection{msg: fmt.Sprintf(format, args...)}
}

// looksLikeJWT tells a compact JWS apart from scimflare's own tokens.
func looksLikeJWT(tok string) bool {
	return strings.HasPrefix(tok, "eyJ") && strings.Count(tok, ".") == 2
}

// Verify checks a JWT access token at time now: signature with one of the
// issuer's keys, iss, aud, exp/nbf/iat with leeway, the client allow-list
// and the required claims. A refusal is an error matching errBadToken whose
// message names the failed check.
func (v *OIDCVerifier) Verify(ctx context.Context, raw string, now time.Time) error {
	err := v.verify(ctx, raw, now)
	if err != nil {
		v.log.Info("scim: JWT access token refused", "reason", err.Error())
	}
	return err
}

func (v *OIDCVerifier) verify(ctx context.Context, raw string, now time.Time) error {
	head, err := jwsHeader(raw)
	if err != nil {
		return reject("the bearer token is not a valid JWT")
	}
	if !slices.Contains(acceptedAlgorithms, jose.SignatureAlgorithm(head.Alg)) {
		return reject("token signing algorithm %s is refused: only asymmetric algorithms (RS*, PS*, ES*, EdDSA) are accepted", printableAlg(head.Alg))
	}
	// An ID token proves a login to a client, not a grant to call an API:
	// a user's ID token for the configured client must not provision.
	if head.Typ != "" && !slices.Contains(accessTokenTypes, strings.ToLower(head.Typ)) {
		return reject("token type (JOSE typ header) %s is not an access token type (at+jwt or JWT)", printableTyp(head.Typ))
	}
	tok, err := jwt.ParseSigned(raw, acceptedAlgorithms)
	if err != nil {
		return reject("the bearer token is not a valid JWT")
	}
	// The issuer is compared before any key lookup, so that tokens from a
	// foreign issuer (whose kids are unknown here) cannot trigger refetches.
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return reject("the bearer token's claims are not valid JSON")
	}
	if unverified.Issuer != v.cfg.Issuer {
		return reject("token issuer does not match scim.oidc.issuer")
	}

	candidates, haveAny := v.keysFor(head.Kid, head.Alg)
	if len(candidates) == 0 && v.refetchForUnknownKid(ctx, now) {
		candidates, haveAny = v.keysFor(head.Kid, head.Alg)
	}
	if len(candidates) == 0 {
		if !haveAny {
			if p := v.Problem(); p != "" {
				return &oidcUnavailable{oidcRejection{msg: "the token cannot be checked: " + p}}
			}
		}
		return reject("token signing key (kid) is not in the key set of scim.oidc.issuer")
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range candidates {
		if tok.Claims(k.Key, &std, &all) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return reject("token signature does not verify with the signing keys of scim.oidc.issuer")
	}
	return v.checkClaims(std, all, now)
}

// checkClaims is the pure part of Verify: claims of a token whose signature
// has been verified, against the configuration, at now.
func (v *OIDCVerifier) checkClaims(std jwt.Claims, all map[string]any, now time.Time) error {
	if std.Issuer != v.cfg.Issuer {
		return reject("token issuer does not match scim.oidc.issuer")
	}
	if !std.Audience.Contains(v.cfg.Audience) {
		return reject("token audience does not match scim.oidc.audience (the token is for %s)", quoteList(std.Audience))
	}
	for _, c := range []string{"nonce", "at_hash"} {
		if _, ok := all[c]; ok {
			return reject("token carries the %s claim of an OIDC ID token; scimflare accepts only access tokens", c)
		}
	}
	if typ, ok := all["typ"].(string); ok && strings.EqualFold(typ, "ID") {
		return reject(`token is an ID token (typ claim "ID"); scimflare accepts only access tokens`)
	}
	if std.Expiry == nil {
		return reject("token has no expiry (exp claim); scimflare accepts only expiring access tokens")
	}
	switch err := std.ValidateWithLeeway(jwt.Expected{Time: now}, v.cfg.Leeway); {
	case errors.Is(err, jwt.ErrExpired):
		return reject("token has expired (exp %s)", std.Expiry.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrNotValidYet):
		return reject("token is not valid yet (nbf %s)", std.NotBefore.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return reject("token was issued in the future (iat %s): check the clocks", std.IssuedAt.Time().UTC().Format(time.RFC3339))
	case err != nil:
		return reject("token time claims are not valid")
	}
	if len(v.cfg.AllowedClients) > 0 {
		client := ""
		for _, c := range clientClaims {
			if s, ok := all[c].(string); ok && s != "" {
				client = s
				break
			}
		}
		if client == "" {
			return reject("token names no client (azp, appid, cid or client_id) and scim.oidc.allowed_clients is set")
		}
		if !slices.Contains(v.cfg.AllowedClients, client) {
			return reject("token client %q is not in scim.oidc.allowed_clients", clip(client))
		}
	}
	names := make([]string, 0, len(v.cfg.RequiredClaims))
	for name := range v.cfg.RequiredClaims {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		got, ok := all[name]
		if !ok {
			return reject("token lacks claim %q required by scim.oidc.required_claims", name)
		}
		if !claimMatches(got, v.cfg.RequiredClaims[name]) {
			return reject("token claim %q does not match scim.oidc.required_claims", name)
		}
	}
	return nil
}

// keysFor returns the cached keys that may have signed a token with this
// kid and alg, and whether any key is cached at all. Without a kid every key
// is a candidate: the set is small.
func (v *OIDCVerifier) keysFor(kid, alg string) ([]jose.JSONWebKey, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []jose.JSONWebKey
	for _, k := range v.keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out, len(v.keys) > 0
}

type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// accessTokenTypes are the JOSE typ values an access token may carry: RFC
// 9068's at+jwt (with or without the media-type prefix) and the plain JWT
// that Entra ID, Okta and Keycloak put on theirs.
var accessTokenTypes = []string{"at+jwt", "application/at+jwt", "jwt"}

// jwsHeader decodes the protected header of a compact JWS without trusting
// it, to name a refused algorithm precisely.
func jwsHeader(raw string) (joseHeader, error) {
	var h joseHeader
	seg, _, ok := strings.Cut(raw, ".")
	if !ok {
		return h, errors.New("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return h, err
	}
	err = json.Unmarshal(b, &h)
	return h, err
}

// claimMatches compares a claim with a configured string: strings exactly,
// numbers and booleans by their JSON spelling, and an array when any of its
// elements matches (group and role claims are arrays).
func claimMatches(got any, want string) bool {
	switch g := got.(type) {
	case string:
		return g == want
	case float64:
		return strconv.FormatFloat(g, 'f', -1, 64) == want
	case bool:
		return strconv.FormatBool(g) == want
	case []any:
		for _, e := range g {
			if _, nested := e.([]any); !nested && claimMatches(e, want) {
				return true
			}
		}
	}
	return false
}

func printableAlg(alg string) string {
	if alg == "" {
		return "(none given)"
	}
	if len(alg) > 16 || strings.IndexFunc(alg, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return "(unrecognised)"
	}
	return strconv.Quote(alg)
}

// printableTyp quotes a media-type-like typ, or says it is unrecognised, so
// that a crafted header cannot write arbitrary text into the 401 and logs.
func printableTyp(typ string) string {
	if len(typ) > 40 || strings.IndexFunc(typ, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-_+./", r))
	}) >= 0 {
		return "(unrecognised)"
	}
	return strconv.Quote(typ)
}

func quoteList(aud jwt.Audience) string {
	if len(aud) == 0 {
		return "no audience"
	}
	q := make([]string, 0, min(len(aud), 5))
	for i, a := range aud {
		if i == 5 {
			q = append(q, "…")
			break
		}
		q = append(q, strconv.Quote(clip(a)))
	}
	return strings.Join(q, ", ")
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

func kids(keys []jose.JSONWebKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KeyID
	}
	return out
}

func sameKids(a, b []jose.JSONWebKey) bool { return slices.Equal(kids(a), kids(b)) }

// SecureURL reports whether raw is an https URL, or an http one whose host
// is exactly localhost or a loopback IP (a test IdP on this machine), with
// no user info: the one rule for where an IdP's issuer and keys may be
// fetched from (the config checks it with this, too). The host is compared
// after parsing: a prefix test would pass http://localhost.attacker.example.
func SecureURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return secureParsedURL(u)
}

func secureParsedURL(u *url.URL) bool {
	if u.Host == "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if strings.EqualFold(h, "localhost") {
			return true
		}
		ip, err := netip.ParseAddr(h)
		return err == nil && ip.Unmap().IsLoopback()
	}
	return false
}

// refuseInsecureRedirect keeps discovery and key fetches on https: a
// redirect from https to http (or to anywhere SecureURL refuses) would let
// whoever sits on the plain-text path hand over their own signing keys.
func refuseInsecureRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if len(via) > 0 && via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused redirect from https to %s", req.URL.Scheme)
	}
	if !secureParsedURL(req.URL) {
		return errors.New("refused redirect to a URL that is not https")
	}
	return nil
}
