package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/store"
	syncer "github.com/scimflare/scimflare/sync"
)

const (
	prodID    = "0123456789abcdef0123456789abcdef"
	stagingID = "fedcba9876543210fedcba9876543210"
)

var t0 = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)

const baseYAML = `cloudflare:
  api_token_env: SCIMFLARE_CLI_TEST_NO_TOKEN
sync:
  max_grant_duration: 60d
  protected: [breakglass@example.com]
accounts:
  - name: prod
    id: 0123456789abcdef0123456789abcdef
    environment: production
    grant_shape: roles
  - name: staging
    id: fedcba9876543210fedcba9876543210
    environment: staging
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
    ttl: 12h
`

type testEnv struct {
	*Env
	t   *testing.T
	now time.Time
	// bolt is Env.Store as the bbolt file it is, for the tests that reach
	// below the Backend interface (tampering, raw token writes).
	bolt *store.BoltStore
}

// newEnv opens a real state file and a plan-only reconciler (no token).
func newEnv(t *testing.T, yaml string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	yaml = "state:\n  path: " + filepath.Join(dir, "state.db") + "\nadmin:\n  socket: " + filepath.Join(dir, "admin.sock") + "\n" + yaml
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cfg.State.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	te := &testEnv{t: t, now: t0, bolt: st}
	rec, err := syncer.New(syncer.Options{Config: cfg, State: st, Now: func() time.Time { return te.now }})
	if err != nil {
		t.Fatal(err)
	}
	te.Env = &Env{Config: cfg, Store: st, Now: func() time.Time { return te.now }, Reconciler: rec}
	return te
}

func (te *testEnv) run(args ...string) (int, string, string) {
	te.t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), te.Env, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (te *testEnv) audit(recs ...store.AuditRecord) {
	te.t.Helper()
	if err := te.Store.AppendAudit(recs...); err != nil {
		te.t.Fatal(err)
	}
}

