package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// FuzzConfigParse feeds arbitrary bytes to Parse. Whatever the file holds,
// Parse must return promptly without panicking; a config it accepts must
// satisfy every rule validation enforces (a daemon started from it relies on
// them); a config it rejects must be reported as an *Error whose every line
// names the file, one problem per line. Seeds: config.example.yaml plus the
// broken variants in testdata/fuzz/FuzzConfigParse.
func FuzzConfigParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseWithin(t, data, 5*time.Second)
		if err != nil {
			checkRejection(t, data, err)
			return
		}
		checkAccepted(t, data, cfg)
		// Parsing is a pure function of the bytes: a second parse agrees.
		again, err := Parse("fuzz.yaml", data)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("second Parse differs: %v", err)
		}
	})
}

// parseWithin fails the test if Parse has not returned after limit, which a
// post-hoc time check could not do for an input that loops forever.
func parseWithin(t *testing.T, data []byte, limit time.Duration) (*Config, error) {
	t.Helper()
	type result struct {
		cfg *Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := Parse("fuzz.yaml", data)
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-time.After(limit):
		t.Fatalf("Parse did not return within %v", limit)
		return nil, nil
	}
}

func checkRejection(t *testing.T, data []byte, err error) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, not *Error: %v", err, err)
	}
	if len(ce.Problems) == 0 {
		t.Fatal("*Error lists no problem")
	}
	for _, p := range ce.Problems {
		if p.File != "fuzz.yaml" {
			t.Errorf("problem %q names file %q", p, p.File)
		}
		if p.Warning {
			t.Errorf("a warning is reported as an error: %q", p)
		}
		if strings.TrimSpace(p.Message) == "" {
			t.Errorf("problem without a message: %+v", p)
		}
		if lines := countLines(data); p.Line < 0 || p.Line > lines {
			t.Errorf("problem %q points at line %d of a %d-line file", p, p.Line, lines)
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(ce.Problems) {
		t.Errorf("%d problems printed as %d lines: %q", len(ce.Problems), len(lines), err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "fuzz.yaml") {
			t.Errorf("error line does not start with the file name: %q", l)
		}
	}
}

func checkAccepted(t *testing.T, data []byte, cfg *Config) {
	t.Helper()
	if cfg == nil {
		t.Fatal("Parse returned neither a config nor an error")
	}
	if cfg.Path != "fuzz.yaml" {
		t.Errorf("Path = %q", cfg.Path)
	}
	for _, w := range cfg.Warnings {
		if !w.Warning || w.File != "fuzz.yaml" {
			t.Errorf("warning %+v is not a fuzz.yaml warning", w)
		}
	}
	if _, _, err := net.SplitHostPort(cfg.Server.Listen); err != nil {
		t.Errorf("accepted listen %q: %v", cfg.Server.Listen, err)
	}
	if !strings.HasPrefix(cfg.Server.SCIMBasePath, "/") {
		t.Errorf("accepted scim_base_path %q", cfg.Server.SCIMBasePath)
	}
	if (cfg.Server.TLSCertFile == "") != (cfg.Server.TLSKeyFile == "") {
		t.Errorf("accepted a TLS certificate without its key (or the reverse)")
	}
	if cfg.Admin.Socket == "" || cfg.State.Path == "" {
		t.Errorf("accepted an empty admin.socket or state.path")
	}
	if cfg.SCIM.MaxBodyBytes < 1024 {
		t.Errorf("accepted max_body_bytes %d", cfg.SCIM.MaxBodyBytes)
	}
	if cfg.SCIM.OIDC.Issuer != "" && cfg.SCIM.OIDC.Audience == "" {
		t.Errorf("accepted an OIDC issuer without an audience")
	}
	if e := cfg.Identity.EmailFrom; e != EmailFromUserName && e != EmailFromPrimary {
		t.Errorf("accepted email_from %q", e)
	}
	// api_token_env and api_token_file may both be set: the file wins
	// (TestCloudflareTokenFileWinsOverEnv).
	if b := cfg.Cloudflare.RequestBudget; b < 1 || b > 1200 {
		t.Errorf("accepted request_budget %d", b)
	}
	if _, err := cron.ParseStandard(cfg.Sync.Schedule); err != nil {
		t.Errorf("accepted schedule %q: %v", cfg.Sync.Schedule, err)
	}
	if d := cfg.Sync.Debounce; d < 0 || d > 10*time.Minute {
		t.Errorf("accepted debounce %v", d)
	}
	if m := cfg.Sync.Mode; m != ModeEnforce && m != ModePlanOnly {
		t.Errorf("accepted sync.mode %q", m)
	}
	if u := cfg.Sync.Unmanaged; u != UnmanagedReport && u != UnmanagedRemove {
		t.Errorf("accepted sync.unmanaged %q", u)
	}
	if cfg.Sync.MaxGrantDuration <= 0 {
		t.Errorf("accepted max_grant_duration %v", cfg.Sync.MaxGrantDuration)
	}
	if g := cfg.Sync.Guards; g.MaxRemovals < 0 || !(g.MaxRemovalPercent >= 0 && g.MaxRemovalPercent <= 100) {
		t.Errorf("accepted guards %+v", g)
	}
	for _, e := range cfg.Sync.Protected {
		if !strings.Contains(e, "@") {
			t.Errorf("accepted protected entry %q", e)
		}
	}
	table := cfg.Table()
	for i, m := range cfg.Mappings {
		if _, ok := table.AccountByName(m.Account); !ok {
			t.Errorf("mappings[%d] names undefined account %q", i, m.Account)
		}
		if (m.Group == "") == (m.GroupExternalID == "") {
			t.Errorf("mappings[%d] selects its group by neither or both of group and group_external_id", i)
		}
		if (len(m.Roles) > 0) == (len(m.Policies) > 0) {
			t.Errorf("mappings[%d] has neither or both of roles and policies", i)
		}
		if m.TTL < 0 || m.TTL > cfg.Sync.MaxGrantDuration {
			t.Errorf("mappings[%d] ttl %v outside 0..%v", i, m.TTL, cfg.Sync.MaxGrantDuration)
		}
	}
	// Every key is optional: a file without content means every default.
	if strings.TrimSpace(string(data)) == "" {
		want := Default()
		want.Path = "fuzz.yaml"
		if !reflect.DeepEqual(*cfg, want) {
			t.Errorf("empty file does not give the defaults: %+v", *cfg)
		}
	}
}

// countLines bounds the line numbers a problem may carry. It is loose on
// purpose: YAML also reads UTF-16 and breaks lines at \r, NEL, U+2028 and
// U+2029, but every line break takes at least one byte.
func countLines(data []byte) int {
	return len(data) + 1
}
