package daemon_test

// Deprovisioning latency (issue 10 point 7): the time from an IdP's SCIM
// `active: false` PATCH to the DELETE (or PUT) for that member reaching
// Cloudflare, through the daemon exactly as `serve` wires it.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

const (
	// deprovDebounce is sync.debounce for the benchmark. The target is
	// p99 <= deprovDebounce + 2s.
	deprovDebounce  = time.Second
	deprovAccount   = "0123456789abcdef0123456789abcdef"
	deprovGroup     = "cf-deployers"
	deprovRole      = "Workers Platform Admin"
	deprovTokenEnv  = "SCIMFLARE_DEPROV_BENCH_SCIM_TOKEN"
	deprovSCIMToken = "deprov-bench-scim-token-7c41"
	deprovCFToken   = "deprov-bench-cloudflare-token-2e9d"
	// deprovRound is how many users one benchmark iteration deactivates
	// (and how many latencies p50/p99 are taken over).
	deprovRound = 100
	// deprovStay are mapped members never deactivated, so that the
	// account never empties.
	deprovStay = 20
	// deprovWait bounds the wait for one member's removal to reach the fake.
	deprovWait = deprovDebounce + 2*time.Minute
	// deprovSpacing is the pause between one removal reaching Cloudflare
	// and the next PATCH in the spaced variant: longer than the tail of a
	// run (finish()) at 100k, so that each deactivation finds the
	// reconciler idle.
	deprovSpacing = 5 * time.Second
	// deprovSettle is the pause after a round for the last run to end.
	deprovSettle = 10 * time.Second
)

// BenchmarkDeprovisionLatency measures, over real HTTP into the real SCIM
// handler and out of the real Cloudflare client into the cftest fake (with
// its default behaviour), the time from sending a user's `active: false`
// PATCH to the fake receiving the DELETE for that member. The daemon is
// daemon.Run on a real bbolt file with sync.debounce 1s; a transparent
// proxy in front of the fake notes when each member write arrives.
//
// Shapes: "mapped=all" puts every user of the store in the mapped group,
// all but (variants*deprovRound)+deprovStay of them deactivated earlier
// (so the account holds 220 or 320 members while every run flattens, and
// finish() decodes, the whole group: the directory-wide cost issue 12
// measured); "mapped=220" keeps the other users active but in no mapped
// group (only 220 users in it). Each shape runs its variants
// on one daemon: "one-at-a-time" sends the next PATCH as soon as the
// previous removal reached Cloudflare (so it may find the previous run
// still in its finish()); "spaced-5s" (100k, mapped=all only) waits 5s
// more, so that each deactivation finds the reconciler idle; "burst" sends
// deprovRound PATCHes from 4 concurrent clients and waits for all the
// removals.
//
// One iteration is a round of deprovRound users; run with -benchtime=1x
// (the pool holds one round per variant). The store is seeded directly
// (setup, not measured); setup of the 100k shapes takes about a minute.
// All shapes take about 25 minutes on 2 shared cores; pick one with e.g.
// -bench 'BenchmarkDeprovisionLatency/users=10k'. Figures: BENCHMARKS.md.
func BenchmarkDeprovisionLatency(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds up to 100k users and waits out a debounce per deactivation")
	}
	b.Setenv(deprovTokenEnv, deprovSCIMToken)
	for _, sh := range []struct {
		name      string
		users     int
		mappedAll bool
		spaced    bool // also run the spaced variant
	}{
		{"users=10k,mapped=all", 10_000, true, false},
		{"users=100k,mapped=all", 100_000, true, true},
		{"users=100k,mapped=220", 100_000, false, false},
	} {
		b.Run(sh.name, func(b *testing.B) {
			rounds := 2
			if sh.spaced {
				rounds++
			}
			d := startDeprov(b, sh.users, sh.mappedAll, rounds)
			b.Run("one-at-a-time", func(b *testing.B) { d.bench(b, 1, 0) })
			if sh.spaced {
				b.Run("spaced-5s", func(b *testing.B) { d.bench(b, 1, deprovSpacing) })
			}
			b.Run("burst", func(b *testing.B) { d.bench(b, 4, 0) })
		})
	}
}

// deprovUser is one user the benchmark may deactivate.
type deprovUser struct {
	id, email, memberID string
}

