package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/store"
)

const reloadYAML = `cloudflare:
  api_token_env: SCIMFLARE_RELOAD_TEST_NO_TOKEN
accounts:
  - name: prod
    id: 0123456789abcdef0123456789abcdef
    environment: production
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
    ttl: 12h
`

// TestLoadReloadAuditsBothOutcomes: a bad file, or one that moves the
// state file, is rejected and audited with the reason; a good one is
// audited with the mappings it removed and added.
func TestLoadReloadAuditsBothOutcomes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	raw := "state:\n  path: " + filepath.Join(dir, "state.db") + "\nadmin:\n  socket: " + filepath.Join(dir, "admin.sock") + "\n" + reloadYAML
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(raw)
	cur, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cur.State.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

	write(raw + "  - group: typo\n    account: nowhere\n    roles: [Billing]\n")
	next, _, err := loadReload(st, cur, now, "SIGHUP")
	if !errors.Is(err, ErrReloadRejected) || next != nil || !strings.Contains(err.Error(), `account "nowhere"`) {
		t.Fatalf("bad config: %v %v", next, err)
	}
	write(strings.Replace(raw, "state.db", "other.db", 1))
	if _, _, err := loadReload(st, cur, now, "scimflare reload"); !errors.Is(err, ErrReloadRejected) || !strings.Contains(err.Error(), "state.path changed") {
		t.Fatalf("moved state file: %v", err)
	}
	write(strings.Replace(raw, "  - group: cf-oncall\n    account: prod\n    roles: [Administrator]\n    ttl: 12h\n", "", 1))
	next, summary, err := loadReload(st, cur, now, "scimflare reload")
	if err != nil || len(next.Mappings) != 1 || !strings.Contains(summary, "0 mapping(s) added, 1 removed") {
		t.Fatalf("good config: %v %q %v", next, summary, err)
	}
	var recs []store.AuditRecord
	if err := st.Audit(time.Time{}, func(r store.AuditRecord) bool { recs = append(recs, r); return true }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("audit = %+v, want 3 records", recs)
	}
	if recs[0].Action != ActionConfigReloadRejected || recs[0].Actor != "reload" || !strings.Contains(recs[0].Reason, "SIGHUP") || !strings.Contains(recs[0].Reason, `account "nowhere" is not defined`) {
		t.Errorf("rejected reload record = %+v", recs[0])
	}
	if recs[2].Action != ActionConfigReload || recs[2].Privileged || len(recs[2].Before) != 1 || recs[2].Before[0] != "group cf-oncall -> prod: Administrator (ttl 12h0m0s)" {
		t.Errorf("accepted reload record = %+v", recs[2])
	}
}
