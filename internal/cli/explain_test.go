package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/settings"
	"github.com/scimflare/scimflare/store"
	syncer "github.com/scimflare/scimflare/sync"
)

// TestExplainCommandOffline runs explain the way the CLI does without a
// daemon and without a Cloudflare token: on the state file, plan-only.
func TestExplainCommandOffline(t *testing.T) {
	cfg, err := config.Parse("explain.yaml", []byte(`
accounts:
  - {name: prod, id: 0123456789abcdef0123456789abcdef, environment: production}
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [DNS]
    ttl: 12h
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	u, err := st.CreateUser(now, store.User{UserName: "alice@example.com", Email: "alice@example.com", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	team, err := st.CreateGroup(now, store.Group{DisplayName: "platform"}, []store.MemberRef{{ID: u.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(now, store.Group{DisplayName: "cf-deployers"}, []store.MemberRef{{ID: team.ID, Type: store.MemberGroup}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(now, store.Group{DisplayName: "cf-oncall"}, []store.MemberRef{{ID: u.ID}}); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now.Add(time.Hour) }
	rec, err := syncer.New(syncer.Options{Settings: settings.Reconciler(cfg), State: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Config: cfg, Store: st, Now: clock, Reconciler: rec}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), env, args, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := run("explain", "--user", "alice@example.com")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"alice@example.com, as of 2026-03-02T11:00:00Z",
		"note: plan-only",
		"Cloudflare: never listed (no API token)",
		"ROLE                    HAS  SHOULD  STATE   WHY",
		"DNS                     no   yes     to_add  group cf-oncall → mappings[1] (cf-oncall on prod), ttl 12h from 2026-03-02T10:00:00Z, until 2026-03-02T22:00:00Z (in 11h)",
		"Workers Platform Admin  no   yes     to_add  group platform, nested in cf-deployers → mappings[0] (cf-deployers on prod)",
		"next reconcile: add_member",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = run("explain", "--user", "alice@example.com", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var x syncer.Explanation
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(x.Accounts) != 1 || len(x.Accounts[0].Roles) != 2 || x.Accounts[0].Roles[1].Reasons[0].Path[1] != "platform" || !x.PlanOnly {
		t.Errorf("--json: %s", out)
	}

	for _, tc := range []struct{ args, want string }{
		{"explain", "explain: --user EMAIL is required"},
		{"explain --user nobody", `explain "nobody": not an email address`},
		{"explain --user a@b --bogus", "flag provided but not defined: -bogus"},
	} {
		code, out, errOut := run(strings.Fields(tc.args)...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
