// Package dev runs `scimflare serve --dev`: the whole loop on a throw-away
// state against the in-process fake Cloudflare (sync/cloudflare/
// cloudflarefake), with config.example.yaml's accounts and mappings, and
// prints what to try.
//
// It must never reach a real Cloudflare account: the config it runs is the
// example with cloudflare.base_url replaced by the fake's loopback URL and
// the token read from a file it writes, never from the environment; Run
// checks both after loading and refuses to start otherwise.
package dev

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	gosync "sync"
	"time"

	scimflare "github.com/scimflare/scimflare"
	"github.com/scimflare/scimflare/internal/cli"
	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cloudflarefake"
)

// Options are what main passes in.
type Options struct {
	Logger          *slog.Logger
	Version, Commit string
	// Listen is the SCIM address; "" tries 127.0.0.1:8080 and falls back
	// to a free loopback port when that one is taken.
	Listen string
}

// Debounce is the dev daemon's sync.debounce: short, so a push shows in
// Cloudflare while the reader watches.
const Debounce = "2s"

// Run serves until ctx ends (or SIGINT/SIGTERM), then removes the state.
func Run(ctx context.Context, out io.Writer, opt Options) error {
	dir, err := os.MkdirTemp("", "scimflare-dev-")
	if err != nil {
		return fmt.Errorf("dev: make a temporary folder: %w", err)
	}
	defer os.RemoveAll(dir)

	example, err := config.Parse("config.example.yaml", scimflare.ExampleConfig)
	if err != nil {
		return fmt.Errorf("dev: the embedded config.example.yaml does not load: %w", err)
	}
	names := map[string]string{}
	var ids []string
	for _, a := range example.Accounts {
		names[a.ID] = a.Name
		ids = append(ids, a.ID)
	}

	var printMu gosync.Mutex
	printf := func(format string, args ...any) {
		printMu.Lock()
		defer printMu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	cfToken := "dev-cloudflare-" + randomHex(12)
	// The fake's clock is manual; here it follows real time so its
	// rate-limit window slides.
	clock := cloudflarefake.NewClock(time.Now())
	fake, err := cloudflarefake.New(cloudflarefake.Options{
		Accounts: ids, Token: cfToken, Clock: clock,
		OnChange: func(c cloudflarefake.Change) { printf("cloudflare (fake): %s\n", describe(c, names)) },
	})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer fake.Close()
	tickCtx, stopTick := context.WithCancel(ctx)
	defer stopTick()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-tickCtx.Done():
				return
			case <-t.C:
				clock.Advance(time.Second)
			}
		}
	}()

	if err := os.WriteFile(filepath.Join(dir, "cloudflare-token"), []byte(cfToken+"\n"), 0o600); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	listen := opt.Listen
	if listen == "" {
		listen = freeListen("127.0.0.1:8080")
	}
	cfgPath := filepath.Join(dir, "scimflare.yaml")
	text, err := devConfig(string(scimflare.ExampleConfig), fake.URL(), listen)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("dev: the dev config does not load: %w", err)
	}
	if cfg.Cloudflare.BaseURL != fake.URL() || cfg.Cloudflare.APITokenEnv != "" || cfg.Cloudflare.APITokenFile != filepath.Join(dir, "cloudflare-token") {
		return errors.New("dev: refusing to start: the dev config does not point at the in-process fake Cloudflare only")
	}

	scimToken, err := storeToken(cfg)
	if err != nil {
		return err
	}

	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: opt.Logger, Ready: ready, Version: opt.Version, Commit: opt.Commit})
	}()
	select {
	case err := <-done:
		return err
	case addr := <-ready:
		printf("%s", banner(dir, cfgPath, fake.URL(), example, addr, cfg.Server.SCIMBasePath, scimToken))
	}
	return <-done
}

// devConfig is the example config pointed at the fake: the base URL, the
// token from a file beside it (never an environment variable), no static
// SCIM token from the environment, the dev listen address and debounce.
// Relative state and socket paths land beside the file, in the
// throw-away folder.
func devConfig(example, fakeURL, listen string) (string, error) {
	for _, r := range []struct{ re, with string }{
		{`(?m)^(  listen: ).*$`, `${1}"` + listen + `"`},
		{`(?m)^(  token_env: ).*$`, `${1}""                 # dev: no static token from the environment; a stored one is made`},
		{`(?m)^(  api_token_env: ).*$`, `${1}""             # dev: never read a token from the environment`},
		{`(?m)^(  api_token_file: ).*$`, `${1}./cloudflare-token   # dev: the fake's token, written beside this file`},
		{`(?m)^(  base_url: ).*$`, `${1}` + fakeURL + `   # dev: the in-process fake Cloudflare`},
		{`(?m)^(  debounce: ).*$`, `${1}` + Debounce + `                   # dev: short, to watch changes land`},
	} {
		re := regexp.MustCompile(r.re)
		if len(re.FindAllStringIndex(example, -1)) != 1 {
			return "", fmt.Errorf("dev: config.example.yaml has not exactly one line matching %s", r.re)
		}
		example = re.ReplaceAllString(example, r.with)
	}
	return "# scimflare serve --dev: config.example.yaml pointed at a fake Cloudflare on loopback.\n" + example, nil
}