func TestParseWhen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"2026-03-01T10:00:00Z", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), false},
		{"2026-03-01", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), false},
		{"24h", t0.Add(-24 * time.Hour), false},
		{"90d", t0.AddDate(0, 0, -90), false},
		{"yesterday", time.Time{}, true},
		{"-5h", time.Time{}, true},
	} {
		got, err := parseWhen("--since", tc.in, t0)
		if (err != nil) != tc.bad || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestAuditFiltersAndJSON(t *testing.T) {
	te := newEnv(t, baseYAML)
	te.audit(
		store.AuditRecord{Time: t0.Add(-48 * time.Hour), Actor: "idp-push", Action: "add_member", AccountID: prodID, Email: "alice@example.com", After: []string{"Workers Platform Admin"}, Reason: "member of cf-deployers (mappings[0])", Privileged: true},
		store.AuditRecord{Time: t0.Add(-2 * time.Hour), Actor: "grant", Action: "grant", AccountID: prodID, Email: "bob@example.com", After: []string{"Administrator"}, Reason: "temporary grant g-1 until 2026-04-01T14:00:00Z: incident", Privileged: true},
		store.AuditRecord{Time: t0.Add(-1 * time.Hour), Actor: "schedule", Action: "remove_member", AccountID: stagingID, Email: "alice@example.com", Before: []string{"Billing"}},
	)
	code, out, errOut := te.run("audit", "--since", "24h")
	if code != 0 || strings.Contains(out, "add_member") || !strings.Contains(out, "grant (!)") || !strings.Contains(out, "2 record(s)") {
		t.Errorf("audit --since 24h: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = te.run("audit", "--user", "ALICE@example.com", "--account", "prod")
	if code != 0 || !strings.Contains(out, "1 record(s)") || !strings.Contains(out, "[] -> [Workers Platform Admin]") {
		t.Errorf("audit --user --account: %d\n%s", code, out)
	}
	code, out, _ = te.run("audit", "--until", t0.Add(-90*time.Minute).Format(time.RFC3339), "--json")
	var recs []auditJSON
	if err := json.Unmarshal([]byte(out), &recs); err != nil || code != 0 {
		t.Fatalf("audit --json: %d %v\n%s", code, err, out)
	}
	if len(recs) != 2 || recs[1].Account != "prod" || recs[1].AccountID != prodID || !recs[1].Privileged || recs[1].PrevHash != recs[0].Hash {
		t.Errorf("audit --json records = %+v", recs)
	}
	if code, _, errOut := te.run("audit", "--since", "soon"); code != 1 || !strings.Contains(errOut, `--since "soon"`) {
		t.Errorf("bad --since: %d %q", code, errOut)
	}
}

func TestAuditVerifyNamesTheEditedRecord(t *testing.T) {
	te := newEnv(t, baseYAML)
	for i := range 3 {
		te.audit(store.AuditRecord{Time: t0.Add(time.Duration(i) * time.Minute), Actor: "schedule", Action: "add_member", AccountID: prodID, Email: "alice@example.com", After: []string{"Administrator"}})
	}
	code, out, _ := te.run("audit", "verify")
	if code != 0 || !strings.Contains(out, "intact: 3 record(s)") {
		t.Fatalf("verify of an intact trail: %d %s", code, out)
	}
	// Someone with the file edits one byte of record 2: Administrator -> Bdministrator.
	err := te.bolt.DB().Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("sync/audit"))
		k := binary.BigEndian.AppendUint64(nil, 2)
		v := bytes.Clone(b.Get(k))
		i := bytes.Index(v, []byte("Administrator"))
		v[i] = 'B'
		return b.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := te.run("audit", "verify")
	if code != 1 || !strings.Contains(errOut, "audit record 2 was altered") || out != "" {
		t.Errorf("verify after an edit: exit %d, stdout %q, stderr %q; want exit 1 naming record 2", code, out, errOut)
	}
}

func TestTokenCommandsAreAudited(t *testing.T) {
	te := newEnv(t, baseYAML)
	if code, _, errOut := te.run("token", "create", "--name", "okta", "--ttl", "90d"); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := te.run("token", "revoke", "okta"); code != 0 {
		t.Fatal(errOut)
	}
	var got []store.AuditRecord
	_ = te.Store.Audit(time.Time{}, func(r store.AuditRecord) bool { got = append(got, r); return true })
	if len(got) != 2 || got[0].Actor != "token" || got[0].Action != "token_create" || !got[0].Privileged ||
		got[1].Action != "token_revoke" || !strings.Contains(got[1].Reason, `"okta"`) {
		t.Fatalf("token audit = %+v", got)
	}
	for _, r := range got {
		if strings.Contains(r.Reason, "scimflare_") || len(r.Reason) > 200 {
			t.Errorf("token audit record may carry the secret: %q", r.Reason)
		}
	}
}

func TestLint(t *testing.T) {
	yaml := strings.Replace(baseYAML, "    ttl: 12h\n", "    ttl: 45d\n", 1)
	yaml = strings.Replace(yaml, "  protected: [breakglass@example.com]\n", "", 1)
	te := newEnv(t, yaml)
	if _, err := te.Store.CreateGroup(t0, store.Group{DisplayName: "CF-Deployers"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := te.bolt.PutToken(store.Token{Name: "old", Hash: []byte("h"), CreatedAt: t0.AddDate(0, 0, -120), ExpiresAt: t0.AddDate(0, 0, 30)}); err != nil {
		t.Fatal(err)
	}
	if err := te.bolt.PutToken(store.Token{Name: "new", Hash: []byte("h"), CreatedAt: t0.AddDate(0, 0, -10), ExpiresAt: t0.AddDate(0, 0, 80)}); err != nil {
		t.Fatal(err)
	}
	ws, notes, err := Lint(te.Config, te.Store, t0)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, w := range ws {
		lines = append(lines, w.Path+": "+w.Message)
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`mappings[1].ttl: ttl 1080h0m0s on role "Administrator" is longer than 30 days`,
		"accounts[0]: production account prod has no protected member",
		`mappings[1].group: no SCIM group is called "cf-oncall"`,
		`SCIM token "old" is 120 days old`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("lint lacks %q; got:\n%s", want, all)
		}
	}
	if len(ws) != 4 || len(notes) != 0 {
		t.Errorf("lint = %d warnings %v, notes %v; want exactly the 4 above", len(ws), all, notes)
	}
	// Without the state only the config-only checks run, and it says so.
	ws, notes, _ = Lint(te.Config, nil, t0)
	if len(ws) != 2 || len(notes) != 1 {
		t.Errorf("lint without state: %v %v", ws, notes)
	}
}

func TestLintProtectedMemberFromLastListing(t *testing.T) {
	te := newEnv(t, baseYAML)
	ws, notes, _ := Lint(te.Config, te.Store, t0)
	if len(ws) != 2 || len(notes) != 1 || !strings.Contains(notes[0], "never listed") { // the two groups are unknown
		t.Fatalf("before any listing: %v %v", ws, notes)
	}
	if err := te.Store.ReplaceMemberCache(prodID, []store.CachedMember{{Email: "alice@example.com", MemberID: "m1"}}, t0); err != nil {
		t.Fatal(err)
	}
	ws, _, _ = Lint(te.Config, te.Store, t0)
	if len(ws) != 3 || !strings.Contains(ws[0].Message, "none of sync.protected was a member") {
		t.Fatalf("listing without breakglass: %v", ws)
	}
	if err := te.Store.ReplaceMemberCache(prodID, []store.CachedMember{{Email: "BreakGlass@example.com", MemberID: "m0"}}, t0); err != nil {
		t.Fatal(err)
	}
	if ws, _, _ = Lint(te.Config, te.Store, t0); len(ws) != 2 {
		t.Fatalf("listing with breakglass: %v", ws)
	}
}

func TestValidateCommandExitCodes(t *testing.T) {
	te := newEnv(t, baseYAML)
	code, out, errOut := te.run("validate", "--config", te.Config.Path)
	if code != 0 || !strings.Contains(out, "is valid") || !strings.Contains(errOut, `warning: `) || !strings.Contains(errOut, `no SCIM group is called "cf-deployers"`) {
		t.Errorf("validate with warnings: %d\n%s%s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(baseYAML, "account: prod", "account: nowhere", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = te.run("validate", "--config", bad)
	if code != 1 || !strings.Contains(errOut, `account "nowhere" is not defined`) {
		t.Errorf("validate with an error: %d %s", code, errOut)
	}
	code, _, errOut = te.run("validate", "--config", te.Config.Path, "--online")
	if code != 1 || !strings.Contains(errOut, "needs a Cloudflare API token") {
		t.Errorf("validate --online without a token: %d %s", code, errOut)
	}
}

// Two active SCIM users that resolve to one Cloudflare email are a
// conflict validate reports; a deactivated one and a look-alike are not.
func TestLintSharedEmail(t *testing.T) {
	te := newEnv(t, baseYAML)
	for _, u := range []store.User{
		{UserName: "a1", Email: "shared@example.com", Active: true},
		{UserName: "a2", Email: "Shared@Example.com", Active: true},
		{UserName: "a3", Email: "shared@example.com", Active: false},
		{UserName: "a4", Email: "İshared@example.com", Active: true},
		{UserName: "a5", Email: "solo@example.com", Active: true},
	} {
		if _, err := te.Store.CreateUser(t0, u); err != nil {
			t.Fatal(err)
		}
	}
	ws, _, err := Lint(te.Config, te.Store, t0)
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	for _, w := range ws {
		if w.Path == "identity.email_from" {
			shared = append(shared, w.Message)
		}
	}
	if len(shared) != 1 || !strings.Contains(shared[0], "2 active SCIM users") || !strings.Contains(shared[0], "shared@example.com") {
		t.Fatalf("shared-email warnings %q", shared)
	}
}

func TestLoadReloadAuditsBothOutcomes(t *testing.T) {
	te := newEnv(t, baseYAML)
	raw, err := os.ReadFile(te.Config.Path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(te.Config.Path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	records := func() []store.AuditRecord {
		var out []store.AuditRecord
		_ = te.Store.Audit(time.Time{}, func(r store.AuditRecord) bool { out = append(out, r); return true })
		return out
	}
	write(string(raw) + "  - group: typo\n    account: nowhere\n    roles: [Billing]\n")
	next, _, err := LoadReload(te.Store, te.Config, t0, "SIGHUP")
	if !errors.Is(err, ErrReloadRejected) || next != nil || !strings.Contains(err.Error(), `account "nowhere"`) {
		t.Fatalf("bad config: %v %v", next, err)
	}
	write(strings.Replace(string(raw), "state.db", "other.db", 1))
	if _, _, err := LoadReload(te.Store, te.Config, t0, "scimflare reload"); !errors.Is(err, ErrReloadRejected) || !strings.Contains(err.Error(), "state.path changed") {
		t.Fatalf("moved state file: %v", err)
	}
	write(strings.Replace(string(raw), "  - group: cf-oncall\n    account: prod\n    roles: [Administrator]\n    ttl: 12h\n", "", 1))
	next, summary, err := LoadReload(te.Store, te.Config, t0, "scimflare reload")
	if err != nil || len(next.Mappings) != 1 || !strings.Contains(summary, "0 mapping(s) added, 1 removed") {
		t.Fatalf("good config: %v %q %v", next, summary, err)
	}
	recs := records()
	if len(recs) != 3 {
		t.Fatalf("audit = %+v, want 3 records", recs)
	}
	if recs[0].Action != ActionConfigReloadRejected || recs[0].Actor != "reload" || !strings.Contains(recs[0].Reason, "SIGHUP") || !strings.Contains(recs[0].Reason, `account "nowhere" is not defined`) {
		t.Errorf("rejected reload record = %+v", recs[0])
	}
	if recs[2].Action != ActionConfigReload || recs[2].Privileged || len(recs[2].Before) != 1 || recs[2].Before[0] != "group cf-oncall -> prod: Administrator (ttl 12h0m0s)" {
		t.Errorf("accepted reload record = %+v", recs[2])
	}
	if code, _, errOut := te.run("reload"); code != 1 || !strings.Contains(errOut, "no scimflare daemon is running") {
		t.Errorf("reload without a daemon: %d %s", code, errOut)
	}
}

func TestBackupCommand(t *testing.T) {
	te := newEnv(t, baseYAML)
	te.user("alice@example.com")
	dest := filepath.Join(t.TempDir(), "backup.db")
	code, out, errOut := te.run("backup", "--out", dest)
	if code != 0 || !strings.Contains(out, "consistency check passed") {
		t.Fatalf("backup: %d %s %s", code, out, errOut)
	}
	if err := store.CheckFile(dest, 0); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := te.run("backup", "--out", te.bolt.Path()); code != 1 || !strings.Contains(errOut, "live state file") {
		t.Errorf("backup over the state file: %d %s", code, errOut)
	}
	te.Daemon = true
	if code, _, errOut := te.run("backup", "--out", "relative.db"); code != 1 || !strings.Contains(errOut, "absolute path") {
		t.Errorf("relative path inside the daemon: %d %s", code, errOut)
	}
}

func TestStatusShowsTokenAgesAndOfflineSchedule(t *testing.T) {
	te := newEnv(t, baseYAML)
	if err := te.bolt.PutToken(store.Token{Name: "okta", Hash: []byte("h"), CreatedAt: t0.AddDate(0, 0, -100), ExpiresAt: t0.AddDate(0, 0, 5)}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := te.run("status")
	if code != 0 {
		t.Fatalf("status: %d %s", code, errOut)
	}
	for _, want := range []string{"okta  age 100d  expires 2026-04-06T12:00:00Z (in 5d)  (older than 90 days: rotate)", "no daemon running (sync.schedule @every 5m would fire at", "guard", "pending expiries"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
