package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// testdata/state-v1.db was written by the release before this round
// (commit 99ee1b9): serve against the fake Cloudflare, three users pushed
// over SCIM, two mapped groups (one with a ttl), a deactivation, a
// temporary grant, a SCIM token and an apply — eight audit records. A
// state file in the field must keep working: the audit chain verifies, and
// the ledger, grants, tokens and member cache read back as they were.
// v1State copies testdata/state-v1.db into dir (tests must not change
// testdata) and returns the copy's path.
func v1State(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "state-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.db")
	if err := os.WriteFile(state, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return state
}

func TestStateFileFromThePreviousReleaseStillWorks(t *testing.T) {
	dir := t.TempDir()
	state := v1State(t, dir)
	// Role names come from Cloudflare, as for any reader of the member
	// cache; the fake's ids are the ones the old release stored.
	fake := cftest.New(t, cftest.Options{Accounts: []string{"0123456789abcdef0123456789abcdef"}, Token: "cf-tok"})
	t.Setenv("SCIMFLARE_TEST_V1_CF_TOKEN", "cf-tok")
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(`server:
  listen: "127.0.0.1:0"
admin:
  socket: `+filepath.Join(dir, "admin.sock")+`
state:
  path: `+state+`
cloudflare:
  api_token_env: SCIMFLARE_TEST_V1_CF_TOKEN
  base_url: `+fake.URL()+`
sync:
  max_grant_duration: 720h
  protected: [breakglass@example.com]
accounts:
  - {name: prod, id: 0123456789abcdef0123456789abcdef, environment: production}
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
    ttl: 500h
`), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runMain("audit", "verify", "--config", cfg)
	if code != 0 || !strings.Contains(out, "8 record(s)") {
		t.Fatalf("audit verify on the previous release's file: %d %s %s", code, out, errOut)
	}
	code, out, errOut = runMain("audit", "--config", cfg)
	for _, want := range []string{"remove_member", "carol@example.com", "temporary grant g-6a01edfd32e5", "INC-42 v1 fixture", "token_create"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit lacks %q: %d\n%s%s", want, code, out, errOut)
		}
	}
	// As of a fixed moment, so the ttl and the grant have not ended.
	code, out, errOut = runMain("report", "access", "--at", "2026-12-06T06:00:00Z", "--csv", "--config", cfg)
	if code != 0 {
		t.Fatalf("report access: %d %s %s", code, out, errOut)
	}
	for _, want := range []string{
		"alice@example.com,prod,Administrator,group cf-oncall",
		"alice@example.com,prod,Workers Platform Admin,group cf-deployers",
		"bob@example.com,prod,DNS,grant g-6a01edfd32e5",
		"bob@example.com,prod,Workers Platform Admin,group cf-deployers",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report access lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "carol@example.com") {
		t.Errorf("the deactivated carol shows in the access report:\n%s", out)
	}
	if code, out, errOut := runMain("token", "list", "--config", cfg); code != 0 || !strings.Contains(out, "okta") {
		t.Errorf("token list: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runMain("status", "--config", cfg); code != 0 || !strings.Contains(out, "last reconcile") {
		t.Errorf("status: %d %s %s", code, out, errOut)
	}
	// And the file still verifies after the new release read it.
	if code, out, errOut := runMain("audit", "verify", "--config", cfg); code != 0 || !strings.Contains(out, "8 record(s)") {
		t.Errorf("audit verify after the new release read the file: %d %s %s", code, out, errOut)
	}
	// The new release appends records of its own format (sources as data,
	// a new hash domain) to the old chain: the mixed trail verifies.
	if code, out, errOut := runMain("apply", "--config", cfg); code != 0 {
		t.Fatalf("apply on the previous release's file: %d %s %s", code, out, errOut)
	}
	code, out, errOut = runMain("audit", "verify", "--config", cfg)
	if code != 0 || !strings.Contains(out, "intact") || strings.Contains(out, "8 record(s)") {
		t.Errorf("audit verify of a trail of old and new records: %d %s %s", code, out, errOut)
	}
	code, out, _ = runMain("audit", "--json", "--config", cfg)
	if code != 0 || !strings.Contains(out, `"sources"`) || !strings.Contains(out, `"version":2`) {
		t.Errorf("the new records carry no sources:\n%s", out)
	}
}
