package cloudflarefake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BasePath is where the fake serves the API, as api.cloudflare.com does.
const BasePath = "/client/v4"

// Route templates, the keys of Calls.
const (
	RouteMembers          = "/accounts/{account_id}/members"
	RouteMember           = "/accounts/{account_id}/members/{member_id}"
	RouteRoles            = "/accounts/{account_id}/roles"
	RoutePermissionGroups = "/accounts/{account_id}/iam/permission_groups"
	RouteResourceGroups   = "/accounts/{account_id}/iam/resource_groups"
	RouteUserGroups       = "/accounts/{account_id}/iam/user_groups"
	RouteUserGroup        = "/accounts/{account_id}/iam/user_groups/{user_group_id}"
	RouteUserGroupMembers = "/accounts/{account_id}/iam/user_groups/{user_group_id}/members"
	// RouteUserGroupMember is one member of a user group, by account
	// member id.
	RouteUserGroupMember = "/accounts/{account_id}/iam/user_groups/{user_group_id}/members/{member_id}"
	RouteTokenVerify     = "/user/tokens/verify"
	// RouteAccountTokenVerify verifies an account-owned token.
	RouteAccountTokenVerify = "/accounts/{account_id}/tokens/verify"
)

// Cloudflare error codes the fake answers with. 7003 (no route / bad
// identifier), 971 (throttled), 10000 (authentication) and 1001 (invalid
// request, also returned for invites Cloudflare refuses) are codes Cloudflare
// is seen returning; CodeMemberNotFound is our choice.
const (
	CodeInvalidRequest = 1001
	CodeMemberNotFound = 1003
	// CodeUserGroupNotFound answers a user group id the account does not
	// have (HTTP 404); the code is our choice.
	CodeUserGroupNotFound = 1004
	CodeNoRoute           = 7003
	CodeRateLimited       = 971
	CodeAuth              = 10000
	// CodeInvalidToken is what Cloudflare's verify endpoints answer (HTTP
	// 401) for a token they do not know, e.g. an account-owned token at
	// /user/tokens/verify.
	CodeInvalidToken = 1000
	// CodeInvalidHeaders (HTTP 400, "Invalid request headers") with
	// CodeInvalidAuthorization in its error_chain ("Invalid format for
	// Authorization header") is Cloudflare's answer to a bearer token that
	// is not a token at all (testdata/BEHAVIOURS.md, 1f).
	CodeInvalidHeaders       = 6003
	CodeInvalidAuthorization = 6111
)

// ListingFault makes a listing answer HTTP 200 yet be wrong, as a
// misbehaving API or a proxy could: see Fault.Listing.
type ListingFault int

// Listing faults.
const (
	ListingOK ListingFault = iota
	// ListingUnsuccessful answers HTTP 200 with "success": false.
	ListingUnsuccessful
	// ListingNullResult answers HTTP 200 with "result": null.
	ListingNullResult
	// ListingShortPage leaves the page's last item out while result_info
	// (total_count) still counts it.
	ListingShortPage
	// ListingTotalChanged reports a total_count one higher than the listing
	// holds, as when a member is invited between two pages.
	ListingTotalChanged
	// ListingDuplicate serves the page one item early (page 1: its last
	// item is the first again), so an item appears twice in the listing
	// and another is never served, as when a member is added before the
	// page boundary between two pages.
	ListingDuplicate
)

// TokenInfo is what the verify endpoints say about the accepted token.
type TokenInfo struct {
	Status    string    // "active" (default), "disabled" or "expired"
	ExpiresOn time.Time // zero: no expiry date
	// AccountID makes the token account-owned: /user/tokens/verify refuses
	// it and /accounts/{AccountID}/tokens/verify answers.
	AccountID string
}

