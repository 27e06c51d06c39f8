package cftest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

const acct = "fedcba9876543210fedcba9876543210"

type answer struct {
	status int
	header http.Header
	env    struct {
		Success bool `json:"success"`
		Errors  []struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Result     json.RawMessage `json:"result"`
		ResultInfo struct {
			Page       int `json:"page"`
			PerPage    int `json:"per_page"`
			Count      int `json:"count"`
			TotalCount int `json:"total_count"`
		} `json:"result_info"`
	}
	raw []byte
}

func send(t *testing.T, srv *cftest.Server, method, path, body, token string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var a answer
	a.status, a.header = resp.StatusCode, resp.Header
	raw, _ := io.ReadAll(resp.Body)
	a.raw = raw
	if err := json.Unmarshal(raw, &a.env); err != nil {
		t.Fatalf("%s %s: answer is not an envelope: %s", method, path, raw)
	}
	return a
}

func TestPerPageOver50Rejected(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, AllowInvalid: true})
	a := send(t, srv, "GET", "/accounts/"+acct+"/members?per_page=100", "", "x")
	if a.status != 400 || a.env.Success || len(a.env.Errors) != 1 || a.env.Errors[0].Code != cftest.CodeInvalidRequest {
		t.Fatalf("answer = %d %+v", a.status, a.env)
	}
	if n := len(srv.InvalidRequests()); n != 1 {
		t.Fatalf("invalid requests recorded = %d, want 1", n)
	}
	a = send(t, srv, "GET", "/accounts/"+acct+"/members?per_page=50", "", "x")
	if a.status != 200 || !a.env.Success || a.env.ResultInfo.PerPage != 50 {
		t.Fatalf("per_page=50: %d %+v", a.status, a.env)
	}
	if n := len(srv.InvalidRequests()); n != 1 {
		t.Fatalf("a valid request was recorded as invalid")
	}
}

func TestInvalidBodiesRecorded(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, AllowInvalid: true})
	role := srv.RoleID(acct, "Administrator")
	pg, rg := srv.PermissionGroupID(acct, "DNS"), srv.ResourceGroupID(acct, "prod-workers")
	policies := `[{"access":"allow","permission_groups":[{"id":"` + pg + `"}],"resource_groups":[{"id":"` + rg + `"}]}]`
	for _, body := range []string{
		`{"roles":["` + role + `"]}`,                       // no email
		`{"email":"a@example.com","roles":"` + role + `"}`, // roles not an array
		`not json`,
	} {
		if a := send(t, srv, "POST", "/accounts/"+acct+"/members", body, "x"); a.status != 400 {
			t.Errorf("POST %s: status %d, want 400", body, a.status)
		}
	}
	if n := len(srv.InvalidRequests()); n != 3 {
		t.Errorf("invalid requests = %d, want 3", n)
	}
	if n := len(srv.Members(acct)); n != 0 {
		t.Errorf("invalid requests created %d members", n)
	}
	// The valid shapes pass.
	for _, body := range []string{
		`{"email":"r@example.com","roles":["` + role + `"]}`,
		`{"email":"p@example.com","policies":` + policies + `}`,
	} {
		if a := send(t, srv, "POST", "/accounts/"+acct+"/members", body, "x"); a.status != 200 {
			t.Errorf("POST %s: %d %+v", body, a.status, a.env.Errors)
		}
	}
	if n := len(srv.InvalidRequests()); n != 3 {
		t.Errorf("valid creates recorded as invalid")
	}
}

