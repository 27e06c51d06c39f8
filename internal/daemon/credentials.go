package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	gosync "sync"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/metrics"
	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/sync/cloudflare"
)

// Defaults of the credential checks (Options.TokenRecheck, TokenFilePoll).
const (
	defaultTokenRecheck  = time.Hour
	defaultTokenFilePoll = 2 * time.Second
	tokenVerifyTimeout   = 30 * time.Second
)

// newOIDCVerifier builds the JWT checker of scim.oidc; nil when no issuer is
// configured.
func newOIDCVerifier(cfg *config.Config, log *slog.Logger) (*scim.OIDCVerifier, error) {
	o := cfg.SCIM.OIDC
	if o.Issuer == "" {
		return nil, nil
	}
	v, err := scim.NewOIDCVerifier(scim.OIDCConfig{
		Issuer:         o.Issuer,
		Audience:       o.Audience,
		AllowedClients: o.AllowedClients,
		RequiredClaims: o.RequiredClaims,
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("scim.oidc: %w", err)
	}
	return v, nil
}

// tokenWatch verifies the Cloudflare API token at start and every recheck,
// and, when the token comes from cloudflare.api_token_file, hands a rotated
// secret to the client as soon as the file changes.
type tokenWatch struct {
	client   *cloudflare.Client
	accounts []string
	source   string
	file     string // "" when the token comes from the environment
	log      *slog.Logger
	m        *metrics.Metrics
	now      func() time.Time

	mu     gosync.Mutex
	health cloudflare.TokenHealth

	// File state, touched only by the watch goroutine.
	fileInfo os.FileInfo
	fileSum  [sha256.Size]byte
	fileErr  string
}

// newTokenWatch returns nil when there is no client (plan-only without a
// token): there is nothing to watch.
func newTokenWatch(cfg *config.Config, client *cloudflare.Client, m *metrics.Metrics, log *slog.Logger, now func() time.Time) *tokenWatch {
	if client == nil {
		return nil
	}
	w := &tokenWatch{client: client, log: log, m: m, now: now, file: cfg.Cloudflare.APITokenFile}
	for _, a := range cfg.Accounts {
		w.accounts = append(w.accounts, a.ID)
	}
	w.source = "environment variable " + cfg.Cloudflare.APITokenEnv
	if w.file != "" {
		w.source = "cloudflare.api_token_file " + w.file
		w.fileInfo, _ = os.Stat(w.file)
		if tok, err := cfg.CloudflareToken(); err == nil {
			w.fileSum = sha256.Sum256([]byte(tok))
		}
	}
	w.health = cloudflare.TokenHealth{Source: w.source}
	return w
}

// Health is the last verification's outcome.
func (w *tokenWatch) Health() cloudflare.TokenHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.health
}

// verify asks Cloudflare about the token and records, logs and exports the
// answer.
func (w *tokenWatch) verify(ctx context.Context) cloudflare.TokenHealth {
	ctx, cancel := context.WithTimeout(ctx, tokenVerifyTimeout)
	defer cancel()
	st, err := w.client.VerifyToken(ctx, w.accounts)
	now := w.now()
	h := cloudflare.Assess(w.source, st, err, now)
	if prev := w.Health(); err != nil && !h.Rejected && !prev.Checked.IsZero() {
		// Cloudflare did not answer: what was learned before still holds.
		h.Status, h.ExpiresOn, h.AccountID = prev.Status, prev.ExpiresOn, prev.AccountID
	}
	w.mu.Lock()
	w.health = h
	w.mu.Unlock()
	if w.m != nil {
		exp := 0.0
		if !h.ExpiresOn.IsZero() {
			exp = float64(h.ExpiresOn.Unix())
		}
		w.m.CloudflareTokenExpiry.Set(exp)
	}
	switch {
	case h.Rejected:
		w.log.Error("cloudflare api token check failed; changes to Cloudflare will fail until it is replaced", "problem", h.Problem)
	case h.Problem != "":
		w.log.Error("cloudflare api token could not be verified", "problem", h.Problem)
	default:
		expires := "never"
		if !h.ExpiresOn.IsZero() {
			expires = h.ExpiresOn.UTC().Format(time.RFC3339)
		}
		w.log.Info("cloudflare api token verified", "source", w.source, "status", h.Status, "expires_on", expires, "account_owned", h.AccountID != "")
	}
	for _, warn := range h.Warnings(now) {
		if warn != h.Problem {
			w.log.Warn("cloudflare api token expires soon", "warning", warn)
		}
	}
	return h
}

