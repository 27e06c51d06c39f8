package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/user"
)

// Route templates of the token verification endpoints.
const (
	RouteTokenVerify        = "/user/tokens/verify"
	RouteAccountTokenVerify = "/accounts/{account_id}/tokens/verify"
)

// ExpiryWarningWindow is how long before its expiry date a token is
// reported as about to expire.
const ExpiryWarningWindow = 14 * 24 * time.Hour

// ErrTokenRejected: Cloudflare refused the API token itself (HTTP 401 or
// 403 from the verify endpoints, or 400 with code 6003/6111 when it is not
// a well-formed token at all): it is unknown, revoked or malformed.
var ErrTokenRejected = errors.New("cloudflare: API token rejected")

// TokenStatus is Cloudflare's answer about the API token in use.
type TokenStatus struct {
	ID        string
	Status    string    // "active", "disabled" or "expired"
	ExpiresOn time.Time // zero when the token has no expiry date
	NotBefore time.Time
	// AccountID is set when the token is account-owned and was verified
	// through that account's endpoint.
	AccountID string
}

// SetToken makes every request from now on, retries included, carry token.
// It is how a rotated api_token_file is picked up without a restart.
func (c *Client) SetToken(token string) error {
	if token == "" {
		return errors.New("cloudflare API token is empty")
	}
	c.token.Store(&token)
	return nil
}

// VerifyToken asks Cloudflare whether the token is valid. A user-owned
// token answers at /user/tokens/verify; an account-owned token is refused
// there, so each of accountIDs' /accounts/{id}/tokens/verify is tried next.
// The error matches ErrTokenRejected when every endpoint refused the token.
func (c *Client) VerifyToken(ctx context.Context, accountIDs []string) (TokenStatus, error) {
	var res *user.TokenVerifyResponse
	err := do(ctx, RouteTokenVerify, func(ctx context.Context) (err error) {
		res, err = c.userTokens.Verify(ctx)
		return err
	})
	if err == nil {
		return TokenStatus{ID: res.ID, Status: string(res.Status), ExpiresOn: res.ExpiresOn, NotBefore: res.NotBefore}, nil
	}
	if !refused(err) {
		return TokenStatus{}, fmt.Errorf("verify Cloudflare API token: %w", err)
	}
	first := err
	for _, id := range accountIDs {
		p := accounts.TokenVerifyParams{}
		p.AccountID.Value, p.AccountID.Present = id, true
		var ares *accounts.TokenVerifyResponse
		err := do(ctx, RouteAccountTokenVerify, func(ctx context.Context) (err error) {
			ares, err = c.accountTokens.Verify(ctx, p)
			return err
		})
		if err == nil {
			return TokenStatus{ID: ares.ID, Status: string(ares.Status), ExpiresOn: ares.ExpiresOn, NotBefore: ares.NotBefore, AccountID: id}, nil
		}
		if !refused(err) {
			return TokenStatus{}, fmt.Errorf("verify Cloudflare API token through account %s: %w", id, err)
		}
	}
	return TokenStatus{}, fmt.Errorf("verify Cloudflare API token: %w: %w", ErrTokenRejected, first)
}

func refused(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden || ae.malformedToken())
}

// TokenHealth is what scimflare last learned about its Cloudflare API token,
// for status, /readyz and logs. It never holds the token.
type TokenHealth struct {
	Source    string    // where the token comes from: an environment variable or a file, for messages
	Checked   time.Time // last verification; zero before the first
	Status    string    // Cloudflare's answer: active, disabled, expired; "" when unknown
	ExpiresOn time.Time // zero when the token has no expiry date or it is unknown
	AccountID string    // the owning account of an account-owned token
	// Rejected is true when the token is refused or not active: writes to
	// Cloudflare cannot work with it.
	Rejected bool
	// Problem is one sentence when the token is unusable or could not be
	// checked, else "".
	Problem string
}

// Assess turns a verification answer (or its error) at now into health.
func Assess(source string, st TokenStatus, err error, now time.Time) TokenHealth {
	h := TokenHealth{Source: source, Checked: now}
	switch {
	case errors.Is(err, ErrTokenRejected):
		h.Rejected = true
		why := "answered 400, 401 or 403"
		var ae *APIError
		if errors.As(err, &ae) {
			why = ae.Error()
		}
		h.Problem = fmt.Sprintf("the Cloudflare API token from %s is not valid: Cloudflare refused it (%s)", source, why)
		return h
	case err != nil:
		h.Problem = fmt.Sprintf("the Cloudflare API token from %s could not be verified: %v", source, err)
		return h
	}
	h.Status, h.ExpiresOn, h.AccountID = st.Status, st.ExpiresOn, st.AccountID
	switch {
	case st.Status != "active":
		h.Rejected = true
		h.Problem = fmt.Sprintf("the Cloudflare API token from %s is %s, not active", source, orUnknown(st.Status))
	case !st.ExpiresOn.IsZero() && !now.Before(st.ExpiresOn):
		h.Rejected = true
		h.Problem = fmt.Sprintf("the Cloudflare API token from %s expired at %s", source, st.ExpiresOn.UTC().Format(time.RFC3339))
	case !st.NotBefore.IsZero() && now.Before(st.NotBefore):
		h.Rejected = true
		h.Problem = fmt.Sprintf("the Cloudflare API token from %s is not valid before %s", source, st.NotBefore.UTC().Format(time.RFC3339))
	}
	return h
}

// Warnings are the sentences an operator should see at now: the problem,
// and from ExpiryWarningWindow before the expiry date, that it is coming.
func (h TokenHealth) Warnings(now time.Time) []string {
	var out []string
	if h.Problem != "" {
		out = append(out, h.Problem)
	}
	if h.ExpiresOn.IsZero() || !now.Before(h.ExpiresOn) || h.ExpiresOn.Sub(now) > ExpiryWarningWindow {
		return out
	}
	days := int(math.Ceil(h.ExpiresOn.Sub(now).Hours() / 24))
	return append(out, fmt.Sprintf("the Cloudflare API token from %s expires at %s (in %d day(s)): create a new token and replace it before then",
		h.Source, h.ExpiresOn.UTC().Format(time.RFC3339), days))
}

func orUnknown(s string) string {
	if s == "" {
		return "in an unknown state"
	}
	return s
}
