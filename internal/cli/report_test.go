package cli

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/plan"
)

// memberReason and grantReason are a change's reason as the reconciler
// words it (plan.Reason.String), which the report parses back out of
// records written before they carried their sources as data.
func memberReason(index int, until time.Time, path ...string) string {
	return plan.Reason{Kind: plan.ReasonMapping, Group: path[0], Path: path, MappingIndex: index, Expires: until}.String()
}

func grantReason(id string, until time.Time) string {
	return plan.Reason{Kind: plan.ReasonGrant, GrantID: id, MappingIndex: -1, Expires: until}.String()
}

func (te *testEnv) user(email string) string {
	te.t.Helper()
	u, err := te.Store.CreateUser(t0.Add(-72*time.Hour), store.User{UserName: email, Email: email, Active: true})
	if err != nil {
		te.t.Fatal(err)
	}
	return u.ID
}

func (te *testEnv) held(email, acct, memberID, status string, managed, found, keys []string) {
	te.t.Helper()
	err := te.Store.Commit(store.SyncCommit{
		PutLedger: []store.LedgerEntry{{AccountID: acct, Email: email, MemberID: memberID, Managed: managed, Found: found, UpdatedAt: t0.Add(-time.Hour)}},
		PutCache:  []store.CachedMember{{AccountID: acct, Email: email, MemberID: memberID, Status: status, Keys: keys}},
	})
	if err != nil {
		te.t.Fatal(err)
	}
}

// accessFixture: alice (group member, one adopted and one drift role), bob
// (temporary grant, invite pending), dave (managed but no longer desired),
// and carol who held access between 40h and 20h ago.
func accessFixture(t *testing.T) *testEnv {
	te := newEnv(t, baseYAML)
	alice := te.user("alice@example.com")
	te.user("bob@example.com")
	te.user("dave@example.com")
	if _, err := te.Store.CreateGroup(t0.Add(-50*time.Hour), store.Group{DisplayName: "cf-deployers"}, []store.MemberRef{{ID: alice, Type: store.MemberUser}}); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Store.PutGrant(store.Grant{ID: "g-1", Email: "bob@example.com", AccountID: prodID, Role: "Administrator",
		Start: t0.Add(-time.Hour), End: t0.Add(2 * time.Hour), Reason: "incident", Actor: "grant"}); err != nil {
		t.Fatal(err)
	}
	wpa, admin := "role:Workers Platform Admin", "role:Administrator"
	te.held("alice@example.com", prodID, "m-a", "accepted", []string{wpa}, []string{"role:Billing"}, []string{"role:Billing", "role:DNS", wpa})
	te.held("bob@example.com", prodID, "m-b", "pending", []string{admin}, nil, []string{admin})
	te.held("dave@example.com", prodID, "m-d", "accepted", []string{wpa}, nil, []string{wpa})
	te.audit(
		store.AuditRecord{Time: t0.Add(-48 * time.Hour), Actor: "idp-push", Action: "update_roles", AccountID: prodID, Email: "alice@example.com",
			Before: []string{"Billing"}, After: []string{"Billing", "Workers Platform Admin"}, Reason: memberReason(0, time.Time{}, "cf-deployers"), Privileged: true},
		store.AuditRecord{Time: t0.Add(-40 * time.Hour), Actor: "idp-push", Action: "add_member", AccountID: prodID, Email: "carol@example.com",
			After: []string{"Administrator"}, Reason: memberReason(1, t0.Add(-28*time.Hour), "cf-oncall"), Privileged: true},
		store.AuditRecord{Time: t0.Add(-30 * time.Hour), Actor: "schedule", Action: "drift", AccountID: prodID, Email: "alice@example.com",
			Before: []string{"DNS"}, Reason: "found in Cloudflare but not granted by scimflare"},
		store.AuditRecord{Time: t0.Add(-28 * time.Hour), Actor: "expiry", Action: "expire_grant", AccountID: prodID, Email: "carol@example.com",
			Before: []string{"Administrator"}, Reason: "grant from cf-oncall (mappings[1]) ended"},
		store.AuditRecord{Time: t0.Add(-5 * time.Hour), Actor: "idp-push", Action: "add_member", AccountID: prodID, Email: "dave@example.com",
			After: []string{"Workers Platform Admin"}, Reason: memberReason(0, time.Time{}, "cf-deployers"), Privileged: true},
		store.AuditRecord{Time: t0.Add(-time.Hour), Actor: "grant", Action: "add_member", AccountID: prodID, Email: "bob@example.com",
			After: []string{"Administrator"}, Reason: grantReason("g-1", t0.Add(2*time.Hour)), Privileged: true},
	)
	return te
}

