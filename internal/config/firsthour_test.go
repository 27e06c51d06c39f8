package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCloudflareTokenDefaultIsScimflaresOwn: a CLOUDFLARE_API_TOKEN
// exported for Wrangler or Terraform must never put a first start in
// enforce mode against a real account.
func TestCloudflareTokenDefaultIsScimflaresOwn(t *testing.T) {
	t.Setenv("CLOUDFLARE_API_TOKEN", "wrangler-token")
	t.Setenv(DefaultCloudflareTokenEnv, "")
	cfg, err := Parse("c.yaml", []byte("sync:\n  mode: enforce\n"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.CloudflareToken()
	if err != nil || tok != "" || !cfg.PlanOnly(tok) {
		t.Fatalf("token %q, %v: the default variable must be %s, not CLOUDFLARE_API_TOKEN", tok, err, DefaultCloudflareTokenEnv)
	}
	example, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if example.Cloudflare.APITokenEnv != DefaultCloudflareTokenEnv || example.Log.Format != LogFormatAuto || example.Log.Level != "info" || example.Log.AccessLog {
		t.Errorf("config.example.yaml: api_token_env %q, log %+v", example.Cloudflare.APITokenEnv, example.Log)
	}
}

func TestBaseURLProblemsNameTheRealProblem(t *testing.T) {
	for raw, want := range map[string]string{
		"http://127.0.0.1:PORT/client/v4":      `invalid port ":PORT" after host`,
		"ftp://api.cloudflare.com/client/v4":   "must start with https://",
		"api.cloudflare.com/client/v4":         "must start with https://",
		"https:///client/v4":                   "names no host",
		"https://api.cloudflare.com/client/v4": "",
		"http://127.0.0.1:8787/client/v4":      "",
	} {
		if got := httpURLProblem(raw); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("httpURLProblem(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestLogSectionIsStrict(t *testing.T) {
	for yaml, want := range map[string]string{
		"log:\n  level: verbose\n": "log.level",
		"log:\n  format: xml\n":    "log.format",
		"log:\n  colour: true\n":   "unknown key",
		"log:\n  access_log: 1\n":  "log.access_log",
	} {
		if _, err := Parse("c.yaml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", yaml, err, want)
		}
	}
}

// TestLoadResolvesRelativePathsAgainstTheConfigFolder, and only Load:
// Parse has no file to be relative to.
func TestLoadResolvesRelativePathsAgainstTheConfigFolder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	raw := "admin:\n  socket: ./run/admin.sock\nstate:\n  path: state.db\ncloudflare:\n  api_token_file: /abs/token\n"
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Socket != filepath.Join(dir, "run/admin.sock") || cfg.State.Path != filepath.Join(dir, "state.db") || cfg.Cloudflare.APITokenFile != "/abs/token" {
		t.Errorf("paths: socket %s state %s token file %s", cfg.Admin.Socket, cfg.State.Path, cfg.Cloudflare.APITokenFile)
	}
	if got := AdminSocketOf(path); got != cfg.Admin.Socket {
		t.Errorf("AdminSocketOf = %s, want %s", got, cfg.Admin.Socket)
	}
}
