package main

// Soak: SCIMFLARE_SOAK=10m go test -run TestSoak -timeout 30m ./cmd/scimflare
// Mixed SCIM load against a real `serve` process, with reconciles against
// the in-process fake Cloudflare, sampling the process's RSS, goroutines
// and open files every minute. Skipped unless SCIMFLARE_SOAK is set.

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

type soakSample struct {
	at         time.Duration
	rssKB      int
	goroutines int
	fds        int
	ops        int64
}

func sampleProc(t *testing.T, pid int, addr string) (rssKB, goroutines, fds int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	f.Close()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	fds = len(ents)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
			goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return rssKB, goroutines, fds
}

func TestSoak(t *testing.T) {
	spec := os.Getenv("SCIMFLARE_SOAK")
	if spec == "" {
		t.Skip("set SCIMFLARE_SOAK=10m to run the soak")
	}
	dur, err := time.ParseDuration(spec)
	if err != nil || dur < time.Minute {
		t.Fatalf("SCIMFLARE_SOAK=%q: want a duration of at least 1m", spec)
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	// A real clock for the fake, and Cloudflare's real 1200/5min limit is
	// not the subject here: the client's own budget (1200) paces it.
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: procCFToken,
		Clock: cftest.NewClock(time.Now()), RateLimit: 1 << 30})
	cfg := procConfig(t, dir, fake.URL(), "@every 1m", "2s")
	logs := newSyncBuffer()
	p := startProc(t, bin, cfg, logs)
	client := &http.Client{Timeout: 30 * time.Second}

	deployers, oncall := "", ""
	for _, g := range []*string{&deployers, &oncall} {
		name := "cf-deployers"
		if g == &oncall {
			name = "cf-oncall"
		}
		code, body, err := scimCall(client, p.addr, "POST", "/Groups", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": name})
		if err != nil || code != 201 {
			t.Fatalf("create group %s: %d %v", name, code, err)
		}
		*g = body["id"].(string)
	}

	// The population stays near 1000 users: each worker deletes its oldest
	// beyond 250, so memory growth would be a leak, not data.
	const workers, perWorker = 4, 250
	var ops, errs atomic.Int64
	stop := make(chan struct{})
	var wg gosync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			var mine []string
			seq := 0
			call := func(method, path string, body any, want ...int) map[string]any {
				code, out, err := scimCall(client, p.addr, method, path, body)
				ops.Add(1)
				ok := err == nil
				if ok && len(want) > 0 {
					ok = false
					for _, c := range want {
						ok = ok || code == c
					}
				}
				if !ok {
					if errs.Add(1) <= 5 {
						t.Logf("soak: %s %s: %d %v %v", method, path, code, err, out)
					}
				}
				return out
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch op := rng.IntN(10); {
				case op < 3 || len(mine) < 10: // create, into a group
					seq++
					email := fmt.Sprintf("soak-w%d-%d@example.com", w, seq)
					out := call("POST", "/Users", userBody(email), 201)
					id, _ := out["id"].(string)
					if id == "" {
						continue
					}
					mine = append(mine, id)
					g := deployers
					if rng.IntN(4) == 0 {
						g = oncall
					}
					call("PATCH", "/Groups/"+g, addMemberBody(id), 200, 204)
					if len(mine) > perWorker {
						call("DELETE", "/Users/"+mine[0], nil, 204)
						mine = mine[1:]
					}
				case op < 5: // update
					id := mine[rng.IntN(len(mine))]
					call("PATCH", "/Users/"+id, map[string]any{
						"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
						"Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": fmt.Sprintf("Soak %d", rng.IntN(1e6))}},
					}, 200, 204)
				case op < 6: // deactivate or reactivate
					id := mine[rng.IntN(len(mine))]
					call("PATCH", "/Users/"+id, map[string]any{
						"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
						"Operations": []any{map[string]any{"op": "replace", "value": map[string]any{"active": rng.IntN(2) == 0}}},
					}, 200, 204)
				case op < 7: // member move: out of one group, into the other
					id := mine[rng.IntN(len(mine))]
					from, to := deployers, oncall
					if rng.IntN(2) == 0 {
						from, to = to, from
					}
					call("PATCH", "/Groups/"+from, map[string]any{
						"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
						"Operations": []any{map[string]any{"op": "remove", "path": `members[value eq "` + id + `"]`}},
					}, 200, 204)
					call("PATCH", "/Groups/"+to, addMemberBody(id), 200, 204)
				default: // lookups
					id := mine[rng.IntN(len(mine))]
					u := call("GET", "/Users/"+id, nil, 200)
					if name, _ := u["userName"].(string); name != "" {
						call("GET", "/Users"+quoteFilter("userName", name), nil, 200)
					}
					call("GET", "/Groups/"+deployers+"?excludedAttributes=members", nil, 200)
					call("GET", fmt.Sprintf("/Users?startIndex=%d&count=50", 1+rng.IntN(500)), nil, 200)
				}
			}
		}()
	}

	start := time.Now()
	var samples []soakSample
	take := func() {
		rss, gr, fds := sampleProc(t, p.pid(), p.addr)
		s := soakSample{at: time.Since(start).Round(time.Second), rssKB: rss, goroutines: gr, fds: fds, ops: ops.Load()}
		samples = append(samples, s)
		var dbSize int64
		if fi, err := os.Stat(filepath.Join(dir, "state.db")); err == nil {
			dbSize = fi.Size()
		}
		// bbolt maps the state file, so RSS follows its size.
		t.Logf("soak %6s: RSS %6.1f MiB, goroutines %4d, open files %3d, state file %5.1f MiB, SCIM requests %d, Cloudflare members %d",
			s.at, float64(rss)/1024, gr, fds, float64(dbSize)/(1<<20), s.ops, len(fake.Members(e2eAccount)))
	}
	take()
	tick := time.NewTicker(time.Minute)
	end := time.After(dur)
loop:
	for {
		select {
		case <-tick.C:
			take()
		case <-end:
			break loop
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	take()

	elapsed := time.Since(start)
	t.Logf("soak: %d SCIM requests in %s (%.0f/s), %d unexpected answers; Cloudflare: %d calls, %d writes",
		ops.Load(), elapsed.Round(time.Second), float64(ops.Load())/elapsed.Seconds(), errs.Load(), fake.TotalCalls(), len(fake.Writes()))
	if n := errs.Load(); n > ops.Load()/1000 {
		t.Errorf("%d of %d SCIM requests got an unexpected answer", n, ops.Load())
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("the daemon logged errors during the soak:\n%s", grepLines(logs.String(), `"level":"ERROR"`))
	}
	// Growth is judged from the one-minute sample (after warm-up) to the end.
	base, last := samples[1], samples[len(samples)-1]
	if last.rssKB > 2*base.rssKB+32*1024 {
		t.Errorf("RSS grew from %d KiB at 1m to %d KiB at the end", base.rssKB, last.rssKB)
	}
	if last.goroutines > 2*base.goroutines+20 {
		t.Errorf("goroutines grew from %d at 1m to %d at the end", base.goroutines, last.goroutines)
	}
	if last.fds > 2*base.fds+20 {
		t.Errorf("open files grew from %d at 1m to %d at the end", base.fds, last.fds)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("… %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}
