package scim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/scimflare/scimflare/store"
)

// TokenPrefix marks scimflare-issued SCIM tokens so a leaked one is easy to
// recognise in a secret scanner.
const TokenPrefix = "sfscim_"

// NewToken returns a fresh random secret and the hash that is stored for it.
// The secret is shown to the operator once and never kept.
func NewToken() (secret string, hash []byte, err error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", nil, err
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(buf)
	return secret, HashToken(secret), nil
}

// HashToken is the stored form of a token.
func HashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// TokenSource lists the tokens created with `scimflare token create`.
type TokenSource interface {
	Tokens() ([]store.Token, error)
}

// Authenticator decides whether a bearer token may use the SCIM API.
type Authenticator struct {
	staticHash []byte // hash of the token from scim.token_env; nil when unset
	tokens     TokenSource
	now        func() time.Time
	oidc       *OIDCVerifier // nil unless scim.oidc.issuer is set
}

// NewAuthenticator accepts the static token (may be empty) and every
// unexpired stored token.
func NewAuthenticator(static string, tokens TokenSource, now func() time.Time) *Authenticator {
	a := &Authenticator{tokens: tokens, now: now}
	if static != "" {
		a.staticHash = HashToken(static)
	}
	return a
}

// UseOIDC makes the authenticator also accept JWT access tokens that v
// verifies. Call it before serving.
func (a *Authenticator) UseOIDC(v *OIDCVerifier) *Authenticator {
	a.oidc = v
	return a
}

var (
	errNoToken  = errors.New("the request has no bearer token in its Authorization header")
	errBadToken = errors.New("the bearer token is not valid")
)

// ErrAuthUnavailable marks a failed authentication that is the server's
// fault (the token store could not be read, the OIDC issuer's keys could not
// be fetched), not the client's: such a 401 says nothing about the token, so
// failed-authentication limits must not count it.
var ErrAuthUnavailable = errors.New("authentication is unavailable on the server")

// Check authenticates a request. Comparison is on hashes and constant-time,
// and every candidate is compared, so timing reveals nothing about which
// token came close.
func (a *Authenticator) Check(r *http.Request) error {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errNoToken
	}
	tok = strings.TrimSpace(tok)
	got := HashToken(tok)
	match := 0
	if a.staticHash != nil {
		match |= subtle.ConstantTimeCompare(got, a.staticHash)
	}
	if match == 1 {
		// The static token needs no store: an IdP using it keeps
		// provisioning (and deprovisioning) while the store is down.
		return nil
	}
	if a.tokens != nil {
		stored, err := a.tokens.Tokens()
		if err != nil {
			return fmt.Errorf("%w: reading the stored tokens: %w", ErrAuthUnavailable, err)
		}
		now := a.now()
		for _, t := range stored {
			live := t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)
			if subtle.ConstantTimeCompare(got, t.Hash) == 1 && live {
				match = 1
			}
		}
	}
	if match == 1 {
		return nil
	}
	if a.oidc != nil && looksLikeJWT(tok) {
		return a.oidc.Verify(r.Context(), tok, a.now())
	}
	return errBadToken
}
