package scim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

func TestAuthFailuresBlockAfterLimitThenExpire(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	a := newAuthFailures(authLimit{Failures: 3, Window: time.Minute, MaxAddrs: 10})
	for i := range 2 {
		if a.fail("10.0.0.1", t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("failure %d blocked; the limit is 3", i+1)
		}
	}
	if _, blocked := a.blockedFor("10.0.0.1", t0.Add(2*time.Second)); blocked {
		t.Fatal("blocked before the third failure")
	}
	if !a.fail("10.0.0.1", t0.Add(2*time.Second)) {
		t.Fatal("the third failure within the window must block")
	}
	wait, blocked := a.blockedFor("10.0.0.1", t0.Add(32*time.Second))
	if !blocked || wait != 30*time.Second {
		t.Errorf("30s into the block: blocked=%v wait=%s, want true 30s", blocked, wait)
	}
	if _, blocked := a.blockedFor("10.0.0.2", t0.Add(3*time.Second)); blocked {
		t.Error("another address is blocked too")
	}
	if _, blocked := a.blockedFor("10.0.0.1", t0.Add(62*time.Second)); blocked {
		t.Error("still blocked after the window passed")
	}
	// After the block, counting starts again from zero.
	if a.fail("10.0.0.1", t0.Add(63*time.Second)) {
		t.Error("the first failure after a block blocked again")
	}
}

func TestAuthFailuresSpreadOverMoreThanAWindowNeverBlock(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	a := newAuthFailures(authLimit{Failures: 3, Window: time.Minute, MaxAddrs: 10})
	for i := range 20 {
		if a.fail("10.0.0.1", t0.Add(time.Duration(i)*31*time.Second)) {
			t.Fatalf("failure %d blocked, but no 3 failures fell within one minute", i+1)
		}
	}
}

func TestAuthFailuresTableIsBoundedAndEvictsTheLeastRecentlySeen(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	a := newAuthFailures(authLimit{Failures: 2, Window: time.Minute, MaxAddrs: 3})
	a.fail("10.0.0.1", t0)
	a.fail("10.0.0.1", t0) // blocked
	a.fail("10.0.0.2", t0)
	a.fail("10.0.0.3", t0)
	a.fail("10.0.0.1", t0) // seen again: now the most recent
	a.fail("10.0.0.4", t0) // evicts 10.0.0.2, the least recently seen
	if _, blocked := a.blockedFor("10.0.0.1", t0); !blocked {
		t.Fatal("a recently seen blocked address was evicted before older ones")
	}
	if a.fail("10.0.0.2", t0) {
		t.Error("10.0.0.2 was forgotten: its second failure must count as a first")
	}
	for i := range 1000 {
		a.fail(fmt.Sprintf("10.1.%d.%d", i/256, i%256), t0)
	}
	if n := a.len(); n != 3 {
		t.Errorf("table holds %d addresses, want the cap of 3", n)
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7:5123", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5123", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"not-an-address", "not-an-address"},
	} {
		if got := clientKey(tc.in); got != tc.want {
			t.Errorf("clientKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestServerSideAuthFailuresAreNotCounted: failures the server causes (here
// a token store that cannot be read) say nothing about the client: they are
// a 503 with Retry-After, not a 401 an IdP counts toward quarantine, and
// they never block its address.
func TestServerSideAuthFailuresAreNotCounted(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	auth := NewAuthenticator("", st, time.Now)
	srv, err := New(st, Options{BasePath: "/scim/v2", Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * defaultAuthLimit.Failures {
		req := httptest.NewRequest("GET", "/scim/v2/Users", nil)
		req.RemoteAddr = "192.0.2.9:1234"
		req.Header.Set("Authorization", "Bearer sfscim_whatever")
		rr := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rr, req)
		if rr.Code != http.StatusServiceUnavailable || rr.Header().Get("Retry-After") == "" {
			t.Fatalf("request %d with the store unreadable: %d (Retry-After %q), want 503 with Retry-After", i+1, rr.Code, rr.Header().Get("Retry-After"))
		}
	}
	if n := srv.failures.len(); n != 0 {
		t.Errorf("%d addresses counted for server-side failures, want 0", n)
	}
}
