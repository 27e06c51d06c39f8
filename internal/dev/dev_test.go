package dev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	scimflare "github.com/scimflare/scimflare"
	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/cloudflare/cloudflarefake"
)

// TestDevConfigPointsAtTheFakeOnly: the config serve --dev runs is the
// example with the fake's URL, a token file beside it and no token variable,
// and every relative path inside the throw-away folder.
func TestDevConfigPointsAtTheFakeOnly(t *testing.T) {
	t.Setenv("SCIMFLARE_CLOUDFLARE_API_TOKEN", "real-token-must-not-be-read")
	dir := t.TempDir()
	text, err := devConfig(string(scimflare.ExampleConfig), "http://127.0.0.1:1234/client/v4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "scimflare.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cloudflare-token"), []byte("fake"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.CloudflareToken()
	if cfg.Cloudflare.BaseURL != "http://127.0.0.1:1234/client/v4" || cfg.Cloudflare.APITokenEnv != "" || tok != "fake" || err != nil || cfg.SCIM.TokenEnv != "" {
		t.Errorf("base_url %s, api_token_env %q, token %q (%v), scim.token_env %q", cfg.Cloudflare.BaseURL, cfg.Cloudflare.APITokenEnv, tok, err, cfg.SCIM.TokenEnv)
	}
	for _, p := range []string{cfg.State.Path, cfg.Admin.Socket} {
		if !strings.HasPrefix(p, dir) {
			t.Errorf("%s is outside the throw-away folder %s", p, dir)
		}
	}
	example, _ := config.Parse("x", scimflare.ExampleConfig)
	if len(cfg.Accounts) != len(example.Accounts) || len(cfg.Mappings) != len(example.Mappings) {
		t.Error("the dev config lost accounts or mappings of the example")
	}
	// An example that no longer has the line to replace is refused, never
	// run with its real base_url.
	if _, err := devConfig(strings.Replace(string(scimflare.ExampleConfig), "  base_url:", "  # base_url:", 1), "http://127.0.0.1:1/client/v4", "127.0.0.1:0"); err == nil {
		t.Error("devConfig accepted an example without base_url")
	}
}

// TestDescribeUserGroupChanges: in user-groups mode what a person gains
// comes through a group, and the dev printout says so: who joined, who
// left, what the group grants (a role as its name, not "… on the account").
func TestDescribeUserGroupChanges(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	names := map[string]string{id: "prod"}
	admin := []string{"Administrator on " + mapping.AccountScope(id)}
	dns := []string{"DNS on " + mapping.AccountScope(id)}
	for _, tc := range []struct {
		c    cloudflarefake.Change
		want string
	}{
		{cloudflarefake.Change{AccountID: id, After: admin, Group: &cloudflarefake.GroupChange{Name: "scimflare-ops", Exists: true}},
			"prod: created user group scimflare-ops with [Administrator]"},
		{cloudflarefake.Change{AccountID: id, Before: admin, After: admin, Group: &cloudflarefake.GroupChange{Name: "scimflare-ops", Existed: true, Exists: true,
			BeforeMembers: []string{}, AfterMembers: []string{"alice@example.com"}}},
			"prod: user group scimflare-ops ([Administrator]) now has members [alice@example.com] (was [])"},
		{cloudflarefake.Change{AccountID: id, Before: admin, After: dns, Group: &cloudflarefake.GroupChange{Name: "scimflare-ops", Existed: true, Exists: true,
			BeforeMembers: []string{"alice@example.com"}, AfterMembers: []string{"alice@example.com"}}},
			"prod: user group scimflare-ops now grants [DNS] (was [Administrator])"},
		{cloudflarefake.Change{AccountID: id, Before: admin, Group: &cloudflarefake.GroupChange{Name: "scimflare-ops", Existed: true}},
			"prod: deleted user group scimflare-ops"},
	} {
		if got := describe(tc.c, names); got != tc.want {
			t.Errorf("describe = %q, want %q", got, tc.want)
		}
	}
}