// Options configures a fake. The zero value is usable.
type Options struct {
	// Clock is the fake's time; nil makes one at Epoch. Pass the same Clock
	// to the client so its waits advance the fake's time.
	Clock *Clock
	// Accounts are created with the default catalog (DefaultRoles,
	// DefaultPermissionGroups, DefaultResourceGroups).
	Accounts []string
	// Token, when set, is the only bearer token accepted.
	Token string
	// RateLimit is requests per RateWindow before 429s (default 1200 per
	// 5 minutes); exceeding it blocks every request for RateBlock (default
	// 5 minutes), as Cloudflare does.
	RateLimit  int
	RateWindow time.Duration
	RateBlock  time.Duration
	// Validator, when set, checks every request and every answer against
	// Cloudflare's schema (cftest's is kin-openapi over the schema in its
	// testdata). A request it refuses is answered 400 and recorded
	// (InvalidRequests); an answer it refuses is recorded
	// (InvalidResponses).
	Validator Validator
	// RefusePendingGroupMembers makes the fake refuse to add a pending
	// (invited, not yet accepted) member to a user group, answering 400 /
	// 1001 "… has not accepted …". By default a pending member may join,
	// as Cloudflare's schema lists group members with status "pending"
	// (testdata/BEHAVIOURS.md, 2b). Both answers are Cloudflare's possible
	// ones; tests run both.
	RefusePendingGroupMembers bool
	// AllowSCIMGroupChanges lets the API rename, re-member and delete user
	// groups made by Cloudflare's own SCIM provisioning (AddSCIMGroup). By
	// default the fake refuses, as Cloudflare documents (BEHAVIOURS.md,
	// 2c); setting it models a Cloudflare that lifted the restriction.
	AllowSCIMGroupChanges bool
	// OnChange, when set, is called with every member or user-group write
	// the fake accepted, after the write and outside the fake's lock:
	// `serve --dev` prints them.
	OnChange func(Change)
	// AfterWrite, when set, is called after every write request (POST,
	// PUT, DELETE; any route, any status) took effect and before it is
	// answered, outside the fake's lock: the callback may read the fake
	// (EffectiveAccessAll) to check an invariant at every point of a run.
	AfterWrite func(Write)
	// Reporter receives the fake's complaints about its own use (a
	// helper naming an account or member that does not exist); nil panics
	// with the complaint. A testing.TB is a Reporter.
	Reporter Reporter
}

// Validator checks traffic against a schema.
type Validator interface {
	// Request checks a request the fake received; body is its body.
	Request(r *http.Request, body []byte) error
	// Response checks the fake's answer to r; nil when the schema does not
	// describe the answer.
	Response(r *http.Request, reqBody []byte, status int, answer []byte) error
}

// Reporter is where the fake reports a helper called with names it does
// not hold: a testing.TB in tests.
type Reporter interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Errorer is what the Assert methods report to: a testing.TB in tests.
type Errorer interface {
	Helper()
	Errorf(format string, args ...any)
}

type panicReporter struct{}

func (panicReporter) Helper() {}
func (panicReporter) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// Write is one write call (POST, PUT, DELETE) the fake received.
type Write struct {
	Method, Route, AccountID, MemberID string
	// GroupID is the user group a user-group route names.
	GroupID string
	Body    string
	Status  int
	At      time.Time
}

// InvalidRequest is a request that failed OpenAPI validation, or (in
// InvalidResponses) a request whose answer from the fake did.
type InvalidRequest struct {
	Method, URL, Body, Err string
}

// Fault makes matching requests fail. Empty Method/Route and zero Page match
// any request.
type Fault struct {
	Method string
	Route  string // one of the Route* templates
	Page   int    // match only list requests for this page (a missing page parameter is page 1)
	// Nth makes the fault start at the Nth matching request (1-based,
	// counted from Inject); 0 is the first.
	Nth int
	// Times is how many matching requests fail: 0 means one, negative means
	// every one from Nth on.
	Times      int
	Status     int    // status to answer; 0 with Delay answers normally after the delay
	RetryAfter string // Retry-After header to send with Status
	Code       int    // Cloudflare error code; defaults by status
	Message    string // Cloudflare error message; defaults by status
	// Delay holds the answer for this long in real time (ended early when
	// the client goes away): for per-attempt timeout tests.
	Delay time.Duration
	// Drop hijacks the connection and closes it without an answer.
	Drop bool
	// DropAfterApply lets the request take effect (and be listed by
	// Writes) and then closes the connection without an answer: a reset
	// after Cloudflare acted, or a client that gave up too late.
	DropAfterApply bool
	// Listing answers a list request (members, roles, permission or
	// resource groups) HTTP 200 but wrong in this way. Such answers are
	// deliberately outside the schema and are not response-validated.
	Listing ListingFault
}