type deprovEnv struct {
	fake    *cftest.Server
	seen    *arrivals
	root    string // http://addr of the daemon
	client  *http.Client
	pool    []deprovUser // not yet deactivated, in the mapped group, in Cloudflare
	stayers []string     // emails that must keep their membership
}

// arrivals notes when a member write (DELETE or PUT of
// /accounts/{id}/members/{member_id}) reaches the fake.
type arrivals struct {
	mu   gosync.Mutex
	want map[string]chan time.Time // member id ->
}

func (a *arrivals) expect(memberID string) <-chan time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan time.Time, 1)
	a.want[memberID] = ch
	return ch
}

func (a *arrivals) note(memberID string, at time.Time) {
	a.mu.Lock()
	ch := a.want[memberID]
	delete(a.want, memberID)
	a.mu.Unlock()
	if ch != nil {
		ch <- at
	}
}

// observe wraps the fake: a reverse proxy that notes member writes the
// moment they arrive, then hands them on unchanged.
func (a *arrivals) observe(b *testing.B, fake *cftest.Server) string {
	target, err := url.Parse(strings.TrimSuffix(fake.URL(), cftest.BasePath))
	if err != nil {
		b.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	prefix := cftest.BasePath + "/accounts/"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		if r.Method == http.MethodDelete || r.Method == http.MethodPut {
			if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
				if seg := strings.Split(rest, "/"); len(seg) == 3 && seg[1] == "members" {
					a.note(seg[2], at)
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return srv.URL + cftest.BasePath
}

// seedDeprov writes n users and the mapped group into a new state file
// through the store's API, in shared unsynced commits: setup, not what is
// measured. Users 0 .. active-1 are active; with mappedAll the mapped
// group holds all n users, else only the active ones.
func seedDeprov(b *testing.B, path string, n, active int, mappedAll bool) []string {
	b.Helper()
	st, err := store.Open(path, store.WithBatch(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	st.DB().NoSync = true
	now := time.Now().Add(-24 * time.Hour)
	ids := make([]string, n)
	const workers = 64
	var wg gosync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				u, err := st.CreateUser(now, store.User{
					UserName: deprovEmail(i), Email: deprovEmail(i), ExternalID: fmt.Sprintf("ext-%d", i),
					Active: !mappedAll || i < active,
					Doc:    []byte(`{"name":{"givenName":"Given","familyName":"Family"},"displayName":"Given Family"}`),
				})
				if err != nil {
					errc <- err
					return
				}
				ids[i] = u.ID
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	members := ids[:active]
	if mappedAll {
		members = ids
	}
	refs := make([]store.MemberRef, len(members))
	for i, id := range members {
		refs[i] = store.MemberRef{ID: id, Type: store.MemberUser}
	}
	if _, err := st.CreateGroup(now, store.Group{DisplayName: deprovGroup}, refs); err != nil {
		b.Fatal(err)
	}
	if !mappedAll {
		// The rest of the directory sits in a group no mapping names.
		all := make([]store.MemberRef, n)
		for i, id := range ids {
			all[i] = store.MemberRef{ID: id, Type: store.MemberUser}
		}
		if _, err := st.CreateGroup(now, store.Group{DisplayName: "all-staff"}, all); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.DB().Sync(); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	return ids
}

func deprovEmail(i int) string { return fmt.Sprintf("user%d@example.com", i) }

// startDeprov seeds the store, starts the daemon against the fake and waits
// for its start-up run to invite every active mapped user.
func startDeprov(b *testing.B, n int, mappedAll bool, rounds int) *deprovEnv {
	b.Helper()
	dir := b.TempDir()
	statePath := filepath.Join(dir, "state.db")
	active := rounds*deprovRound + deprovStay
	seedStart := time.Now()
	ids := seedDeprov(b, statePath, n, active, mappedAll)
	b.Logf("seeded %d users (%d active in %s) in %s", n, active, deprovGroup, time.Since(seedStart).Round(time.Millisecond))

	fake := cftest.New(b, cftest.Options{Accounts: []string{deprovAccount}, Token: deprovCFToken})
	seen := &arrivals{want: map[string]chan time.Time{}}
	cfURL := seen.observe(b, fake)
	tokenFile := filepath.Join(dir, "cf-token")
	if err := os.WriteFile(tokenFile, []byte(deprovCFToken+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	y := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
admin:
  socket: %s
state:
  path: %s
scim:
  token_env: %s
cloudflare:
  api_token_env: ""
  api_token_file: %s
  base_url: %s
  request_budget: 1200
sync:
  schedule: "@every 1h"
  debounce: %s
  mode: enforce
  guards:
    max_removals: 1000
    max_removal_percent: 100
    max_removals_per_window: 100000
accounts:
  - {name: prod, id: %s, environment: production}
mappings:
  - {group: %s, account: prod, roles: [%s]}
`, filepath.Join(dir, "admin.sock"), statePath, deprovTokenEnv, tokenFile, cfURL, deprovDebounce, deprovAccount, deprovGroup, deprovRole)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		b.Fatal(err)
	}

	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, cfg, daemon.Options{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})), Ready: ready})
	}()
	e := &deprovEnv{fake: fake, seen: seen, client: &http.Client{Timeout: time.Minute}}
	started := time.Now()
	select {
	case addr := <-ready:
		e.root = "http://" + addr
	case err := <-done:
		cancel()
		b.Fatalf("daemon did not start: %v\n%s", err, logs.String())
	case <-time.After(time.Minute):
		cancel()
		b.Fatal("daemon did not start within a minute")
	}
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("daemon stopped with %v", err)
			}
		case <-time.After(time.Minute):
			b.Error("daemon did not stop within a minute")
		}
		if b.Failed() {
			b.Logf("daemon logs (warnings and errors):\n%s", logs.String())
		}
	})

	// The start-up full run invites every active mapped user.
	e.waitFor(b, 5*time.Minute, "the start-up run did not invite every active mapped user", func() bool {
		return e.metric(b, "scimflare_reconcile_runs_total", `outcome="success"`, `trigger="schedule"`) >= 1
	})
	members := map[string]string{}
	for _, m := range fake.Members(deprovAccount) {
		members[strings.ToLower(m.Email)] = m.ID
	}
	if len(members) != active {
		b.Fatalf("Cloudflare holds %d members after the start-up run, want %d\n%s", len(members), active, logs.String())
	}
	for i := range active {
		email := deprovEmail(i)
		mid, ok := members[email]
		if !ok {
			b.Fatalf("%s was not invited", email)
		}
		if i < rounds*deprovRound {
			e.pool = append(e.pool, deprovUser{id: ids[i], email: email, memberID: mid})
		} else {
			e.stayers = append(e.stayers, email)
		}
	}
	b.Logf("daemon up; start-up run invited %d members in %s", active, time.Since(started).Round(time.Millisecond))
	return e
}

// bench deactivates one round of users per iteration with `clients`
// concurrent SCIM clients (1: each PATCH waits for the previous removal to
// reach Cloudflare, and then for gap) and reports the latency percentiles.
func (e *deprovEnv) bench(b *testing.B, clients int, gap time.Duration) {
	var lat, acks []time.Duration
	runsBefore := e.runStats(b)
	for b.Loop() {
		if len(e.pool) < deprovRound {
			b.Fatalf("no users left to deactivate: run with -benchtime=1x (one round of %d per variant)", deprovRound)
		}
		round := e.pool[:deprovRound]
		e.pool = e.pool[deprovRound:]
		l, a := e.round(b, round, clients, gap)
		for i := range l {
			if l[i] > deprovDebounce+2*time.Second {
				b.Logf("slow: deactivation %d of the round took %s (its PATCH %s)", i+1, l[i].Round(time.Millisecond), a[i].Round(time.Millisecond))
			}
		}
		lat, acks = append(lat, l...), append(acks, a...)
		// The proxy notes a write as it arrives; the fake applies it a
		// moment later.
		e.waitFor(b, 30*time.Second, "a deactivated user is still a member of the account", func() bool {
			return !slices.ContainsFunc(round, func(u deprovUser) bool {
				_, ok := e.fake.Member(deprovAccount, u.email)
				return ok
			})
		})
	}
	b.StopTimer()
	for _, email := range e.stayers {
		if _, ok := e.fake.Member(deprovAccount, email); !ok {
			b.Fatalf("%s lost its membership but was never deactivated", email)
		}
	}
	slices.Sort(lat)
	slices.Sort(acks)
	b.ReportMetric(ms(pct(lat, 50)), "p50-ms")
	b.ReportMetric(ms(pct(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(pct(acks, 50)), "scim-ack-p50-ms")
	b.ReportMetric(ms(pct(acks, 99)), "scim-ack-p99-ms")
	b.Logf("latency p10 %s, p25 %s, p50 %s, p75 %s, p90 %s, p95 %s, p99 %s, max %s", pct(lat, 10), pct(lat, 25), pct(lat, 50), pct(lat, 75), pct(lat, 90), pct(lat, 95), pct(lat, 99), lat[len(lat)-1])
	// The daemon's own account of the targeted runs: how many, and how
	// long each took. Its histogram is observed before finish() runs, so
	// it leaves out finish()'s expiries pass. The pause lets the last run
	// (and its finish()) end before the next variant starts.
	time.Sleep(deprovSettle)
	after := e.runStats(b)
	if n := after.count - runsBefore.count; n > 0 {
		b.ReportMetric(n, "runs")
		b.ReportMetric((after.sum-runsBefore.sum)/n*1000, "run-mean-ms")
	}
	if target := deprovDebounce + 2*time.Second; pct(lat, 99) > target {
		b.Logf("p99 %s is over the target sync.debounce + 2s = %s", pct(lat, 99).Round(time.Millisecond), target)
	}
}

// round deactivates users and returns, per user, the time from sending
// the PATCH to its removal reaching Cloudflare, and the PATCH's own time.
func (e *deprovEnv) round(b *testing.B, users []deprovUser, clients int, gap time.Duration) (lat, acks []time.Duration) {
	lat = make([]time.Duration, len(users))
	acks = make([]time.Duration, len(users))
	arrived := make([]<-chan time.Time, len(users))
	sent := make([]time.Time, len(users))
	var wg gosync.WaitGroup
	errc := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for i := c; i < len(users); i += clients {
				arrived[i] = e.seen.expect(users[i].memberID)
				sent[i] = time.Now()
				if err := e.deactivate(users[i].id); err != nil {
					errc <- err
					return
				}
				acks[i] = time.Since(sent[i])
				if clients > 1 {
					continue
				}
				if err := e.await(users[i], arrived[i], sent[i], &lat[i]); err != nil {
					errc <- err
					return
				}
				time.Sleep(gap)
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if clients > 1 {
		for i, u := range users {
			if err := e.await(u, arrived[i], sent[i], &lat[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	return lat, acks
}

func (e *deprovEnv) await(u deprovUser, arrived <-chan time.Time, sent time.Time, lat *time.Duration) error {
	select {
	case at := <-arrived:
		*lat = at.Sub(sent)
		return nil
	case <-time.After(deprovWait):
		return fmt.Errorf("no DELETE or PUT for %s (member %s) reached Cloudflare within %s of its deactivation", u.email, u.memberID, deprovWait)
	}
}

// deactivate sends the PATCH Okta and Entra send for a deactivation.
func (e *deprovEnv) deactivate(userID string) error {
	body := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`
	req, err := http.NewRequest(http.MethodPatch, e.root+"/scim/v2/Users/"+userID, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+deprovSCIMToken)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("PATCH user %s: %w", userID, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("PATCH user %s: %d %s", userID, resp.StatusCode, raw)
	}
	return nil
}

type runStats struct{ count, sum float64 }

// runStats reads the targeted runs' duration histogram from /metrics.
func (e *deprovEnv) runStats(b *testing.B) runStats {
	return runStats{
		count: e.metric(b, "scimflare_reconcile_duration_seconds_count", `trigger="idp-push"`),
		sum:   e.metric(b, "scimflare_reconcile_duration_seconds_sum", `trigger="idp-push"`),
	}
}

// metric sums the samples of name whose labels include every one of
// labels, from the daemon's /metrics.
func (e *deprovEnv) metric(b *testing.B, name string, labels ...string) float64 {
	resp, err := e.client.Get(e.root + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		lbl, val, ok := strings.Cut(rest, "} ")
		if !ok || !hasAll(lbl, labels) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			b.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return sum
}

func hasAll(s string, subs []string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func (e *deprovEnv) waitFor(b *testing.B, limit time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("%s within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pct is the nearest-rank percentile p of sorted.
func pct(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
