package sync

import (
	"fmt"
	"net/http"
	"strings"
	gosync "sync"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare"
)

// removeDuringListing removes a member from the fake once the first
// listing has read its first page, so that the total changes under it and
// the client lists again from page 1.
type removeDuringListing struct {
	next   http.RoundTripper
	remove func()
	once   gosync.Once
	pages  int
	mu     gosync.Mutex
}

func (r *removeDuringListing) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/members") {
		r.mu.Lock()
		r.pages++
		second := r.pages == 2
		r.mu.Unlock()
		if second {
			r.once.Do(r.remove)
		}
	}
	return r.next.RoundTrip(req)
}

// A listing that starts over because a member left while it was read (the
// total changed) keeps only what the second listing showed: the member who
// left on page 2 of the first listing, after page 1 listed them, is not
// in what the run plans with nor in the member cache it writes. The run
// takes the listing page by page; a page of the first attempt must not
// survive into the second.
func TestListingThatStartsOverKeepsOnlyItsLastAttempt(t *testing.T) {
	e := newEnv(t)
	e.handMade(120) // three pages; hand0000 is on the first
	rt := &removeDuringListing{next: e.fake.HTTPClient().Transport}
	rt.remove = func() {
		if !e.fake.RemoveMember(prodID, "hand0000@example.com") {
			t.Error("setup: hand0000 was not a member")
		}
	}
	e.throughTransport(rt, cloudflare.Config{})
	e.mustApply(RunOptions{})
	if rt.pages < 5 {
		t.Fatalf("the listing did not start over: %d pages requested", rt.pages)
	}
	cached, err := e.st.CachedMembers(prodID)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, m := range cached {
		held[strings.ToLower(m.Email)] = true
	}
	if held["hand0000@example.com"] {
		t.Fatal("the member cache still holds the member who left during the listing")
	}
	for i := 1; i < 120; i++ {
		if email := fmt.Sprintf("hand%04d@example.com", i); !held[email] {
			t.Fatalf("the member cache lacks %s", email)
		}
	}
}