// storeToken creates the stored SCIM token "dev", as `token create` does.
func storeToken(cfg *config.Config) (string, error) {
	st, err := store.Open(cfg.State.Path)
	if err != nil {
		return "", fmt.Errorf("dev: %w", err)
	}
	defer st.Close()
	secret, hash, err := scim.NewToken()
	if err != nil {
		return "", fmt.Errorf("dev: %w", err)
	}
	now := time.Now()
	t := store.Token{Name: "dev", Hash: hash, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	if err := st.PutTokenAudited(t, store.AuditRecord{Time: now, Actor: cli.ActorToken, Action: cli.ActionTokenCreate,
		Reason: `SCIM token "dev" created by serve --dev; it can write users and groups, expires in 24h`, Privileged: true}); err != nil {
		return "", fmt.Errorf("dev: %w", err)
	}
	return secret, nil
}

func freeListen(want string) string {
	ln, err := net.Listen("tcp", want)
	if err != nil {
		return "127.0.0.1:0"
	}
	_ = ln.Close()
	return want
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// describe is one fake-Cloudflare change as a person reads it.
func describe(c cloudflarefake.Change, names map[string]string) string {
	account := names[c.AccountID]
	if account == "" {
		account = c.AccountID
	}
	// A policy on the whole account reads as its permission group, the
	// name of the role it stands for, as plan and audit show it.
	scope := " on " + mapping.AccountScope(c.AccountID)
	readable := func(ns []string) string {
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = strings.TrimSuffix(n, scope)
		}
		return strings.Join(out, ", ")
	}
	list := "[" + readable(c.After) + "]"
	if g := c.Group; g != nil {
		switch {
		case !g.Existed:
			return fmt.Sprintf("%s: created user group %s with %s", account, g.Name, list)
		case !g.Exists:
			return fmt.Sprintf("%s: deleted user group %s", account, g.Name)
		case !slices.Equal(g.BeforeMembers, g.AfterMembers):
			return fmt.Sprintf("%s: user group %s (%s) now has members [%s] (was [%s])", account, g.Name, list,
				strings.Join(g.AfterMembers, ", "), strings.Join(g.BeforeMembers, ", "))
		}
		return fmt.Sprintf("%s: user group %s now grants %s (was [%s])", account, g.Name, list, readable(c.Before))
	}
	switch {
	case c.BeforeStatus == "" && c.AfterStatus != "":
		return fmt.Sprintf("%s: invited %s (%s) with %s", account, c.Email, c.AfterStatus, list)
	case c.AfterStatus == "":
		return fmt.Sprintf("%s: removed %s (held [%s])", account, c.Email, readable(c.Before))
	}
	return fmt.Sprintf("%s: %s now holds %s (was [%s])", account, c.Email, list, readable(c.Before))
}

func banner(dir, cfgPath, fakeURL string, example *config.Config, addr, basePath, token string) string {
	var accts []string
	for _, a := range example.Accounts {
		accts = append(accts, a.Name)
	}
	var maps []string
	for _, m := range example.Mappings {
		what := strings.Join(m.Roles, ", ")
		if len(m.Policies) > 0 {
			what = "policies"
		}
		maps = append(maps, fmt.Sprintf("    %s -> %s on %s", m.Group, what, m.Account))
	}
	b := "http://" + addr + basePath
	hdr := "-H \"$T\" -H 'Content-Type: application/scim+json'"
	return fmt.Sprintf(`
scimflare dev: the whole loop on a throw-away state, against a fake Cloudflare.
Nothing here can reach a real Cloudflare account.
  fake Cloudflare  %s (accounts %s)
  state            %s (removed when you stop this with Ctrl-C)
  config           %s (config.example.yaml, pointed at the fake)
  mappings
%s

In another terminal, paste:

export B=%s T="Authorization: Bearer %s" C=%s

# 1. push a user the way an IdP does
ALICE=$(curl -s %s -X POST $B/Users -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","active":true,"emails":[{"value":"alice@example.com","primary":true}]}' | grep -o '"id":"[^"]*"' | head -n 1 | cut -d '"' -f 4); echo "alice is $ALICE"
# 2. put her in a mapped group: cf-workers-deployers -> Workers Platform Admin on prod
curl -s -o /dev/null -w 'group: %%{http_code}\n' %s -X POST $B/Groups -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"cf-workers-deployers","members":[{"value":"'$ALICE'"}]}'
# 3. deactivate her as Okta does
curl -s -o /dev/null -w 'deactivate: %%{http_code}\n' %s -X PATCH $B/Users/$ALICE -d '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}'

Each change lands in the fake Cloudflare %s after the last SCIM write and is
printed here as "cloudflare (fake): …". Then ask the daemon:
  scimflare audit --config $C      (also plan, status, explain --user alice@example.com)

`, fakeURL, strings.Join(accts, ", "), dir, cfgPath, strings.Join(maps, "\n"), b, token, cfgPath, hdr, hdr, hdr, Debounce)
}
