package main

// Secrets and files: one full e2e run, then every place a secret could leak
// is searched for every secret.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/internal/cli"
)

func TestE2ENoSecretLeaksAnywhereObservable(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	const wrongToken = "wrong-token-9c4e1f7a"
	var seen []string // every observable text, labelled
	observe := func(label, text string) { seen = append(seen, label+":\n"+text) }

	// A token made with `token create`: its output is the one place the
	// secret may appear, once.
	code, out, errOut := e.cli("token", "create", "--name", "okta", "--ttl", "90d")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	created := regexp.MustCompile(`sfscim_[A-Za-z0-9_-]{20,}`).FindAllString(out, -1)
	if len(created) != 1 || strings.Count(out, created[0]) != 1 {
		t.Fatalf("token create must print the new secret exactly once: %q", out)
	}
	secret := created[0]
	observe("token create stderr", errOut)

	// SCIM pushes with both tokens, and a failed one; every response is
	// kept whole, headers included.
	raw := func(method, path, token, body string) int {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, e.base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		dump, err := httputil.DumpResponse(resp, true)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		observe(method+" "+path, string(dump))
		return resp.StatusCode
	}
	if c := raw("POST", "/Users", e2eSCIMToken, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","active":true,"password":"hunter2-not-stored"}`); c != 201 {
		t.Fatalf("create with the static token: %d", c)
	}
	if c := raw("POST", "/Groups", secret, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"cf-deployers"}`); c != 201 {
		t.Fatalf("create with the token create token: %d", c)
	}
	code, body := e.scim("GET", "/Users?filter=userName%20eq%20%22alice@example.com%22", nil)
	if code != 200 {
		t.Fatalf("lookup: %d", code)
	}
	alice := body["Resources"].([]any)[0].(map[string]any)["id"].(string)
	code, body = e.scim("GET", "/Groups?filter=displayName%20eq%20%22cf-deployers%22", nil)
	if code != 200 {
		t.Fatalf("lookup: %d", code)
	}
	group := body["Resources"].([]any)[0].(map[string]any)["id"].(string)
	if c := raw("PATCH", "/Groups/"+group, secret, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+alice+`"}]}]}`); c != 204 {
		t.Fatalf("add member: %d", c)
	}
	if c := raw("GET", "/Users", wrongToken, ""); c != 401 {
		t.Fatalf("wrong token: %d, want 401", c)
	}
	if c := raw("GET", "/Users/"+alice, e2eSCIMToken, ""); c != 200 {
		t.Fatalf("get alice: %d", c)
	}
	if c := raw("GET", "/Users/"+alice, secret, ""); c != 200 {
		t.Fatalf("get alice with the created token: %d", c)
	}

	// The reconcile reaches the fake, which accepts only the Cloudflare token.
	e.waitFor(5*time.Second, "alice invited", func() bool { _, ok := e.member("alice@example.com"); return ok })
	for _, args := range [][]string{{"apply"}, {"plan", "--json"}, {"status"}, {"token", "list"}, {"report", "access"}, {"audit", "--json"}, {"explain", "--user", "alice@example.com"}} {
		if !cli.Has(args[0]) {
			continue
		}
		code, out, errOut := e.cli(args...)
		observe(strings.Join(args, " "), fmt.Sprintf("exit %d\n%s\n%s", code, out, errOut))
		if args[0] == "audit" && (code != 0 || !strings.Contains(out, "alice@example.com")) {
			t.Errorf("audit --json shows no record of alice's invitation: %d %s", code, errOut)
		}
	}
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get(e.root + p)
		if err != nil {
			t.Fatal(err)
		}
		dump, _ := httputil.DumpResponse(resp, true)
		resp.Body.Close()
		observe(p, string(dump))
	}
	observe("daemon logs", e.logs.String())

	secrets := map[string]string{
		"the static SCIM token":           e2eSCIMToken,
		"the `token create` token":        secret,
		"the Cloudflare token":            e2eCFToken,
		"the wrong token a client tried":  wrongToken,
		"a password sent in a SCIM write": "hunter2-not-stored",
	}
	for what, s := range secrets {
		for _, text := range seen {
			if strings.Contains(text, s) {
				label, _, _ := strings.Cut(text, ":\n")
				t.Errorf("%s appears in %s", what, label)
			}
		}
	}
	for _, text := range seen {
		if strings.Contains(strings.ToLower(text), "authorization: bearer") {
			label, _, _ := strings.Cut(text, ":\n")
			t.Errorf("an Authorization header is echoed in %s", label)
		}
	}

	// Files: modes, and tokens kept as hashes only.
	dir := filepath.Dir(e.cfgPath)
	state, sock := filepath.Join(dir, "state.db"), filepath.Join(dir, "admin.sock")
	for _, f := range []string{state, sock} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
	db, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range secrets {
		if bytes.Contains(db, []byte(s)) {
			t.Errorf("%s is in the state file in clear", what)
		}
	}
	sum := sha256.Sum256([]byte(secret))
	if !bytes.Contains(db, sum[:]) && !bytes.Contains(db, []byte(hex.EncodeToString(sum[:]))) && !bytes.Contains(db, []byte(base64.StdEncoding.EncodeToString(sum[:]))) {
		t.Error("the state file holds no hash of the created token: the search above looked in the wrong place")
	}
	// The Cloudflare token reached Cloudflare (the fake refuses any other)
	// without ever being in the config: only the variable's name is.
	cfgRaw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfgRaw, []byte(e2eCFToken)) || bytes.Contains(cfgRaw, []byte(e2eSCIMToken)) || !bytes.Contains(cfgRaw, []byte("api_token_env: E2E_CF_TOKEN")) {
		t.Errorf("the config must name the token variables and hold no token:\n%s", cfgRaw)
	}
}
