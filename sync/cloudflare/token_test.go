package cloudflare_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

func TestVerifyTokenUserOwned(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{Token: "test-token"})
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	srv.SetTokenInfo(cftest.TokenInfo{ExpiresOn: exp})
	st, err := c.VerifyToken(context.Background(), []string{acct})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "active" || !st.ExpiresOn.Equal(exp) || st.AccountID != "" || st.ID == "" {
		t.Fatalf("status = %+v", st)
	}
	if n := srv.Calls("GET", cftest.RouteAccountTokenVerify); n != 0 {
		t.Fatalf("a user token was also verified through the account (%d calls)", n)
	}
}

func TestVerifyTokenAccountOwnedFallsBackToTheAccountEndpoint(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{Token: "test-token"})
	other := "fedcba9876543210fedcba9876543210"
	srv.AddAccount(other)
	srv.SetTokenInfo(cftest.TokenInfo{AccountID: acct, Status: "disabled"})
	st, err := c.VerifyToken(context.Background(), []string{other, acct})
	if err != nil {
		t.Fatal(err)
	}
	if st.AccountID != acct || st.Status != "disabled" {
		t.Fatalf("status = %+v", st)
	}
}

func TestVerifyTokenRejected(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{}, cftest.Options{Token: "the-real-token"})
	_, err := c.VerifyToken(context.Background(), []string{acct})
	if !errors.Is(err, cloudflare.ErrTokenRejected) {
		t.Fatalf("err = %v, want ErrTokenRejected", err)
	}
	if strings.Contains(err.Error(), "test-token") || strings.Contains(err.Error(), "the-real-token") {
		t.Fatalf("the error carries a token: %v", err)
	}
	if srv.Calls("GET", cftest.RouteTokenVerify) != 1 || srv.Calls("GET", cftest.RouteAccountTokenVerify) != 1 {
		t.Fatal("both endpoints should have been asked once")
	}
}

func TestVerifyTokenServerErrorIsNotARejection(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{MaxRetries: -1}, cftest.Options{Token: "test-token"})
	srv.Inject(cftest.Fault{Status: 502})
	_, err := c.VerifyToken(context.Background(), []string{acct})
	if err == nil || errors.Is(err, cloudflare.ErrTokenRejected) {
		t.Fatalf("err = %v, want a non-rejection error", err)
	}
}

func TestSetTokenIsUsedFromTheNextRequest(t *testing.T) {
	c, srv := setup(t, cloudflare.Config{MaxRetries: -1}, cftest.Options{Token: "test-token"})
	ctx := context.Background()
	if _, err := c.ListMembers(ctx, acct); err != nil {
		t.Fatal(err)
	}
	srv.SetToken("rotated-token")
	if _, err := c.ListMembers(ctx, acct); err == nil {
		t.Fatal("the fake still accepts the old token")
	}
	if err := c.SetToken("rotated-token"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListMembers(ctx, acct); err != nil {
		t.Fatalf("after SetToken: %v", err)
	}
	if err := c.SetToken(""); err == nil {
		t.Fatal("an empty token was accepted")
	}
}

func TestAssessAndWarnings(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	const src = "cloudflare.api_token_file /run/secrets/cf"
	rejected := errors.Join(cloudflare.ErrTokenRejected)
	cases := []struct {
		name     string
		st       cloudflare.TokenStatus
		err      error
		rejected bool
		warn     []string // substrings, one per expected warning
	}{
		{"active, no expiry", cloudflare.TokenStatus{Status: "active"}, nil, false, nil},
		{"active, expiry in 30 days", cloudflare.TokenStatus{Status: "active", ExpiresOn: now.Add(30 * 24 * time.Hour)}, nil, false, nil},
		{"active, expiry in exactly 14 days", cloudflare.TokenStatus{Status: "active", ExpiresOn: now.Add(14 * 24 * time.Hour)}, nil, false, []string{"expires at 2026-06-15T12:00:00Z (in 14 day(s))"}},
		{"active, expiry in 3 hours", cloudflare.TokenStatus{Status: "active", ExpiresOn: now.Add(3 * time.Hour)}, nil, false, []string{"(in 1 day(s))"}},
		{"active but past expiry", cloudflare.TokenStatus{Status: "active", ExpiresOn: now.Add(-time.Minute)}, nil, true, []string{"expired at 2026-06-01T11:59:00Z"}},
		{"disabled", cloudflare.TokenStatus{Status: "disabled"}, nil, true, []string{"is disabled, not active"}},
		{"expired", cloudflare.TokenStatus{Status: "expired"}, nil, true, []string{"is expired, not active"}},
		{"not yet valid", cloudflare.TokenStatus{Status: "active", NotBefore: now.Add(time.Hour)}, nil, true, []string{"not valid before"}},
		{"refused", cloudflare.TokenStatus{}, rejected, true, []string{"is not valid: Cloudflare refused it"}},
		{"unreachable", cloudflare.TokenStatus{}, errors.New("dial tcp: connection refused"), false, []string{"could not be verified: dial tcp"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := cloudflare.Assess(src, c.st, c.err, now)
			if h.Rejected != c.rejected {
				t.Errorf("Rejected = %v, want %v (%+v)", h.Rejected, c.rejected, h)
			}
			w := h.Warnings(now)
			if len(w) != len(c.warn) {
				t.Fatalf("warnings = %q, want %d", w, len(c.warn))
			}
			for i, want := range c.warn {
				if !strings.Contains(w[i], want) || !strings.Contains(w[i], src) {
					t.Errorf("warning %q does not contain %q and the source", w[i], want)
				}
			}
			if !h.Checked.Equal(now) || !slices.Contains([]string{"", c.st.Status}, h.Status) {
				t.Errorf("health = %+v", h)
			}
		})
	}
}

// TestVerifyTokenMalformedIsRejected: Cloudflare answers a token that is
// not a token at all 400 / 6003 (6111); that is a refused token, not an
// outage.
func TestVerifyTokenMalformedIsRejected(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, Token: "good-token"})
	c, err := cloudflare.New(cloudflare.Config{BaseURL: srv.URL(), Token: "pasted with a space", HTTPClient: srv.HTTPClient(), Clock: srv.Clock()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.VerifyToken(context.Background(), []string{acct})
	if !errors.Is(err, cloudflare.ErrTokenRejected) {
		t.Fatalf("err = %v, want ErrTokenRejected", err)
	}
	h := cloudflare.Assess("CLOUDFLARE_API_TOKEN", cloudflare.TokenStatus{}, err, srv.Clock().Now())
	if !h.Rejected || !strings.Contains(h.Problem, "6111") {
		t.Fatalf("health = %+v", h)
	}
	if n := srv.Calls(http.MethodGet, cftest.RouteAccountTokenVerify); n != 1 {
		t.Errorf("account endpoint tried %d times, want 1", n)
	}
}
