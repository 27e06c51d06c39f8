package main

// Issue 16 point 8: text output cannot be forged. A userName with a line
// break split an audit record over two lines; an ANSI sequence or a
// right-to-left override could recolour or reorder what an operator reads.
// Text output escapes every non-printable rune of a value from SCIM or
// Cloudflare; JSON carries the value exactly.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	"github.com/scimflare/scimflare/internal/terminal"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

const (
	// From SCIM (stored before any check at the door, as an older release
	// took it): a forged audit line, a carriage return, a colour and a
	// right-to-left override.
	hostileUser = "eve@example.com\n2026-01-01T00:00:00Z  token  token_revoke  okta\r\x1b[31mRED\u202emoc.elpmaxe"
	// From Cloudflare: a member added by hand.
	hostileMember = "mallory@example.com\n  + add_member forged@example.com\x1b[2J\u202e"
)

// seedHostile stores hostileUser as an active member of cf-deployers.
func seedHostile(t *testing.T, statePath string) {
	t.Helper()
	st, err := store.Open(statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	u, err := st.CreateUser(now, store.User{UserName: hostileUser, Email: hostileUser, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(now, store.Group{DisplayName: "cf-deployers"}, []store.MemberRef{{ID: u.ID, Type: store.MemberUser}}); err != nil {
		t.Fatal(err)
	}
}

// assertPrintable fails when text output holds a rune that does not print
// as itself (other than the line breaks the output itself makes), and
// checks that each value in shown appears escaped.
func assertPrintable(t *testing.T, what, out string, shown ...string) {
	t.Helper()
	for i, r := range out {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Errorf("%s prints %U at byte %d:\n%s", what, r, i, out)
			break
		}
	}
	for _, s := range shown {
		if !strings.Contains(out, terminal.Escape(s)) {
			t.Errorf("%s does not show %q escaped as %s:\n%s", what, s, terminal.Escape(s), out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "2026-01-01T00:00:00Z") || strings.HasPrefix(strings.TrimSpace(l), "+ add_member forged") {
			t.Errorf("%s carries a forged line: %q", what, l)
		}
	}
}

func TestTextOutputEscapesValuesFromSCIMAndCloudflare(t *testing.T) {
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	fake.AddMember(e2eAccount, cftest.Member{Email: hostileMember, Status: "accepted", Roles: []string{fake.RoleID(e2eAccount, "Administrator")}})
	cfg := writeE2EConfig(t, dir, fake, e2eOptions{})
	seedHostile(t, filepath.Join(dir, "state.db"))

	code, out, errOut := runMain("plan", "--config", cfg)
	if code != 0 {
		t.Fatalf("plan: %d %s %s", code, out, errOut)
	}
	assertPrintable(t, "plan", out, hostileUser, hostileMember)

	code, out, errOut = runMain("plan", "--json", "--config", cfg)
	var p struct {
		Accounts []struct{ Changes []struct{ Email string } }
		Drift    []struct{ Email string }
		Identity []struct{ Email string }
	}
	// The identity rule grants the hostile address nothing: it is
	// reported, exactly, not planned.
	if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil || len(p.Drift) != 1 || p.Drift[0].Email != hostileMember ||
		len(p.Accounts) != 1 || len(p.Accounts[0].Changes) != 0 || len(p.Identity) != 1 || p.Identity[0].Email != hostileUser {
		t.Errorf("plan --json must carry the values exactly: %d %v %+v\n%s", code, err, p, errOut)
	}

	// A full run: drift goes to the audit (the hostile user is granted
	// nothing, so nothing of it is audited).
	runMain("apply", "--config", cfg)
	code, out, errOut = runMain("audit", "--config", cfg)
	if code != 0 {
		t.Fatalf("audit: %d %s %s", code, out, errOut)
	}
	assertPrintable(t, "audit", out, hostileMember)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	records := lines[1 : len(lines)-1]
	if want := fmt.Sprintf("%d record(s);", len(records)); !strings.HasPrefix(lines[len(lines)-1], want) {
		t.Errorf("audit printed %d record lines, footer %q: a record was split or merged", len(records), lines[len(lines)-1])
	}
	for _, r := range records {
		if f := strings.Fields(r); len(f) < 2 || strings.Trim(f[0], "0123456789") != "" {
			t.Errorf("audit line does not start with a record number: %q", r)
		}
	}
	code, out, _ = runMain("audit", "--json", "--config", cfg)
	var recs []struct{ Action, Email string }
	if err := json.Unmarshal([]byte(out), &recs); code != 0 || err != nil {
		t.Fatalf("audit --json: %d %v", code, err)
	}
	exact := false
	for _, r := range recs {
		exact = exact || r.Email == hostileMember
	}
	if !exact {
		t.Errorf("audit --json does not carry the member's email exactly: %+v", recs)
	}

	code, out, errOut = runMain("explain", "--user", hostileUser, "--config", cfg)
	if code != 0 {
		t.Fatalf("explain: %d %s %s", code, out, errOut)
	}
	assertPrintable(t, "explain", out, hostileUser)

	code, out, errOut = runMain("report", "access", "--config", cfg)
	if code != 0 {
		t.Fatalf("report access: %d %s %s", code, out, errOut)
	}
	assertPrintable(t, "report access", out, hostileMember)

	_, out, errOut = runMain("grant", "--user", hostileUser, "--account", "prod", "--role", "Administrator", "--for", "1h", "--reason", "INC-1", "--config", cfg)
	assertPrintable(t, "grant", out+errOut, hostileUser)
	code, out, errOut = runMain("status", "--config", cfg)
	if code != 0 {
		t.Fatalf("status: %d %s %s", code, out, errOut)
	}
	assertPrintable(t, "status", out, hostileUser)
}

// TestTextLogLinesEscapeValues: in text format (a terminal's stderr) one
// log record is one line whatever the email holds.
func TestTextLogLinesEscapeValues(t *testing.T) {
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	fake.AddMember(e2eAccount, cftest.Member{Email: hostileMember, Status: "accepted", Roles: []string{fake.RoleID(e2eAccount, "Administrator")}})
	cfgPath := writeE2EConfig(t, dir, fake, e2eOptions{})
	seedHostile(t, filepath.Join(dir, "state.db"))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start within 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(logs.String(), "eve@example.com") {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "time=") {
			t.Errorf("a log line that is not a record (forged or split): %q", l)
		}
	}
	assertPrintable(t, "text log", out)
	if !strings.Contains(out, `eve@example.com\n2026-01-01T00:00:00Z`) {
		t.Errorf("the log does not show the userName escaped:\n%s", out)
	}
}
