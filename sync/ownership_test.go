package sync

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/identity"
)

// rewriteTransport edits the fake's answers on their way back: what a
// Cloudflare that answers inconsistently looks like to the client.
type rewriteTransport struct {
	next http.RoundTripper
	edit func(r *http.Request, body map[string]any)
}

func (t rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if err != nil || res.StatusCode != http.StatusOK {
		return res, err
	}
	raw, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	var body map[string]any
	if json.Unmarshal(raw, &body) == nil {
		t.edit(r, body)
		raw, _ = json.Marshal(body)
	}
	res.Body = io.NopCloser(bytes.NewReader(raw))
	res.ContentLength = int64(len(raw))
	res.Header.Set("Content-Length", strconv.Itoa(len(raw)))
	return res, nil
}

// newRewriteEnv is newFaultEnv whose client sees the fake's answers
// through edit.
func newRewriteEnv(t *testing.T, edit func(r *http.Request, body map[string]any)) *env {
	t.Helper()
	e := newFaultEnv(t, faultEnvOpts{})
	cf, err := cloudflare.New(cloudflare.Config{
		BaseURL: e.fake.URL(), Token: "test-token", Clock: e.clock,
		HTTPClient: &http.Client{Transport: rewriteTransport{next: e.fake.HTTPClient().Transport, edit: edit}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cf = cf
	e.restart()
	return e
}

func isMemberList(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/members")
}

// hideFromListing drops the emails hidden() names (identity keys) from
// member listings and lowers the totals to match: a listing that looks
// complete and is not.
func hideFromListing(hidden func() map[string]bool) func(*http.Request, map[string]any) {
	return func(r *http.Request, body map[string]any) {
		h := hidden()
		if len(h) == 0 || !isMemberList(r) {
			return
		}
		res, _ := body["result"].([]any)
		kept := res[:0]
		for _, m := range res {
			mm, _ := m.(map[string]any)
			u, _ := mm["user"].(map[string]any)
			email, _ := u["email"].(string)
			if email == "" {
				email, _ = mm["email"].(string)
			}
			if !h[identity.Key(email)] {
				kept = append(kept, m)
			}
		}
		if info, ok := body["result_info"].(map[string]any); ok {
			if tc, ok := info["total_count"].(float64); ok {
				info["total_count"] = tc - float64(len(res)-len(kept))
			}
			info["count"] = len(kept)
		}
		body["result"] = kept
	}
}

// hideOne hides the one email hide holds ("" hides nothing).
func hideOne(hide *atomic.Value) func() map[string]bool {
	return func() map[string]bool {
		email, _ := hide.Load().(string)
		if email == "" {
			return nil
		}
		return map[string]bool{identity.Key(email): true}
	}
}

// A listing that lacks a member scimflare granted, while Cloudflare still
// has it, must not make scimflare forget the grant: the run asks for the
// member, finds it, and aborts without a change. Deactivating the user
// afterwards removes the access.
func TestListingThatLacksAnOwnedMemberAbortsAndOwnershipStays(t *testing.T) {
	var hide atomic.Value
	e := newRewriteEnv(t, hideFromListing(hideOne(&hide)))
	alice := e.user("alice@example.com")
	e.group("cf-deployers", alice, e.user("bob@example.com"))
	e.mustApply(RunOptions{})
	before, ok := e.ledgerOf("alice@example.com")
	if !ok || len(before.Managed) == 0 {
		t.Fatalf("alice not recorded as granted: %+v", before)
	}

	hide.Store("alice@example.com")
	e.fake.ResetCounters()
	res := e.apply(RunOptions{})
	if res.Aborted == nil || !errors.Is(res.Aborted, errIncompleteListing) {
		t.Fatalf("run with a listing lacking alice: aborted = %v, want an incomplete listing", res.Aborted)
	}
	if w := e.fake.Writes(); len(w) != 0 {
		t.Errorf("an aborted run wrote %+v", w)
	}
	if g := e.auditFor(ActionMemberGone, "alice@example.com"); len(g) != 0 {
		t.Errorf("member_gone recorded on one listing's word: %+v", g)
	}
	after, ok := e.ledgerOf("alice@example.com")
	if !ok || len(after.Managed) != len(before.Managed) {
		t.Fatalf("ownership forgotten: %+v", after)
	}

	// The leaver case this protects: the listing still lies, alice leaves.
	e.deactivate(alice)
	hide.Store("")
	e.mustApply(RunOptions{})
	if _, ok := e.fake.Member(prodID, "alice@example.com"); ok {
		t.Fatal("alice kept her access after deactivation")
	}
}

// A member removed by hand is gone on Cloudflare's 404, at once, with one
// member_gone record; nothing is recreated for a user who is not desired.
func TestMemberRemovedByHandIsGoneOnItsOwn404(t *testing.T) {
	e := newFaultEnv(t, faultEnvOpts{})
	alice := e.user("alice@example.com")
	e.group("cf-deployers", alice)
	e.mustApply(RunOptions{})
	e.deactivate(alice)
	e.fake.RemoveMember(prodID, "alice@example.com")
	e.mustApply(RunOptions{})
	if g := e.auditFor(ActionMemberGone, "alice@example.com"); len(g) != 1 {
		t.Fatalf("member_gone records %d, want 1", len(g))
	}
	if _, ok := e.ledgerOf("alice@example.com"); ok {
		t.Error("ledger still owns a member Cloudflare answered 404 for")
	}
	if n := invites(t, e)["alice@example.com"]; n != 1 {
		t.Errorf("alice invited %d times, want once (no re-invite of a leaver)", n)
	}
}

// Past maxConfirm absent members, the rest are marked missing and stay
// owned until a second listing lacks them too.
func TestManyAbsentMembersNeedASecondListing(t *testing.T) {
	var hidden atomic.Value // map[string]bool
	e := newRewriteEnv(t, hideFromListing(func() map[string]bool { h, _ := hidden.Load().(map[string]bool); return h }))
	ids := e.users(maxConfirm+5, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	// Cloudflare really lost them (removed by hand), and the listing
	// agrees: the first maxConfirm are confirmed by 404, the rest wait.
	h := map[string]bool{}
	for i := range maxConfirm + 5 {
		email := "user" + strconv.Itoa(100 + i)[1:] + "@example.com"
		e.fake.RemoveMember(prodID, email)
		h[email] = true
	}
	hidden.Store(h)
	for _, id := range ids {
		e.deactivate(id)
	}
	e.mustApply(RunOptions{})
	if g := len(e.audit(ActionMemberGone)); g != maxConfirm {
		t.Fatalf("member_gone after one listing: %d, want %d (confirmed by 404)", g, maxConfirm)
	}
	e.mustApply(RunOptions{})
	if g := len(e.audit(ActionMemberGone)); g != maxConfirm+5 {
		t.Fatalf("member_gone after two listings: %d, want %d", g, maxConfirm+5)
	}
}

// Cloudflare answers an invite without its roles; scimflare records what
// it sent, so the next targeted run has nothing to re-send.
func TestInviteAnswerWithoutRolesIsNotResent(t *testing.T) {
	e := newRewriteEnv(t, func(r *http.Request, body map[string]any) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/members") {
			if m, ok := body["result"].(map[string]any); ok {
				delete(m, "roles")
				delete(m, "policies")
			}
		}
	})
	alice := e.user("alice@example.com")
	e.group("cf-deployers", alice)
	e.mustApply(RunOptions{})
	e.fake.ResetCounters()
	res := e.targeted([]string{alice}, nil, nil)
	if len(res.Applied) != 0 || len(e.fake.Writes()) != 0 {
		t.Fatalf("targeted run after an invite re-sent %s: %+v", kinds(res.Applied), e.fake.Writes())
	}
}

// An update whose answer shows other grants than were sent is a failed
// change: audited, counted, and repaired by the next run.
func TestUpdateAnswerThatDisagreesIsAFailedChange(t *testing.T) {
	var lie atomic.Bool
	e := newRewriteEnv(t, func(r *http.Request, body map[string]any) {
		if lie.Load() && r.Method == http.MethodPut {
			if m, ok := body["result"].(map[string]any); ok {
				m["roles"] = []any{}
			}
		}
	})
	alice := e.user("alice@example.com")
	e.group("cf-deployers", alice)
	e.mustApply(RunOptions{})
	e.group("cf-oncall", alice)
	lie.Store(true)
	res := e.apply(RunOptions{})
	if len(res.Failed) != 1 || !errors.Is(res.Failed[0].Err, ErrAnswerDisagrees) {
		t.Fatalf("failed = %+v, want one ErrAnswerDisagrees", res.Failed)
	}
	if len(e.auditFor(ActionChangeFailed, "alice@example.com")) != 1 {
		t.Error("the disagreeing answer was not audited as a failed change")
	}
	if n := metricValue(e.m.ChangesFailed.WithLabelValues(string(res.Failed[0].Change.Kind))); n != 1 {
		t.Errorf("scimflare_changes_failed_total = %v, want 1", n)
	}
	lie.Store(false)
	e.mustApply(RunOptions{})
	if roles, _ := e.memberRoles(prodID, "alice@example.com"); len(roles) != 2 {
		t.Errorf("after the repair alice has %v", roles)
	}
}

// A SCIM address that only looks like a protected or granted one — a
// trailing space, a zero-width space, a dotted capital I — gets nothing,
// touches nobody, and is reported; the protected member stays as it is.
func TestLookalikeAddressesGetNothing(t *testing.T) {
	e := newEnv(t)
	admin := e.fake.RoleID(prodID, "Administrator")
	e.fake.AddMember(prodID, cftest.Member{Email: "breakglass@example.com", Status: "accepted", Roles: []string{admin}})
	ids := []string{
		e.user("breakglass@example.com "),
		e.user("info\u200b@example.com"),
		e.user("İnfo@example.com"),
	}
	e.group("cf-deployers", ids...)
	res := e.mustApply(RunOptions{})
	if len(res.Applied) != 0 || len(res.Failed) != 0 {
		t.Fatalf("applied %s, failed %+v: a look-alike address was acted on", kinds(res.Applied), res.Failed)
	}
	if len(res.Changes.Identity) != 3 {
		t.Errorf("identity problems %+v, want the three addresses", res.Changes.Identity)
	}
	if roles, ok := e.memberRoles(prodID, "breakglass@example.com"); !ok || len(roles) != 1 || roles[0] != "Administrator" {
		t.Errorf("the protected member changed: %v %v", ok, roles)
	}
	if st := e.r.Status(); len(st.IdentityProblems) != 3 {
		t.Errorf("status identity problems %+v", st.IdentityProblems)
	}
	if n := metricValue(e.m.IdentityProblems.WithLabelValues("invalid_email")); n != 3 {
		t.Errorf("scimflare_identity_problems{kind=invalid_email} = %v", n)
	}
	// Reported once: a second run logs nothing new and changes nothing.
	if res := e.mustApply(RunOptions{}); len(res.Applied) != 0 || len(res.Failed) != 0 {
		t.Errorf("second run applied %s failed %+v", kinds(res.Applied), res.Failed)
	}
}
