package cli

import (
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

// A record that carries its sources as data is read from the data, role by
// role, whatever its prose says; a record written before (no sources) is
// still read from its reason.
func TestReplayAuditReadsSourcesAsData(t *testing.T) {
	te := newEnv(t, baseYAML)
	until := t0.Add(3 * time.Hour)
	if err := te.Store.AppendAudit(
		store.AuditRecord{Time: t0, Actor: "idp-push", Action: "add_member", AccountID: prodID, Email: "alice@example.com",
			After: []string{"Administrator", "Workers Platform Admin"}, Reason: "prose nobody parses", Privileged: true,
			Sources: []store.AuditSource{
				{Role: "Administrator", Kind: "mapping", Group: "cf-oncall", Path: []string{"cf-oncall"}, MappingIndex: 1, Expires: until},
				{Role: "Workers Platform Admin", Kind: "mapping", Group: "cf-deployers", Path: []string{"cf-deployers", "platform"}},
				{Role: "Workers Platform Admin", Kind: "grant", GrantID: "g-abc", MappingIndex: -1, Expires: until},
			}},
		store.AuditRecord{Time: t0, Actor: "idp-push", Action: "add_member", AccountID: prodID, Email: "bob@example.com",
			After: []string{"Workers Platform Admin"}, Reason: memberReason(0, time.Time{}, "cf-deployers"), Privileged: true},
	); err != nil {
		t.Fatal(err)
	}
	h, err := ReplayAudit(te.Store, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"alice@example.com/Administrator":          {"group cf-oncall", until.UTC().Format(time.RFC3339)},
		"alice@example.com/Workers Platform Admin": {"group cf-deployers > platform, grant g-abc", ""},
		"bob@example.com/Workers Platform Admin":   {"group cf-deployers", ""},
	}
	rows := h.Rows(te.Config)
	if len(rows) != len(want) {
		t.Fatalf("rows %+v, want %d", rows, len(want))
	}
	for _, r := range rows {
		w, ok := want[r.Email+"/"+r.Role]
		exp := ""
		if !r.ExpiresAt.IsZero() {
			exp = r.ExpiresAt.UTC().Format(time.RFC3339)
		}
		if !ok || r.Source != w[0] || exp != w[1] {
			t.Errorf("row %s %s: source %q expires %q, want %q %q", r.Email, r.Role, r.Source, exp, w[0], w[1])
		}
	}
}