// startupCheck verifies the token before serve starts. A refused or
// inactive token stops an enforcing daemon; a Cloudflare that does not
// answer does not (the hourly re-check and the reconciler will tell).
func (w *tokenWatch) startupCheck(ctx context.Context, enforce bool) error {
	if w == nil {
		return nil
	}
	h := w.verify(ctx)
	if h.Rejected && enforce {
		return errors.New(h.Problem + ", so serve will not start in enforce mode: replace the token, or set sync.mode: plan-only")
	}
	return nil
}

// run re-verifies every recheck and polls the token file every poll, until
// ctx ends.
func (w *tokenWatch) run(ctx context.Context, recheck, poll time.Duration) {
	if w == nil {
		return
	}
	verifyTick := time.NewTicker(recheck)
	defer verifyTick.Stop()
	var pollC <-chan time.Time
	if w.file != "" {
		pollTick := time.NewTicker(poll)
		defer pollTick.Stop()
		pollC = pollTick.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-verifyTick.C:
			w.verify(ctx)
		case <-pollC:
			if w.pollFile() {
				w.verify(ctx)
			}
		}
	}
}

// pollFile re-reads the token file when it changed (another file, size or
// modification time) and reports whether the client now has a new token.
// A missing, unreadable or empty file keeps the current token: a rotation
// caught half-way must not take scimflare's access away.
func (w *tokenWatch) pollFile() bool {
	fi, err := os.Stat(w.file)
	if err != nil {
		w.fileProblem(fmt.Sprintf("cannot read cloudflare.api_token_file %s (%v); the current token stays in use", w.file, errors.Unwrap(err)))
		return false
	}
	if w.fileInfo != nil && os.SameFile(fi, w.fileInfo) && fi.ModTime().Equal(w.fileInfo.ModTime()) && fi.Size() == w.fileInfo.Size() {
		return false
	}
	raw, err := os.ReadFile(w.file)
	if err != nil {
		w.fileProblem(fmt.Sprintf("cannot read cloudflare.api_token_file %s (%v); the current token stays in use", w.file, errors.Unwrap(err)))
		return false
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		w.fileProblem(fmt.Sprintf("cloudflare.api_token_file %s is empty; the current token stays in use", w.file))
		return false
	}
	w.fileInfo, w.fileErr = fi, ""
	sum := sha256.Sum256([]byte(tok))
	if sum == w.fileSum {
		return false
	}
	if err := w.client.SetToken(tok); err != nil {
		w.fileProblem(err.Error())
		return false
	}
	w.fileSum = sum
	w.log.Info("cloudflare.api_token_file changed; the new token is used from the next request", "file", w.file)
	return true
}

func (w *tokenWatch) fileProblem(msg string) {
	if msg != w.fileErr {
		w.log.Warn("cloudflare api token file", "problem", msg)
		w.fileErr = msg
	}
}

// startCredentialWatch runs the OIDC key refresh and the Cloudflare token
// watch until ctx ends; the returned func waits for both to stop.
func (d *Daemon) startCredentialWatch(ctx context.Context, opt Options) (wait func()) {
	recheck, poll := opt.TokenRecheck, opt.TokenFilePoll
	if recheck <= 0 {
		recheck = defaultTokenRecheck
	}
	if poll <= 0 {
		poll = defaultTokenFilePoll
	}
	var wg gosync.WaitGroup
	if d.oidc != nil {
		wg.Go(func() { d.oidc.Run(ctx, d.now) })
	}
	if d.cfToken != nil {
		wg.Go(func() { d.cfToken.run(ctx, recheck, poll) })
	}
	return wg.Wait
}

// credentialWarnings are the credential problems /readyz reports. They do
// not make the daemon unready: static SCIM tokens still work when the IdP's
// keys cannot be fetched, and an expiring Cloudflare token still works.
func (d *Daemon) credentialWarnings() []string {
	var out []string
	if d.oidc != nil {
		if p := d.oidc.Problem(); p != "" {
			out = append(out, p+"; JWT access tokens are refused until it works (static and stored tokens still work)")
		}
	}
	if d.cfToken != nil {
		out = append(out, d.cfToken.Health().Warnings(d.now())...)
	}
	return out
}

// CloudflareTokenHealth is what the daemon last learned about its
// Cloudflare API token (status, expiry date, problem), for `status`. The
// zero value, with an empty Source, means no token is configured.
func (d *Daemon) CloudflareTokenHealth() cloudflare.TokenHealth {
	if d.cfToken == nil {
		return cloudflare.TokenHealth{}
	}
	return d.cfToken.Health()
}