func TestMembersStateAndDuplicates(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	role := srv.RoleID(acct, "DNS")
	srv.AddMember(acct, cftest.Member{Email: "b@example.com", Roles: []string{role}})
	srv.AddMember(acct, cftest.Member{Email: "a@example.com", Roles: []string{role}, Status: "pending"})
	if ms := srv.Members(acct); len(ms) != 2 || ms[0].Email != "a@example.com" || ms[0].Status != "pending" || ms[1].Status != "accepted" {
		t.Fatalf("members = %+v", ms)
	}
	// A duplicate invite is 400 with a 1xxx code and "already" (1d).
	a := send(t, srv, "POST", "/accounts/"+acct+"/members", `{"email":"A@example.com","roles":["`+role+`"]}`, "x")
	if a.status != http.StatusBadRequest || a.env.Errors[0].Code/1000 != 1 || !strings.Contains(a.env.Errors[0].Message, "already") {
		t.Fatalf("invite of a pending member: %d %+v", a.status, a.env.Errors)
	}
	a = send(t, srv, "POST", "/accounts/"+acct+"/members", `{"email":"c@example.com","roles":["`+role+`"],"status":"accepted"}`, "x")
	if a.status != 400 || !strings.Contains(a.env.Errors[0].Message, "automatic verification") {
		t.Fatalf("invite with status accepted: %d %+v", a.status, a.env.Errors)
	}
	a = send(t, srv, "POST", "/accounts/"+acct+"/members", `{"email":"d@example.com","roles":["`+strings.Repeat("0", 32)+`"]}`, "x")
	if a.status != 400 {
		t.Fatalf("invite with an unknown role: %d", a.status)
	}
	srv.SetMemberStatus(acct, "a@example.com", "accepted")
	if m, _ := srv.Member(acct, "A@EXAMPLE.COM"); m.Status != "accepted" {
		t.Fatalf("status after SetMemberStatus = %q", m.Status)
	}
	if !srv.RemoveMember(acct, "b@example.com") || srv.RemoveMember(acct, "b@example.com") {
		t.Fatal("RemoveMember did not remove exactly once")
	}
	if w := srv.Writes(); len(w) != 3 || w[0].Status != http.StatusBadRequest {
		t.Fatalf("writes = %+v", w)
	}
	if a := send(t, srv, "GET", "/accounts/"+strings.Repeat("9", 32)+"/members", "", "x"); a.status != 404 || a.env.Errors[0].Code != cftest.CodeNoRoute {
		t.Fatalf("unknown account: %d %+v", a.status, a.env.Errors)
	}
}

