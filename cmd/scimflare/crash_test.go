package main

// Crash safety: the real binary, killed with SIGKILL at random moments while
// SCIM writes and reconciles are in flight, restarted on the same state
// file. Every acknowledged write must survive and the bbolt file must pass
// its consistency check.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// checkBolt opens the state file read-only and runs bbolt's consistency
// check over every page.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the state file after a kill: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("%d problems: %s", len(errs), strings.Join(errs, "; "))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bbolt consistency check: %v", err)
	}
}

func TestCrashKillsLoseNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it a dozen times")
	}
	const kills = 12
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	cfg := procConfig(t, dir, "", "@every 1h", "1s") // plan-only: the store is the subject
	state := filepath.Join(dir, "state.db")
	logs := newSyncBuffer()
	p := startProc(t, bin, cfg, logs)
	var addr atomic.Value
	addr.Store(p.addr)
	client := &http.Client{Timeout: 5 * time.Second}

	var groups []string
	for i := range 3 {
		code, body, err := scimCall(client, p.addr, "POST", "/Groups", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": fmt.Sprintf("crash-group-%d", i)})
		if err != nil || code != http.StatusCreated {
			t.Fatalf("create group: %d %v", code, err)
		}
		groups = append(groups, body["id"].(string))
	}

	var mu gosync.Mutex
	ackedUsers := map[string]string{}     // id -> userName
	ackedMembers := map[string][]string{} // group id -> user ids
	var attempts, refused atomic.Int64
	stop := make(chan struct{})
	var wg gosync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				a := addr.Load().(string)
				// A fresh name each time: a create whose answer was lost may
				// or may not have landed, and is not counted either way.
				email := fmt.Sprintf("crash-w%d-%d@example.com", w, seq)
				attempts.Add(1)
				code, body, err := scimCall(client, a, "POST", "/Users", userBody(email))
				if err != nil || code != http.StatusCreated {
					refused.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				id := body["id"].(string)
				mu.Lock()
				ackedUsers[id] = email
				mu.Unlock()
				if rng.IntN(2) == 0 {
					g := groups[rng.IntN(len(groups))]
					attempts.Add(1)
					code, _, err := scimCall(client, a, "PATCH", "/Groups/"+g, addMemberBody(id))
					if err == nil && (code == http.StatusNoContent || code == http.StatusOK) {
						mu.Lock()
						ackedMembers[g] = append(ackedMembers[g], id)
						mu.Unlock()
					} else {
						refused.Add(1)
					}
				}
			}
		}()
	}

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	start := time.Now()
	for i := range kills {
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		p.kill()
		checkBolt(t, state)
		if time.Since(start) > 60*time.Second {
			t.Fatalf("only %d kills in 60s", i+1)
		}
		p = startProc(t, bin, cfg, logs)
		addr.Store(p.addr)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(ackedUsers) < 50 {
		t.Fatalf("only %d acknowledged creates: the load did not run", len(ackedUsers))
	}
	for id, email := range ackedUsers {
		code, body, err := scimCall(client, p.addr, "GET", "/Users/"+id, nil)
		if err != nil || code != http.StatusOK || !strings.EqualFold(fmt.Sprint(body["userName"]), email) {
			t.Errorf("acknowledged user %s (%s) after %d kills: %d %v %v", id, email, kills, code, err, body)
		}
	}
	nMembers := 0
	for _, g := range groups {
		code, body, err := scimCall(client, p.addr, "GET", "/Groups/"+g, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("group %s: %d %v", g, code, err)
		}
		for _, id := range ackedMembers[g] {
			nMembers++
			if !hasMember(body, id) {
				t.Errorf("acknowledged member %s of group %s lost after %d kills", id, g, kills)
			}
		}
	}
	p.kill()
	checkBolt(t, state)
	t.Logf("%d SIGKILLs in %s; %d acknowledged creates and %d acknowledged member adds all present; %d of %d writes unacknowledged (in flight at a kill or sent while down); bbolt check clean after every kill",
		kills, time.Since(start).Round(100*time.Millisecond), len(ackedUsers), nMembers, refused.Load(), attempts.Load())
}

var expiryLine = regexp.MustCompile(`^\s+(\S+)\s+\(in [^)]*\)\s+(.*)$`)

// pendingExpiries runs `scimflare status` against the child over its admin
// socket and returns the expiry lines without their "(in …)" countdown.
func pendingExpiries(t *testing.T, cfgPath string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "--config", cfgPath}, &out, &errOut); code != 0 {
		t.Fatalf("status: %d %s", code, errOut.String())
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if m := expiryLine.FindStringSubmatch(l); m != nil {
			lines = append(lines, m[1]+" "+strings.Join(strings.Fields(m[2]), " "))
		}
	}
	slices.Sort(lines)
	return lines
}