type fault struct {
	Fault
	seen, fired int
}

// Server is a running fake. Methods are safe for concurrent use.
type Server struct {
	t         Reporter
	hs        *http.Server
	url       string
	transport *http.Transport
	clock     *Clock
	opts      Options

	mu       sync.Mutex
	accounts map[string]*account
	seq      int
	calls    map[string]int
	total    int
	writes   []Write
	invalid  []InvalidRequest
	badResp  []InvalidRequest
	faults   []*fault
	window   []time.Time // accepted request times, oldest first
	blocked  time.Time   // rate-limit block ends
	token    string      // the accepted bearer token; "" accepts any
	tokenInf TokenInfo
}

// New starts a fake on a loopback port of its own. Close stops it.
func New(opts Options) (*Server, error) {
	if opts.Clock == nil {
		opts.Clock = NewClock(Epoch)
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = 1200
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = 5 * time.Minute
	}
	if opts.RateBlock <= 0 {
		opts.RateBlock = 5 * time.Minute
	}
	if opts.Reporter == nil {
		opts.Reporter = panicReporter{}
	}
	s := &Server{
		t:         opts.Reporter,
		clock:     opts.Clock,
		opts:      opts,
		accounts:  map[string]*account{},
		calls:     map[string]int{},
		token:     opts.Token,
		transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16},
	}
	for _, id := range opts.Accounts {
		s.AddAccount(id)
	}
	// Loopback only: the fake never listens where another machine could
	// reach it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake Cloudflare: listen on loopback: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Fatalf("cloudflarefake: serve: %v", err)
		}
	}()
	return s, nil
}

// Close stops the fake and drops every open connection.
func (s *Server) Close() {
	_ = s.hs.Close()
	s.transport.CloseIdleConnections()
}

// URL is the API base URL to configure the client with (…/client/v4).
func (s *Server) URL() string { return s.url + BasePath }

// Clock is the fake's clock.
func (s *Server) Clock() *Clock { return s.clock }

// HTTPClient returns a client for the fake's listener.
func (s *Server) HTTPClient() *http.Client { return &http.Client{Transport: s.transport} }

// Inject adds a fault. Faults are checked in the order added; the first
// that fires decides.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{Fault: f})
}

// SetToken makes token the only accepted bearer token from now on, as when
// an operator rolls a Cloudflare token: the previous one stops working.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// SetTokenInfo sets what the verify endpoints answer about the token.
func (s *Server) SetTokenInfo(info TokenInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenInf = info
}

// FailNth makes the nth request from now (of any route) answer status.
func (s *Server) FailNth(n, status int) { s.Inject(Fault{Nth: n, Status: status}) }

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Calls is how many requests reached method+route (a Route* template),
// including failed and rate-limited ones.
func (s *Server) Calls(method, route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method+" "+route]
}

// TotalCalls is how many requests reached the fake.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Writes lists the write calls received, in order.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Write(nil), s.writes...)
}

// ResetCounters zeroes Calls, TotalCalls and Writes (not the rate limiter).
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.total = 0
	s.writes = nil
}

// InvalidRequests lists requests that failed OpenAPI validation.
func (s *Server) InvalidRequests() []InvalidRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]InvalidRequest(nil), s.invalid...)
}

// InvalidResponses lists answers of the fake that did not match the
// schema (injected faults and throttling excepted): a defect of the fake.
func (s *Server) InvalidResponses() []InvalidRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]InvalidRequest(nil), s.badResp...)
}

// AssertValidResponses fails t for every answer of the fake that did not
// match the schema. cftest.New runs it when the test ends, whatever
// AllowInvalid.
func (s *Server) AssertValidResponses(t Errorer) {
	t.Helper()
	for _, r := range s.InvalidResponses() {
		t.Errorf("cloudflarefake: invalid answer to %s %s: %s (answer %s)", r.Method, r.URL, r.Err, r.Body)
	}
}

