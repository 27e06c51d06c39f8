package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/scim"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("config.example.yaml must load: %v", err)
	}
	if cfg.Sync.Debounce != 10*time.Second || cfg.Sync.MaxGrantDuration != 24*time.Hour {
		t.Errorf("durations not decoded: %+v", cfg.Sync)
	}
	if len(cfg.Accounts) != 3 || len(cfg.Mappings) != 4 {
		t.Errorf("accounts/mappings not decoded: %d %d", len(cfg.Accounts), len(cfg.Mappings))
	}
	if cfg.Mappings[2].TTL != 12*time.Hour {
		t.Errorf("mapping ttl = %v", cfg.Mappings[2].TTL)
	}
	if cfg.Mappings[3].ExpiresAt == nil || !cfg.Mappings[3].ExpiresAt.Equal(time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expires_at = %v", cfg.Mappings[3].ExpiresAt)
	}
	var admin bool
	for _, w := range cfg.Warnings {
		if strings.Contains(strings.ToLower(w.Message), "admin") {
			admin = true
		}
	}
	if !admin {
		t.Errorf("expected an 'admin' warning for the Administrator role, got %v", cfg.Warnings)
	}
}

// TestExampleShowsEveryKey guards the promise that config.example.yaml
// carries every key the decoder knows.
func TestExampleShowsEveryKey(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("x", raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"listen", "scim_base_path", "tls_cert_file", "tls_key_file", "socket", "path", "token_env",
		"max_body_bytes", "oidc", "issuer", "audience", "allowed_clients", "required_claims", "email_from", "api_token_env",
		"api_token_file", "base_url", "request_budget", "schedule", "debounce", "mode", "unmanaged", "max_grant_duration",
		"guards", "max_removals", "max_removal_percent", "protected", "accounts", "environment", "mappings", "group", "account",
		"roles", "policies", "permission_groups", "resource_groups", "ttl", "expires_at", "allow_cross_environment",
		"user_group_prefix"} {
		if !strings.Contains(string(raw), key+":") {
			t.Errorf("config.example.yaml does not show key %q", key)
		}
	}
}

func TestParseErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "server:\n  listen: 127.0.0.1:1\n  lisen: x\n", "cfg.yaml:3: server.lisen: unknown key"},
		{"unknown top key", "sever: {}\n", "cfg.yaml:1: sever: unknown key"},
		{"bad duration", "sync:\n  debounce: 10x\n", `cfg.yaml:2: sync.debounce: "10x" is not a duration`},
		{"wrong type", "scim:\n  max_body_bytes: lots\n", `cfg.yaml:2: scim.max_body_bytes: "lots" is not a whole number`},
		{"list expected", "sync:\n  protected: a@b.c\n", "cfg.yaml:2: sync.protected: must be a list"},
		{"bad bool", "mappings:\n  - group: g\n    account: a\n    roles: [r]\n    allow_cross_environment: maybe\n", `cfg.yaml:5: mappings[0].allow_cross_environment: "maybe" is not true or false`},
		{"bad mode", "sync:\n  mode: yolo\n", `cfg.yaml:2: sync.mode: "yolo" must be enforce or plan-only`},
		{"bad schedule", "sync:\n  schedule: every now and then\n", "cfg.yaml:2: sync.schedule:"},
		{"budget", "cloudflare:\n  request_budget: 5000\n", "cfg.yaml:2: cloudflare.request_budget: must be between 1 and 1200"},
		{"oidc audience", "scim:\n  oidc:\n    issuer: https://idp.example.com/\n", "scim.oidc.audience: is required"},
		{"oidc issuer look-alike of localhost", "scim:\n  oidc:\n    issuer: http://localhost.attacker.example/\n    audience: a\n", "scim.oidc.issuer: \"http://localhost.attacker.example/\" must be an https URL"},
		{"oidc issuer look-alike of 127.0.0.1", "scim:\n  oidc:\n    issuer: http://127.0.0.1.attacker.example/\n    audience: a\n", "must be an https URL"},
		{"oidc issuer with userinfo", "scim:\n  oidc:\n    issuer: http://localhost@attacker.example/\n    audience: a\n", "must be an https URL"},
		{"not yaml", "server: [\n", "cfg.yaml: not valid YAML"},
		{"duplicate key", "sync:\n  mode: enforce\n  mode: plan-only\n", "sync.mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("cfg.yaml", []byte(c.yaml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *Error, got %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestMappingProblemsCarryLines(t *testing.T) {
	y := `accounts:
  - name: prod
    id: 0123456789abcdef0123456789abcdef
    environment: production
mappings:
  - group: g
    account: nope
    roles: [Viewer]
`
	_, err := Parse("m.yaml", []byte(y))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:7: mappings[0].account") {
		t.Fatalf("want the unknown account reported at line 7, got %v", err)
	}
}

func TestDefaultsApplyToEmptyFile(t *testing.T) {
	cfg, err := Parse("empty.yaml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:8080" || cfg.Cloudflare.RequestBudget != 600 || cfg.Sync.Guards.MaxRemovals != 25 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d12h": 36 * time.Hour, "10s": 10 * time.Second} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "x1d", "1dx", "-1d", "213504d", "106752d1000000h", "0d-1h"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) should fail", in)
		}
	}
}

func TestCloudflareTokenFromEnvAndFile(t *testing.T) {
	cfg := Default()
	cfg.Cloudflare.APITokenEnv = "SCIMFLARE_TEST_CF_TOKEN"
	t.Setenv("SCIMFLARE_TEST_CF_TOKEN", " tok \n")
	if tok, err := cfg.CloudflareToken(); err != nil || tok != "tok" {
		t.Fatalf("env token = %q, %v", tok, err)
	}
	f := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(f, []byte("filetok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Cloudflare.APITokenEnv = ""
	cfg.Cloudflare.APITokenFile = f
	if tok, err := cfg.CloudflareToken(); err != nil || tok != "filetok" {
		t.Fatalf("file token = %q, %v", tok, err)
	}
	if !cfg.PlanOnly("") || cfg.PlanOnly("x") {
		t.Error("PlanOnly must follow the token when mode is enforce")
	}
}

func TestSecureURLAcceptsHTTPSAndExactLoopbackOnly(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://idp.example.com/":           true,
		"http://localhost:8080/realms/x":     true,
		"http://LOCALHOST/":                  true,
		"http://127.0.0.1:9000/":             true,
		"http://127.5.5.5/":                  true,
		"http://[::1]:9000/":                 true,
		"http://localhost.attacker.example/": false,
		"http://127.0.0.1.nip.io/":           false,
		"http://localhost@attacker.example/": false,
		"http://idp.example.com/":            false,
		"ftp://localhost/":                   false,
		"https://":                           false,
	} {
		if got := scim.SecureURL(raw); got != want {
			t.Errorf("scim.SecureURL(%q) = %v, want %v", raw, got, want)
		}
	}
}

// With both set, the file wins: the env default (SCIMFLARE_CLOUDFLARE_API_TOKEN) would
// otherwise make api_token_file unusable without also blanking api_token_env.
func TestCloudflareTokenFileWinsOverEnv(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCIMFLARE_TEST_CF_TOKEN2", "from-env")
	cfg, err := Parse("c.yaml", []byte("cloudflare:\n  api_token_env: SCIMFLARE_TEST_CF_TOKEN2\n  api_token_file: "+f+"\n"))
	if err != nil {
		t.Fatalf("both token sources must be accepted: %v", err)
	}
	if tok, err := cfg.CloudflareToken(); err != nil || tok != "from-file" {
		t.Fatalf("token = %q, %v; want the file's", tok, err)
	}
}