func TestCrashDuringReconcileConvergesWithoutDuplicateInvites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it mid-reconcile")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	// The fake lives in this process, so it survives the daemon's kills.
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: procCFToken, Clock: cftest.NewClock(time.Now())})
	cfg := procConfig(t, dir, fake.URL(), "@every 1h", "200ms")
	state := filepath.Join(dir, "state.db")
	logs := newSyncBuffer()
	p := startProc(t, bin, cfg, logs)
	client := &http.Client{Timeout: 5 * time.Second}
	call := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		code, out, err := scimCall(client, p.addr, method, path, body)
		if err != nil || code != want {
			t.Fatalf("%s %s: %d %v %v", method, path, code, err, out)
		}
		return out
	}
	deployers := call("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "cf-deployers"}, 201)["id"].(string)
	oncall := call("POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "cf-oncall"}, 201)["id"].(string)
	var ids, emails []string
	for i := range 20 {
		email := fmt.Sprintf("rec%02d@example.com", i)
		ids = append(ids, call("POST", "/Users", userBody(email), 201)["id"].(string))
		emails = append(emails, email)
	}
	// Every invitation is held 300ms by Cloudflare, so the reconcile that
	// follows the pushes is in flight for seconds.
	fake.Inject(cftest.Fault{Method: http.MethodPost, Route: cftest.RouteMembers, Delay: 300 * time.Millisecond, Times: -1})
	call("PATCH", "/Groups/"+deployers, addMemberBody(ids...), 204)
	call("PATCH", "/Groups/"+oncall, addMemberBody(ids[:5]...), 204)
	// Pending expiries follow the targeted run that plans the pushes (it
	// starts after the debounce, before its first Cloudflare call).
	var before []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if before = pendingExpiries(t, cfg); len(before) == 5 {
			break
		}
	}
	if len(before) != 5 {
		t.Fatalf("pending expiries before the kills: %q, want the 5 on-call grants", before)
	}

	rng := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	killsMidInvite := 0
	for range 3 {
		// Wait for an invitation to arrive at Cloudflare, then kill while
		// Cloudflare holds it: the reconcile is mid-flight.
		seen := fake.Calls(http.MethodPost, cftest.RouteMembers)
		deadline := time.Now().Add(15 * time.Second)
		for fake.Calls(http.MethodPost, cftest.RouteMembers) == seen {
			if time.Now().After(deadline) {
				t.Fatalf("no invitation reached Cloudflare within 15s:\n%s", logs.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		p.kill()
		killsMidInvite++
		checkBolt(t, state)
		p = startProc(t, bin, cfg, logs)
		if got := pendingExpiries(t, cfg); !slices.Equal(got, before) {
			t.Errorf("pending expiries changed across a kill:\n got %q\nwant %q", got, before)
		}
	}
	if members := len(fake.Members(e2eAccount)); members >= 20 {
		t.Fatalf("all %d invitations landed before the kills: nothing was in flight", members)
	}
	fake.ClearFaults()

	// The restarted daemon's own runs converge; no apply is needed.
	wpa, admin := fake.RoleID(e2eAccount, "Workers Platform Admin"), fake.RoleID(e2eAccount, "Administrator")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := len(fake.Members(e2eAccount)) == 20
		for i, email := range emails {
			m, found := fake.Member(e2eAccount, email)
			want := []string{wpa}
			if i < 5 {
				want = []string{admin, wpa}
			}
			slices.Sort(m.Roles)
			slices.Sort(want)
			ok = ok && found && slices.Equal(m.Roles, want)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no convergence 30s after the last restart: %d members\n%s", len(fake.Members(e2eAccount)), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	perEmail := map[string]int{}
	for _, w := range fake.Writes() {
		if w.Method == http.MethodPost && w.Route == cloudflare.RouteMembers && w.Status == http.StatusOK {
			var b struct{ Email string }
			_ = json.Unmarshal([]byte(w.Body), &b)
			perEmail[strings.ToLower(b.Email)]++
		}
	}
	for _, email := range emails {
		if perEmail[email] != 1 {
			t.Errorf("%s invited %d times, want exactly once", email, perEmail[email])
		}
	}
	if got := pendingExpiries(t, cfg); !slices.Equal(got, before) {
		t.Errorf("pending expiries after convergence:\n got %q\nwant %q", got, before)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"plan", "--detailed-exitcode", "--config", cfg}, &out, &errOut); code != 0 {
		t.Errorf("plan after convergence: exit %d, want 0 (nothing to do)\n%s%s", code, out.String(), errOut.String())
	}
	p.kill()
	checkBolt(t, state)
	t.Logf("%d kills with an invitation in flight; converged to 20 members, one invitation each; %d pending expiries kept", killsMidInvite, len(before))
}
