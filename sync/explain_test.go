package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

func (e *env) explain(email string, o ExplainOptions) *Explanation {
	e.t.Helper()
	x, err := e.r.Explain(context.Background(), email, o)
	if err != nil {
		e.t.Fatalf("explain %s: %v", email, err)
	}
	return x
}

func explainedAccount(t *testing.T, x *Explanation, name string) ExplainedAccount {
	t.Helper()
	for _, a := range x.Accounts {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("explanation of %s has no account %s", x.Email, name)
	return ExplainedAccount{}
}

func explainedRole(t *testing.T, x *Explanation, acct, name string) ExplainedRole {
	t.Helper()
	for _, r := range explainedAccount(t, x, acct).Roles {
		if r.Role == name {
			return r
		}
	}
	t.Fatalf("explanation of %s in %s has no role %q: %+v", x.Email, acct, name, explainedAccount(t, x, acct).Roles)
	return ExplainedRole{}
}

func roleNames(a ExplainedAccount) []string {
	var out []string
	for _, r := range a.Roles {
		out = append(out, r.Role)
	}
	return out
}

func hasNote(x *Explanation, part string) bool {
	return slices.ContainsFunc(x.Notes, func(n string) bool { return strings.Contains(n, part) })
}

func explainText(t *testing.T, x *Explanation) string {
	t.Helper()
	var b bytes.Buffer
	if err := x.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestExplain(t *testing.T) {
	// min_removals 1: two pending removals trip the percent rule below.
	e := newEnv(t, withGuards("    min_removals: 1\n"))
	alice := e.user("alice@example.com")
	carol := e.user("carol@example.com")
	dave := e.user("dave@example.com")
	bob := e.user("bob@example.com")
	erin := e.user("erin@example.com")
	guard := e.user("breakglass@example.com")
	platform := e.group("platform", carol)
	e.group("cf-deployers", alice, platform, dave, erin, guard)
	e.group("cf-oncall", alice) // ttl 2s
	e.group("cf-log-readers", bob)
	billing := e.roleID(prodID, "Billing")
	e.fake.AddMember(prodID, cftest.Member{Email: "dave@example.com", Roles: []string{billing}})
	e.fake.AddMember(prodID, cftest.Member{Email: "frank@example.com", Roles: []string{billing}})
	e.mustApply(RunOptions{})
	if _, _, err := e.r.Grant(context.Background(), GrantRequest{
		Email: "bob@example.com", Account: "prod", Role: "DNS", For: time.Hour, Reason: "incident 42", Actor: "ops@example.com",
	}); err != nil {
		t.Fatal(err)
	}
	// Someone adds a role to alice by hand; the next full run sees it.
	a, _ := e.fake.Member(prodID, "alice@example.com")
	if _, err := e.cf.UpdateMember(context.Background(), prodID, a.ID, append(slices.Clone(a.Roles), e.roleID(prodID, "Analytics")), nil); err != nil {
		t.Fatal(err)
	}
	e.mustApply(RunOptions{})
	scanned := e.now()
	e.clock.Advance(time.Second)

	t.Run("direct, ttl and drift", func(t *testing.T) {
		e.fake.ResetCounters()
		x := e.explain("Alice@Example.com", ExplainOptions{})
		// Names come from the catalogs the last full run read.
		if c := e.calls(); c.total != 0 {
			t.Errorf("explain from the cache made %s; want none", c)
		}
		if len(x.Users) != 1 || x.Users[0].ID != alice || !x.Users[0].Active || len(x.Notes) != 0 {
			t.Errorf("users %+v notes %q", x.Users, x.Notes)
		}
		prod := explainedAccount(t, x, "prod")
		if prod.Source != SourceCache || prod.ScannedAt == nil || !prod.ScannedAt.Equal(scanned) {
			t.Errorf("prod source %s scanned at %v, want the cache of %s", prod.Source, prod.ScannedAt, scanned)
		}
		if prod.Member == nil || prod.Member.Ownership != OwnedCreated || prod.Member.Status != "pending" {
			t.Errorf("prod member %+v", prod.Member)
		}
		if got := roleNames(prod); !slices.Equal(got, []string{"Administrator", "Analytics", wpa}) {
			t.Errorf("prod roles %v", got)
		}
		w := explainedRole(t, x, "prod", wpa)
		if !w.Has || !w.Should || !w.Managed || w.State != StateGranted || len(w.Reasons) != 1 {
			t.Fatalf("%s: %+v", wpa, w)
		}
		r := w.Reasons[0]
		if r.Kind != ReasonMapping || r.Mapping == nil || *r.Mapping != 0 || r.MappingGroup != "cf-deployers" || r.Account != "prod" ||
			!slices.Equal(r.Path, []string{"cf-deployers"}) || r.Expires != nil {
			t.Errorf("direct reason %+v", r)
		}
		adm := explainedRole(t, x, "prod", "Administrator")
		if !adm.Has || !adm.Should || adm.State != StateGranted || len(adm.Reasons) != 1 {
			t.Fatalf("Administrator: %+v", adm)
		}
		r = adm.Reasons[0]
		wantEnd := cftest.Epoch.Add(2 * time.Second)
		if r.Kind != ReasonMapping || *r.Mapping != 1 || r.TTL != "2s" || r.Expires == nil || !r.Expires.Equal(wantEnd) ||
			r.Start == nil || !r.Start.Equal(cftest.Epoch) || !strings.Contains(r.Text, "until "+stamp(wantEnd)) {
			t.Errorf("ttl reason %+v", r)
		}
		an := explainedRole(t, x, "prod", "Analytics")
		if !an.Has || an.Should || an.Managed || an.State != StateDrift || an.Reasons[0].Kind != ReasonDrift || an.Change != "" {
			t.Errorf("hand-added role: %+v", an)
		}
		if st := explainedAccount(t, x, "staging"); st.Member != nil || len(st.Roles) != 0 {
			t.Errorf("staging %+v", st)
		}
		out := explainText(t, x)
		for _, want := range []string{
			"alice@example.com", "account prod", "(1s old; --live lists it now)",
			"Administrator           yes  yes     granted",
			"Analytics               yes  no      drift",
			"group cf-oncall → mappings[1] (cf-oncall on prod), ttl 2s from " + stamp(cftest.Epoch) + ", until " + stamp(wantEnd) + " (in 1s)",
			"account staging", "not a member",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("text lacks %q:\n%s", want, out)
			}
		}
		t.Logf("\n%s", out)
	})

	t.Run("nested", func(t *testing.T) {
		x := e.explain("carol@example.com", ExplainOptions{})
		w := explainedRole(t, x, "prod", wpa)
		if w.State != StateGranted || len(w.Reasons) != 1 || !slices.Equal(w.Reasons[0].Path, []string{"cf-deployers", "platform"}) {
			t.Fatalf("nested: %+v", w)
		}
		if txt := w.Reasons[0].Text; txt != "group platform, nested in cf-deployers → mappings[0] (cf-deployers on prod)" {
			t.Errorf("nested reason text %q", txt)
		}
	})

	t.Run("temporary grant", func(t *testing.T) {
		x := e.explain("bob@example.com", ExplainOptions{})
		dns := explainedRole(t, x, "prod", "DNS")
		if !dns.Has || !dns.Should || !dns.Managed || dns.State != StateGranted || len(dns.Reasons) != 1 {
			t.Fatalf("DNS: %+v", dns)
		}
		r := dns.Reasons[0]
		end := cftest.Epoch.Add(time.Hour)
		if r.Kind != ReasonGrant || r.Grant == "" || r.GrantReason != "incident 42" || r.Actor != "ops@example.com" ||
			r.Expires == nil || !r.Expires.Equal(end) || r.Start == nil || !r.Start.Equal(cftest.Epoch) ||
			!strings.Contains(r.Text, `by ops@example.com at `+stamp(cftest.Epoch)+`: "incident 42", until `+stamp(end)+" (in 1h)") {
			t.Errorf("grant reason %+v", r)
		}
		pol := explainedAccount(t, x, "staging")
		if len(pol.Roles) != 1 || pol.Roles[0].Role != "Workers Platform (Read-only) on staging-workers" || pol.Roles[0].State != StateGranted {
			t.Errorf("staging policy %+v", pol.Roles)
		}
	})

	t.Run("adopted", func(t *testing.T) {
		x := e.explain("dave@example.com", ExplainOptions{})
		if m := explainedAccount(t, x, "prod").Member; m == nil || m.Ownership != OwnedAdopted || m.Status != "accepted" {
			t.Errorf("member %+v", m)
		}
		b := explainedRole(t, x, "prod", "Billing")
		if !b.Has || b.Should || b.Managed || b.State != StateAdopted || len(b.Reasons) != 1 || b.Reasons[0].Kind != ReasonAdopted {
			t.Errorf("Billing: %+v", b)
		}
		if w := explainedRole(t, x, "prod", wpa); !w.Managed || w.State != StateGranted {
			t.Errorf("%s: %+v", wpa, w)
		}
	})

	t.Run("not in SCIM", func(t *testing.T) {
		x := e.explain("frank@example.com", ExplainOptions{})
		if len(x.Users) != 0 || !hasNote(x, "no SCIM user has this email") {
			t.Errorf("users %+v notes %q", x.Users, x.Notes)
		}
		m := explainedAccount(t, x, "prod").Member
		b := explainedRole(t, x, "prod", "Billing")
		if m == nil || m.Ownership != OwnedNone || b.State != StateDrift || b.Should {
			t.Errorf("member %+v, Billing %+v", m, b)
		}
	})

	t.Run("protected", func(t *testing.T) {
		x := e.explain("breakglass@example.com", ExplainOptions{})
		w := explainedRole(t, x, "prod", wpa)
		if !hasNote(x, "protected") || w.Has || !w.Should || w.State != StateWithheld || w.Withheld != "protected" || w.Change != "add_member" {
			t.Errorf("notes %q, %s: %+v", x.Notes, wpa, w)
		}
	})

	t.Run("no identity email", func(t *testing.T) {
		u, err := e.st.CreateUser(e.now(), store.User{UserName: "gina@example.com", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		x := e.explain("gina@example.com", ExplainOptions{})
		if len(x.Users) != 1 || x.Users[0].ID != u.ID || !hasNote(x, "has no identity email (identity.email_from: userName)") {
			t.Errorf("users %+v notes %q", x.Users, x.Notes)
		}
		if len(explainedAccount(t, x, "prod").Roles) != 0 {
			t.Errorf("roles %+v", explainedAccount(t, x, "prod").Roles)
		}
	})

	t.Run("inactive", func(t *testing.T) {
		e.deactivate(erin)
		x := e.explain("erin@example.com", ExplainOptions{})
		if !hasNote(x, "is inactive") || len(x.Users) != 1 || x.Users[0].Active {
			t.Errorf("users %+v notes %q", x.Users, x.Notes)
		}
		w := explainedRole(t, x, "prod", wpa)
		if !w.Has || w.Should || !w.Managed || w.State != StateToRemove || w.Change != "remove_member" || w.Reasons[0].Kind != ReasonNoSource {
			t.Errorf("%s: %+v", wpa, w)
		}
	})

	t.Run("ttl ended, held back by the guard, then applied", func(t *testing.T) {
		e.clock.Advance(2 * time.Second) // 3s after the join; the ttl is 2s
		// Two removals pending (erin's and this one) of 6 managed grants
		// exceed max_removal_percent 20% (above min_removals 1): the guard
		// holds both back.
		x := e.explain("alice@example.com", ExplainOptions{})
		adm := explainedRole(t, x, "prod", "Administrator")
		if !adm.Has || adm.Should || adm.State != StateWithheld || adm.Change != "expire_grant" ||
			!strings.Contains(adm.Withheld, "max_removal_percent") || len(adm.Reasons) != 1 ||
			adm.Reasons[0].Kind != ReasonEnded || !strings.Contains(adm.Reasons[0].Text, "ended "+stamp(cftest.Epoch.Add(2*time.Second))+" (1s ago)") {
			t.Errorf("ended ttl under a tripped guard: %+v", adm)
		}
		if out := explainText(t, x); !strings.Contains(out, "withheld (guard: 2 removals exceed sync.guards.max_removal_percent 20% of 6 managed grants)") {
			t.Errorf("text:\n%s", out)
		}

		e.targeted([]string{erin}, nil, nil) // one removal alone passes the guard
		x = e.explain("alice@example.com", ExplainOptions{})
		if adm = explainedRole(t, x, "prod", "Administrator"); adm.State != StateToRemove || adm.Change != "expire_grant" || adm.Withheld != "" {
			t.Errorf("ended ttl: %+v", adm)
		}
		e.expiry()
		x = e.explain("alice@example.com", ExplainOptions{})
		adm = explainedRole(t, x, "prod", "Administrator")
		if adm.Has || adm.Should || adm.State != StateEnded {
			t.Errorf("after the expiry run: %+v", adm)
		}
	})

	t.Run("live", func(t *testing.T) {
		c, _ := e.fake.Member(prodID, "carol@example.com")
		if _, err := e.cf.UpdateMember(context.Background(), prodID, c.ID, append(slices.Clone(c.Roles), billing), nil); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(roleNames(explainedAccount(t, e.explain("carol@example.com", ExplainOptions{}), "prod")), "Billing") {
			t.Error("the cache shows a change made after the last scan")
		}
		e.fake.ResetCounters()
		x := e.explain("carol@example.com", ExplainOptions{Live: true})
		if b := explainedRole(t, x, "prod", "Billing"); b.State != StateDrift || explainedAccount(t, x, "prod").Source != SourceLive {
			t.Errorf("live: %+v", b)
		}
		if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != pages(len(e.fake.Members(prodID)))+pages(len(e.fake.Members(stagingID))) {
			t.Errorf("live explain listed %d pages", n)
		}
		if len(e.fake.Writes()) != 0 {
			t.Error("explain wrote to Cloudflare")
		}
		if cache, _ := e.st.CachedMembers(prodID); slices.Contains(cache[store.Fold("carol@example.com")].Keys, "role:"+billing) {
			t.Error("explain --live replaced the member cache: it must write nothing")
		}
	})

	t.Run("json", func(t *testing.T) {
		raw, err := json.Marshal(e.explain("bob@example.com", ExplainOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Email    string `json:"email"`
			Accounts []struct {
				Name  string `json:"name"`
				Roles []struct {
					Role, State string
					Reasons     []map[string]any
				} `json:"roles"`
			} `json:"accounts"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Email != "bob@example.com" || len(doc.Accounts) != 2 || doc.Accounts[0].Roles[0].Role != "DNS" ||
			doc.Accounts[0].Roles[0].Reasons[0]["grant_reason"] != "incident 42" || doc.Accounts[0].Roles[0].Reasons[0]["expires"] == nil {
			t.Errorf("json %s", raw)
		}
	})

	if _, err := e.r.Explain(context.Background(), "not-an-email", ExplainOptions{}); !errors.Is(err, ErrNotEmail) {
		t.Errorf("explain of a non-email: %v", err)
	}
}

func TestExplainWithoutTokenNeedsOneOnceCloudflareWasListed(t *testing.T) {
	e := newEnv(t, withoutToken())
	id := e.user("alice@example.com")
	e.group("cf-deployers", id)
	x := e.explain("alice@example.com", ExplainOptions{})
	w := explainedRole(t, x, "prod", wpa)
	if explainedAccount(t, x, "prod").Source != SourceNone || !x.PlanOnly || w.Has || !w.Should || w.State != StateToAdd {
		t.Errorf("plan-only explain: %+v %+v", explainedAccount(t, x, "prod"), w)
	}
	if !strings.Contains(explainText(t, x), "never listed (no API token)") {
		t.Errorf("text:\n%s", explainText(t, x))
	}

	// A member list a daemon with a token stored holds ids only a token
	// can name: without one, explain says so instead of guessing.
	if err := e.st.ReplaceMemberCache(prodID, []store.CachedMember{{Email: "alice@example.com", MemberID: "m1", Status: "accepted", Keys: []string{"role:0123"}}}, e.now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Explain(context.Background(), "alice@example.com", ExplainOptions{}); !errors.Is(err, ErrNeedToken) {
		t.Errorf("explain without token over a filled cache: %v", err)
	}
}