// AssertValid fails t for every request that did not match the schema.
func (s *Server) AssertValid(t Errorer) {
	t.Helper()
	for _, r := range s.InvalidRequests() {
		t.Errorf("cloudflarefake: invalid request %s %s: %s (body %q)", r.Method, r.URL, r.Err, r.Body)
	}
}

// target is what a request path names: its route template and path
// values.
type target struct {
	route, accountID, memberID, groupID string
}

// routeOf maps a path below BasePath to its template and path values.
func routeOf(p string) target {
	seg := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(seg) == 3 && seg[0] == "user" && seg[1] == "tokens" && seg[2] == "verify":
		return target{route: RouteTokenVerify}
	case len(seg) < 3 || seg[0] != "accounts":
		return target{}
	case len(seg) == 4 && seg[2] == "tokens" && seg[3] == "verify":
		return target{route: RouteAccountTokenVerify, accountID: seg[1]}
	case len(seg) == 3 && seg[2] == "members":
		return target{route: RouteMembers, accountID: seg[1]}
	case len(seg) == 4 && seg[2] == "members":
		return target{route: RouteMember, accountID: seg[1], memberID: seg[3]}
	case len(seg) == 3 && seg[2] == "roles":
		return target{route: RouteRoles, accountID: seg[1]}
	case len(seg) == 4 && seg[2] == "iam" && seg[3] == "permission_groups":
		return target{route: RoutePermissionGroups, accountID: seg[1]}
	case len(seg) == 4 && seg[2] == "iam" && seg[3] == "resource_groups":
		return target{route: RouteResourceGroups, accountID: seg[1]}
	case len(seg) >= 4 && seg[2] == "iam" && seg[3] == "user_groups":
		return userGroupTarget(seg)
	}
	return target{}
}

// userGroupTarget maps accounts/{a}/iam/user_groups[/{g}[/members[/{m}]]].
func userGroupTarget(seg []string) target {
	t := target{accountID: seg[1]}
	switch {
	case len(seg) == 4:
		t.route = RouteUserGroups
	case len(seg) == 5:
		t.route, t.groupID = RouteUserGroup, seg[4]
	case len(seg) == 6 && seg[5] == "members":
		t.route, t.groupID = RouteUserGroupMembers, seg[4]
	case len(seg) == 7 && seg[5] == "members":
		t.route, t.groupID, t.memberID = RouteUserGroupMember, seg[4], seg[6]
	default:
		return target{}
	}
	return t
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))

	var tg target
	if rest, ok := strings.CutPrefix(r.URL.Path, BasePath+"/"); ok {
		tg = routeOf(rest)
	}
	route, accountID, memberID := tg.route, tg.accountID, tg.memberID
	page := 1
	if p, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil {
		page = p
	}

	s.mu.Lock()
	now := s.clock.Now()
	s.total++
	s.calls[r.Method+" "+route]++
	limited, retryAfter := s.rateLimit(now)
	s.setRateHeaders(w.Header(), now)
	var f *fault
	if !limited {
		f = s.pickFault(r.Method, route, page)
	}
	token := s.token
	s.mu.Unlock()

	if limited {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		writeError(w, http.StatusTooManyRequests, CodeRateLimited, "Please wait and consider throttling your request speed")
		return
	}
	if route == "" {
		s.recordInvalid(r, body, "no such route")
		writeError(w, http.StatusNotFound, CodeNoRoute, "No route for that URI")
		return
	}
	if auth := r.Header.Get("Authorization"); auth != "" && !wellFormedBearer(auth) {
		s.answer(w, r, body, http.StatusBadRequest, envelope{
			Errors: []apiMessage{{Code: CodeInvalidHeaders, Message: "Invalid request headers",
				ErrorChain: []apiMessage{{Code: CodeInvalidAuthorization, Message: "Invalid format for Authorization header"}}}},
			Messages: []apiMessage{},
		}, true)
		return
	}
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		s.answer(w, r, body, http.StatusForbidden, errorEnvelope(CodeAuth, "Authentication error"), true)
		return
	}
	if v := s.opts.Validator; v != nil && route != RouteTokenVerify && route != RouteAccountTokenVerify {
		if err := v.Request(r, body); err != nil {
			s.recordInvalid(r, body, err.Error())
			s.answer(w, r, body, http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, "Invalid request: "+firstLine(err.Error())), true)
			return
		}
	}
	if f != nil {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if f.Drop {
			hangUp(w)
			return
		}
		if f.Status != 0 && !f.DropAfterApply {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			code, msg := f.Code, f.Message
			if code == 0 {
				code, msg = defaultError(f.Status)
			}
			writeError(w, f.Status, code, msg)
			return
		}
	}

	var lf ListingFault
	if f != nil && r.Method == http.MethodGet {
		lf = f.Listing
	}
	s.mu.Lock()
	var email, before string
	var grants []string
	var group groupState
	watch := s.opts.OnChange != nil && r.Method != http.MethodGet
	if watch {
		email, before, grants = s.snapshot(route, accountID, memberID)
		group = s.groupSnapshot(accountID, tg.groupID)
	}
	status, payload := s.handle(r.Method, tg, r.URL.Query(), body, lf)
	var changed *Change
	if r.Method != http.MethodGet {
		s.writes = append(s.writes, Write{
			Method: r.Method, Route: route, AccountID: accountID, MemberID: memberID, GroupID: tg.groupID,
			Body: string(body), Status: status, At: now,
		})
		switch {
		case watch && status < 300 && isGroupRoute(route):
			changed = s.groupChange(r.Method, route, accountID, tg.groupID, group)
		case watch && status < 300:
			changed = s.change(r.Method, route, accountID, memberID, email, before, grants)
		}
	}
	s.mu.Unlock()
	if changed != nil {
		s.opts.OnChange(*changed)
	}
	if r.Method != http.MethodGet && s.opts.AfterWrite != nil {
		s.opts.AfterWrite(Write{Method: r.Method, Route: route, AccountID: accountID, MemberID: memberID,
			GroupID: tg.groupID, Body: string(body), Status: status, At: now})
	}
	if f != nil && f.DropAfterApply {
		hangUp(w)
		return
	}
	s.answer(w, r, body, status, payload, lf == ListingOK)
}