func readCSV(t *testing.T, s string) []string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, s)
	}
	var lines []string
	for _, r := range recs {
		lines = append(lines, strings.Join(r, "|"))
	}
	return lines
}

func TestReportAccessNow(t *testing.T) {
	te := accessFixture(t)
	code, out, errOut := te.run("report", "access", "--csv")
	if code != 0 {
		t.Fatalf("report access: %d %s", code, errOut)
	}
	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	want := []string{
		"user|account|role|source|granted_at|expires_at",
		"alice@example.com|prod|Billing|adopted|" + ts(-48*time.Hour) + "|",
		"alice@example.com|prod|DNS|drift|" + ts(-30*time.Hour) + "|",
		"alice@example.com|prod|Workers Platform Admin|group cf-deployers|" + ts(-48*time.Hour) + "|",
		"bob@example.com|prod|Administrator|grant g-1 (invite pending)|" + ts(-time.Hour) + "|" + ts(2*time.Hour),
		"dave@example.com|prod|Workers Platform Admin|" + SourceUndesired + "|" + ts(-5*time.Hour) + "|",
	}
	if got := readCSV(t, out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("report access --csv:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	code, out, _ = te.run("report", "access")
	if code != 0 || !strings.Contains(out, "USER") || !strings.Contains(out, "5 grant(s)") {
		t.Errorf("report access (text): %d\n%s", code, out)
	}
}

func TestReportAccessAtRebuildsFromAudit(t *testing.T) {
	te := accessFixture(t)
	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	code, out, errOut := te.run("report", "access", "--at", "30h", "--csv")
	if code != 0 {
		t.Fatalf("report access --at: %d %s", code, errOut)
	}
	want := []string{
		"user|account|role|source|granted_at|expires_at",
		"alice@example.com|prod|Billing|adopted|" + ts(-48*time.Hour) + "|",
		"alice@example.com|prod|DNS|drift|" + ts(-30*time.Hour) + "|",
		"alice@example.com|prod|Workers Platform Admin|group cf-deployers|" + ts(-48*time.Hour) + "|",
		"carol@example.com|prod|Administrator|group cf-oncall|" + ts(-40*time.Hour) + "|" + ts(-28*time.Hour),
	}
	if got := readCSV(t, out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("report access --at 30h:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// After carol's expiry and before bob's grant.
	_, out, _ = te.run("report", "access", "--at", ts(-2*time.Hour), "--csv")
	got := strings.Join(readCSV(t, out), "\n")
	if strings.Contains(got, "carol") || strings.Contains(got, "bob") || !strings.Contains(got, "dave@example.com|prod|Workers Platform Admin|group cf-deployers") {
		t.Errorf("report access 2h ago:\n%s", got)
	}
}

func TestParseReason(t *testing.T) {
	until := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in, src string
		end     time.Time
	}{
		{memberReason(0, time.Time{}, "cf-deployers"), "group cf-deployers", time.Time{}},
		{memberReason(3, until, "outer", "inner"), "group outer > inner", until},
		// Several reasons, as a change lists them.
		{grantReason("g-abc", until) + "; " + memberReason(1, time.Time{}, "ops"), "grant g-abc, group ops", time.Time{}},
		{grantReason("g-abc", until) + "; " + memberReason(1, until.Add(time.Hour), "ops"), "grant g-abc, group ops", until.Add(time.Hour)},
		{"something  else", "something else", time.Time{}},
	} {
		src, end := parseReason(tc.in)
		if src != tc.src || !end.Equal(tc.end) {
			t.Errorf("parseReason(%q) = %q %v, want %q %v", tc.in, src, end, tc.src, tc.end)
		}
	}
}
