package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/postgres"
	"github.com/scimflare/scimflare/store/postgres/pgtest"
)

// A merged backlog is cut into notifications PostgreSQL accepts, and
// nothing is lost or reordered in the cut, escapes included.
func TestSplitChangeKeepsEveryItemWithinTheLimit(t *testing.T) {
	var m changeMessage
	for i := range 500 {
		m.Users = append(m.Users, fmt.Sprintf("%032x", i))
	}
	for i := range 40 {
		m.Groups = append(m.Groups, fmt.Sprintf("g%031x", i))
	}
	for i := range 300 {
		m.Emails = append(m.Emails, fmt.Sprintf("u%d\"\\\u00e9\u2028@example.com", i))
	}
	parts := splitChange(m, store.MaxNotifyPayload)
	if len(parts) < 2 {
		t.Fatalf("%d parts for a backlog far past the limit", len(parts))
	}
	var got changeMessage
	for i, p := range parts {
		raw, _ := json.Marshal(p)
		if len(raw) > store.MaxNotifyPayload {
			t.Errorf("part %d is %d bytes, past the limit of %d", i, len(raw), store.MaxNotifyPayload)
		}
		if len(p.Users)+len(p.Groups)+len(p.Emails) == 0 {
			t.Errorf("part %d is empty", i)
		}
		if enc := encodeMessage(p); strings.Contains(enc, `"all"`) {
			t.Errorf("part %d became a full-run request", i)
		}
		got.Users = append(got.Users, p.Users...)
		got.Groups = append(got.Groups, p.Groups...)
		got.Emails = append(got.Emails, p.Emails...)
	}
	if !slices.Equal(got.Users, m.Users) || !slices.Equal(got.Groups, m.Groups) || !slices.Equal(got.Emails, m.Emails) {
		t.Errorf("the parts do not add up to the backlog")
	}
	// One item past the limit on its own still goes, as a full-run request.
	huge := changeMessage{Emails: []string{strings.Repeat("x", store.MaxNotifyPayload)}}
	parts = splitChange(huge, store.MaxNotifyPayload)
	if len(parts) != 1 || encodeMessage(parts[0]) != `{"all":true}` {
		t.Errorf("an item past the limit: %d parts, first %q; want one full-run request", len(parts), encodeMessage(parts[0]))
	}
}

// Changes from many SCIM writers at once all reach a listener on real
// PostgreSQL, merged into fewer notifications, and those queued when the
// announcer stops are sent before it returns.
func TestAnnouncerDeliversEveryChangeToTheLeader(t *testing.T) {
	dsn := pgtest.DSN(t)
	st, err := postgres.Open(context.Background(), dsn, postgres.WithMaxConns(4))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var mu gosync.Mutex
	seen := map[string]int{}
	notes, all := 0, 0
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan struct{})
	go func() {
		_ = st.Listen(ctx, changesChannel, func(payload string) {
			var m changeMessage
			if err := json.Unmarshal([]byte(payload), &m); err != nil {
				t.Errorf("malformed notification %q: %v", payload, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if slices.Contains(m.Users, "probe") {
				select {
				case <-listening:
				default:
					close(listening)
				}
				return
			}
			notes++
			if m.All {
				all++
			}
			for _, u := range m.Users {
				seen[u]++
			}
		}, nil)
	}()
	defer cancel()
	// LISTEN is in place once a probe comes back.
	deadline := time.Now().Add(10 * time.Second)
	for probed := false; !probed; {
		if err := st.Notify(changesChannel, encodeMessage(changeMessage{Users: []string{"probe"}})); err != nil {
			t.Fatal(err)
		}
		select {
		case <-listening:
			probed = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the listener never heard the probe")
			}
		}
	}

	a := newAnnouncer(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	lateAnn := newAnnouncer(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); a.run(stop) }()
	const writers, each = 8, 250
	var wg gosync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-u%04d", w, i)
				a.add(scim.Change{UserIDs: []string{id}, Emails: []string{id + "@example.com"}})
			}
		})
	}
	wg.Wait()
	close(stop)
	<-done

	// Changes still queued when the daemon stops go before run returns
	// (the wake-up taken away, so that only the stop is there to see).
	for i := range 10 {
		lateAnn.add(scim.Change{UserIDs: []string{fmt.Sprintf("late-u%02d", i)}})
	}
	<-lateAnn.wake
	lateStop := make(chan struct{})
	close(lateStop)
	lateAnn.run(lateStop)

	want := writers*each + 10
	waitFor := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == want || time.Now().After(waitFor) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != want || all != 0 {
		t.Fatalf("the leader heard %d of %d users (%d full-run requests)", len(seen), want, all)
	}
	for u, n := range seen {
		if n != 1 {
			t.Errorf("user %s announced %d times", u, n)
		}
	}
	if notes >= want {
		t.Errorf("%d notifications for %d changes: nothing was merged", notes, want)
	}
	t.Logf("%d changes from %d writers and a stop in %d notifications", want, writers, notes)
}