// answer writes payload and, when check is set, validates it as an answer
// to r against the schema, recording a mismatch (InvalidResponses).
func (s *Server) answer(w http.ResponseWriter, r *http.Request, reqBody []byte, status int, payload any, check bool) {
	b := encode(&status, payload)
	if v := s.opts.Validator; check && v != nil {
		if err := v.Response(r, reqBody, status, b); err != nil {
			s.mu.Lock()
			s.badResp = append(s.badResp, InvalidRequest{Method: r.Method, URL: r.URL.String(), Body: string(b), Err: err.Error()})
			s.mu.Unlock()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// wellFormedBearer reports whether an Authorization header is the bearer
// scheme with a token of RFC 6750's b64token syntax; Cloudflare answers
// anything else 400 / 6003 (6111).
func wellFormedBearer(h string) bool {
	tok, found := strings.CutPrefix(h, "Bearer ")
	if !found {
		return false
	}
	body := strings.TrimRight(tok, "=")
	if body == "" {
		return false
	}
	for _, c := range body {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-._~+/", c):
		default:
			return false
		}
	}
	return true
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func defaultError(status int) (int, string) {
	switch {
	case status == http.StatusTooManyRequests:
		return CodeRateLimited, "Please wait and consider throttling your request speed"
	case status >= 500:
		return 10001, "Internal server error (injected)"
	}
	return CodeInvalidRequest, "Invalid request (injected)"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// rateLimit counts the request against the rolling window, as Cloudflare's
// 1200 per 5 minutes: going over blocks every request for RateBlock.
func (s *Server) rateLimit(now time.Time) (limited bool, retryAfterSecs int) {
	if now.Before(s.blocked) {
		return true, int(math.Ceil(s.blocked.Sub(now).Seconds()))
	}
	s.expire(now)
	if len(s.window) >= s.opts.RateLimit {
		s.blocked = now.Add(s.opts.RateBlock)
		return true, int(math.Ceil(s.opts.RateBlock.Seconds()))
	}
	s.window = append(s.window, now)
	return false, 0
}

func (s *Server) expire(now time.Time) {
	cut := now.Add(-s.opts.RateWindow)
	i := 0
	for i < len(s.window) && !s.window[i].After(cut) {
		i++
	}
	s.window = append(s.window[:0], s.window[i:]...)
}

// setRateHeaders sends the IETF draft headers Cloudflare sends:
// Ratelimit: "default";r=<remaining>;t=<seconds to reset> and the policy.
func (s *Server) setRateHeaders(h http.Header, now time.Time) {
	remaining := max(0, s.opts.RateLimit-len(s.window))
	reset := 0
	if now.Before(s.blocked) {
		remaining, reset = 0, int(math.Ceil(s.blocked.Sub(now).Seconds()))
	} else if len(s.window) > 0 {
		reset = int(math.Ceil(s.window[0].Add(s.opts.RateWindow).Sub(now).Seconds()))
	}
	h.Set("Ratelimit", fmt.Sprintf(`"default";r=%d;t=%d`, remaining, reset))
	h.Set("Ratelimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, s.opts.RateLimit, int(s.opts.RateWindow.Seconds())))
}

func (s *Server) pickFault(method, route string, page int) *fault {
	for _, f := range s.faults {
		if f.Method != "" && f.Method != method || f.Route != "" && f.Route != route || f.Page != 0 && f.Page != page {
			continue
		}
		f.seen++
		times := f.Times
		if times == 0 {
			times = 1
		}
		if f.seen < f.Nth || (times > 0 && f.fired >= times) {
			continue
		}
		f.fired++
		return f
	}
	return nil
}

func (s *Server) recordInvalid(r *http.Request, body []byte, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalid = append(s.invalid, InvalidRequest{Method: r.Method, URL: r.URL.String(), Body: string(body), Err: msg})
}

type apiMessage struct {
	Code       int          `json:"code"`
	Message    string       `json:"message"`
	ErrorChain []apiMessage `json:"error_chain,omitempty"`
}

type envelope struct {
	Success    bool         `json:"success"`
	Errors     []apiMessage `json:"errors"`
	Messages   []apiMessage `json:"messages"`
	Result     any          `json:"result"`
	ResultInfo *resultInfo  `json:"result_info,omitempty"`
}

// resultInfo is a page's result_info as Cloudflare sends it: no
// total_pages (testdata/BEHAVIOURS.md, 1c).
type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
}

func errorEnvelope(code int, msg string) envelope {
	return envelope{Errors: []apiMessage{{Code: code, Message: msg}}, Messages: []apiMessage{}}
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, errorEnvelope(code, msg))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b := encode(&status, v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func encode(status *int, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		*status = http.StatusInternalServerError
		return []byte(`{"success":false,"errors":[{"code":10001,"message":"fake could not encode its answer"}],"messages":[],"result":null}`)
	}
	return b
}

// pageParams reads page and per_page with Cloudflare's default of 20 a page.
func pageParams(q url.Values) (page, perPage int) {
	page, perPage = 1, 20
	if p, err := strconv.Atoi(q.Get("page")); err == nil && p > 0 {
		page = p
	}
	if p, err := strconv.Atoi(q.Get("per_page")); err == nil && p > 0 {
		perPage = p
	}
	return page, perPage
}

// paginate slices items for one page and fills result_info, wrong in the
// way lf says.
func paginate[T any](items []T, page, perPage int, lf ListingFault) ([]T, *resultInfo) {
	total := len(items)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	var out []T
	if lf == ListingDuplicate && start > 0 {
		out = slices.Clone(items[start-1 : end-1])
	} else {
		out = slices.Clone(items[start:end])
	}
	if lf == ListingDuplicate && start == 0 && len(out) > 1 {
		out[len(out)-1] = out[0]
	}
	if lf == ListingShortPage && len(out) > 0 {
		out = out[:len(out)-1]
	}
	if out == nil {
		out = []T{}
	}
	info := &resultInfo{Page: page, PerPage: perPage, Count: len(out), TotalCount: total}
	if lf == ListingTotalChanged {
		info.TotalCount++
	}
	return out, info
}