func TestRateLimitBlocksFiveMinutes(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, RateLimit: 2})
	path := "/accounts/" + acct + "/roles"
	for i := range 2 {
		if a := send(t, srv, "GET", path, "", "x"); a.status != 200 {
			t.Fatalf("request %d: %d", i+1, a.status)
		}
	}
	a := send(t, srv, "GET", path, "", "x")
	if a.status != 429 || a.header.Get("Retry-After") != "300" || a.env.Errors[0].Code != cftest.CodeRateLimited {
		t.Fatalf("over the limit: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	srv.Clock().Advance(4 * time.Minute)
	if a := send(t, srv, "GET", path, "", "x"); a.status != 429 || a.header.Get("Retry-After") != "60" {
		t.Fatalf("during the block: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	srv.Clock().Advance(time.Minute)
	a = send(t, srv, "GET", path, "", "x")
	if a.status != 200 || a.header.Get("Ratelimit") != `"default";r=1;t=300` || a.header.Get("Ratelimit-Policy") != `"default";q=2;w=300` {
		t.Fatalf("after the block: %d Ratelimit %q Policy %q", a.status, a.header.Get("Ratelimit"), a.header.Get("Ratelimit-Policy"))
	}
	if n := srv.Calls("GET", cftest.RouteRoles); n != 5 {
		t.Fatalf("calls = %d, want 5", n)
	}
}

func TestFaults(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	path := "/accounts/" + acct + "/iam/permission_groups"
	srv.FailNth(2, 502)
	srv.Inject(cftest.Fault{Method: "GET", Route: cftest.RoutePermissionGroups, Page: 2, Status: 429, RetryAfter: "7", Times: -1})
	var got []int
	for _, q := range []string{"", "", "", "?page=2", "?page=2", "?page=1"} {
		a := send(t, srv, "GET", path+q, "", "x")
		got = append(got, a.status)
		if a.status == 429 && a.header.Get("Retry-After") != "7" {
			t.Errorf("Retry-After = %q", a.header.Get("Retry-After"))
		}
	}
	want := []int{200, 502, 200, 429, 429, 200}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", got, want)
		}
	}
	srv.ClearFaults()
	// A POST: Go's transport silently retries an idempotent request on a
	// reused connection that closes, which would hide the drop.
	srv.Inject(cftest.Fault{Drop: true})
	body := `{"email":"x@example.com","roles":["` + srv.RoleID(acct, "DNS") + `"]}`
	req, _ := http.NewRequest("POST", srv.URL()+"/accounts/"+acct+"/members", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := srv.HTTPClient().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("dropped connection produced an answer")
	}
	if len(srv.Members(acct)) != 0 {
		t.Fatal("a dropped request changed state")
	}
	if srv.TotalCalls() != 7 {
		t.Fatalf("total calls = %d, want 7", srv.TotalCalls())
	}
}

func TestDropAfterApplyActsButNeverAnswers(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	srv.Inject(cftest.Fault{Method: "POST", Route: cftest.RouteMembers, DropAfterApply: true})
	body := `{"email":"x@example.com","roles":["` + srv.RoleID(acct, "DNS") + `"]}`
	req, _ := http.NewRequest("POST", srv.URL()+"/accounts/"+acct+"/members", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := srv.HTTPClient().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request dropped after it applied produced an answer")
	}
	if m, ok := srv.Member(acct, "x@example.com"); !ok || len(m.Roles) != 1 {
		t.Fatalf("the dropped invitation did not take effect: %+v %v", m, ok)
	}
	if w := srv.Writes(); len(w) != 1 || w[0].Status != http.StatusOK {
		t.Fatalf("writes %+v, want the one applied invitation", w)
	}
	// The fault fired once: the same invitation now answers, as a duplicate.
	if a := send(t, srv, "POST", "/accounts/"+acct+"/members", body, "x"); a.status != http.StatusBadRequest || !strings.Contains(a.env.Errors[0].Message, "already") {
		t.Fatalf("second invitation: %d %+v, want 400 already", a.status, a.env.Errors)
	}
}

func TestTokenVerifyAndAuth(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, Token: "secret"})
	if a := send(t, srv, "GET", "/user/tokens/verify", "", "wrong"); a.status != 403 || a.env.Errors[0].Code != cftest.CodeAuth {
		t.Fatalf("wrong token: %d", a.status)
	}
	a := send(t, srv, "GET", "/user/tokens/verify", "", "secret")
	var res struct{ Status string }
	_ = json.Unmarshal(a.env.Result, &res)
	if a.status != 200 || res.Status != "active" {
		t.Fatalf("verify: %d %s", a.status, a.env.Result)
	}
}

// TestOnChangeReportsAcceptedMemberWrites: serve --dev prints what changed
// in the fake from these: invites, role changes and removals by name, and
// nothing for a refused write.
func TestOnChangeReportsAcceptedMemberWrites(t *testing.T) {
	var changes []cftest.Change
	var mu gosync.Mutex
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, OnChange: func(c cftest.Change) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, c)
	}})
	dns, admin := srv.RoleID(acct, "DNS"), srv.RoleID(acct, "Administrator")
	a := send(t, srv, "POST", "/accounts/"+acct+"/members", `{"email":"a@example.com","roles":["`+dns+`"]}`, "x")
	var created struct{ ID string }
	if err := json.Unmarshal(a.env.Result, &created); err != nil || a.status != 200 {
		t.Fatalf("invite: %d %s", a.status, a.raw)
	}
	send(t, srv, "POST", "/accounts/"+acct+"/members", `{"email":"a@example.com","roles":["`+dns+`"]}`, "x") // refused: already a member
	send(t, srv, "PUT", "/accounts/"+acct+"/members/"+created.ID, `{"roles":[{"id":"`+admin+`"}]}`, "x")
	send(t, srv, "DELETE", "/accounts/"+acct+"/members/"+created.ID, "", "x")
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"account " + acct + ": a@example.com invited (pending) [DNS]",
		"account " + acct + ": a@example.com [DNS] -> [Administrator]",
		"account " + acct + ": a@example.com removed (held [Administrator])",
	}
	if len(changes) != len(want) {
		t.Fatalf("changes = %v, want %d", changes, len(want))
	}
	for i, c := range changes {
		if c.String() != want[i] {
			t.Errorf("change %d = %q, want %q", i, c, want[i])
		}
	}
}
