package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store/postgres/pgtest"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// replicaReady is a replica's /readyz body as far as leadership goes.
type replicaReady struct {
	Leader    bool   `json:"leader"`
	ReplicaID string `json:"replica_id"`
	LeaderID  string `json:"leader_id"`
	Epoch     uint64 `json:"epoch"`
}

func readyOf(client *http.Client, addr string) (replicaReady, bool) {
	res, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return replicaReady{}, false
	}
	defer res.Body.Close()
	var r replicaReady
	return r, json.NewDecoder(res.Body).Decode(&r) == nil
}

// leaderAmong waits until exactly one of procs leads (excluding skip) and
// returns its index.
func leaderAmong(t *testing.T, client *http.Client, procs []*proc, skip map[int]bool, within time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		lead := -1
		n := 0
		for i, p := range procs {
			if skip[i] {
				continue
			}
			if r, ok := readyOf(client, p.addr); ok && r.Leader {
				lead, n = i, n+1
			}
		}
		if n == 1 {
			return lead, time.Since(start)
		}
		if n > 1 {
			t.Fatalf("%d replicas lead at once", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no single leader among the replicas within %s", within)
	return -1, 0
}

// Three replicas on one PostgreSQL database and the fake Cloudflare: one
// leads; SCIM writes to any replica reach its reconciler; SIGKILL of the
// leader during a reconcile hands over within the lease, survivors keep
// taking SCIM writes, no invitation is duplicated or lost; a leader
// SIGSTOPped past its lease and continued makes no Cloudflare write.
func TestFailoverThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three replicas")
	}
	t.Setenv("PROC_PG_DSN", pgtest.DSN(t))
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: procCFToken, Clock: cftest.NewClock(time.Now())})
	const lease = 3 * time.Second
	var procs []*proc
	var logs []*syncBuffer
	var cfgs []string
	for i := range 3 {
		d := filepath.Join(dir, fmt.Sprintf("r%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := procConfig(t, d, fake.URL(), "@every 1h", "200ms")
		raw, _ := os.ReadFile(cfg)
		y := statePathLine.ReplaceAllString(string(raw), "state:\n  backend: postgres\n  dsn_env: PROC_PG_DSN\n  lease: "+lease.String())
		if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
		l := newSyncBuffer()
		logs = append(logs, l)
		procs = append(procs, startProc(t, bin, cfg, l))
	}
	client := &http.Client{Timeout: 5 * time.Second}
	call := func(p *proc, method, path string, body any, want int) map[string]any {
		t.Helper()
		code, out, err := scimCall(client, p.addr, method, path, body)
		if err != nil || code != want {
			t.Fatalf("%s %s on %s: %d %v %v", method, path, p.addr, code, err, out)
		}
		return out
	}
	leader, _ := leaderAmong(t, client, procs, nil, 15*time.Second)
	follower := procs[(leader+1)%3]
	leaderID := func() string { r, _ := readyOf(client, procs[leader].addr); return r.ReplicaID }()
	// status through main, on a follower, names the leader.
	if code, out, errOut := runMain("status", "--config", cfgs[(leader+1)%3]); code != 0 || !strings.Contains(out, "(follower)") || !strings.Contains(out, leaderID) {
		t.Errorf("status on a follower must name the leader %s: %d\n%s%s", leaderID, code, out, errOut)
	}
	if code, out, _ := runMain("status", "--config", cfgs[leader]); code != 0 || !strings.Contains(out, "(leader since") {
		t.Errorf("status on the leader: %d\n%s", code, out)
	}

	// Writes through a follower reach the leader's reconciler.
	var ids []string
	for i := range 10 {
		ids = append(ids, call(follower, "POST", "/Users", userBody(fmt.Sprintf("fo%02d@example.com", i)), 201)["id"].(string))
	}
	g := call(follower, "POST", "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "cf-deployers"}, 201)["id"].(string)
	call(follower, "PATCH", "/Groups/"+g, addMemberBody(ids...), 204)
	waitUntil(t, 15*time.Second, "the leader invites the ten pushed through a follower", func() bool { return len(fake.Members(e2eAccount)) == 10 })

	// SIGKILL the leader while it invites (Cloudflare holds each invite).
	fake.Inject(cftest.Fault{Method: http.MethodPost, Route: cftest.RouteMembers, Delay: 300 * time.Millisecond, Times: -1})
	for i := range 10 {
		ids = append(ids, call(follower, "POST", "/Users", userBody(fmt.Sprintf("fk%02d@example.com", i)), 201)["id"].(string))
	}
	call(follower, "PATCH", "/Groups/"+g, addMemberBody(ids[10:]...), 204)
	// The leader is inviting once the first of the ten is in; each takes
	// 300 ms, so the kill falls in the middle of the run.
	waitUntil(t, 10*time.Second, "the leader's first invitation of the second ten", func() bool { return len(fake.Members(e2eAccount)) > 10 })
	killedAt := time.Now()
	procs[leader].kill()
	if n := len(fake.Members(e2eAccount)); n >= 20 {
		t.Fatalf("the leader had invited all %d before the SIGKILL: the kill did not fall during a reconcile", n)
	}
	dead := map[int]bool{leader: true}
	next, took := leaderAmong(t, client, procs, dead, 3*lease)
	t.Logf("failover: replica %d leads %s after the SIGKILL (lease %s)", next, took.Round(10*time.Millisecond), lease)
	if took > lease+2*time.Second {
		t.Errorf("failover took %s, want within the lease %s plus a campaign tick", took, lease)
	}
	// Survivors keep taking SCIM writes.
	for i, p := range procs {
		if !dead[i] {
			call(p, "POST", "/Users", userBody(fmt.Sprintf("survivor%d@example.com", i)), 201)
		}
	}
	fake.ClearFaults()
	waitUntil(t, 20*time.Second, "all twenty invited after the failover", func() bool { return len(fake.Members(e2eAccount)) == 20 })
	invites := map[string]int{}
	for _, w := range fake.Writes() {
		if w.Method == http.MethodPost && w.Status == http.StatusOK {
			var b struct{ Email string }
			_ = json.Unmarshal([]byte(w.Body), &b)
			invites[strings.ToLower(b.Email)]++
		}
	}
	for email, n := range invites {
		if n > 1 {
			t.Errorf("%s invited %d times across the failover", email, n)
		}
	}
	t.Logf("killed at %s; %d invitations, none duplicated", killedAt.Format(time.RFC3339Nano), len(invites))

	// The fake holds all twenty once it has handled the last invitation;
	// the leader may still be committing and logging its answer. Runs
	// follow one another, so the run a new user touches (in no group:
	// nothing to write) finishes only after the one in flight: wait for a
	// finish, so that the stop below lands between runs, not inside one.
	mark := logs[next].String()
	call(procs[next], "POST", "/Users", userBody("idle-probe@example.com"), 201)
	waitUntil(t, 15*time.Second, "the new leader's runs finished", func() bool {
		return strings.Contains(strings.TrimPrefix(logs[next].String(), mark), `"msg":"reconcile finished"`)
	})

	// SIGSTOP the new leader past its lease; another takes over; SIGCONT:
	// the old one makes no Cloudflare write.
	stopped := procs[next]
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	dead[next] = true
	third, took := leaderAmong(t, client, procs, dead, 3*lease)
	t.Logf("after SIGSTOP: replica %d leads %s later", third, took.Round(10*time.Millisecond))
	call(procs[third], "PATCH", "/Users/"+ids[0], map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}}}, 204)
	waitUntil(t, 15*time.Second, "the deactivation applied by the third leader", func() bool { _, ok := fake.Member(e2eAccount, "fo00@example.com"); return !ok })
	before := len(fake.Writes())
	mark = logs[next].String()
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The event to wait on is its stepping down, logged once its term has
	// ended and it no longer says it leads ("lease was lost" comes before
	// that); every write it would make falls before it, so nothing is
	// missed by not sleeping longer.
	waitUntil(t, 3*lease, "the continued old leader stepping down", func() bool {
		return strings.Contains(strings.TrimPrefix(logs[next].String(), mark), "stepped down")
	})
	after := strings.TrimPrefix(logs[next].String(), mark)
	if strings.Contains(after, `"msg":"applied"`) {
		t.Errorf("the continued old leader applied a change:\n%s", after)
	}
	if !strings.Contains(after, "stepped down") {
		t.Errorf("the continued old leader did not step down:\n%s", after)
	}
	for _, w := range fake.Writes()[before:] {
		t.Errorf("a Cloudflare write after the old leader continued: %+v", w)
	}
	if r, ok := readyOf(client, stopped.addr); !ok || r.Leader {
		t.Errorf("the continued old leader says leader=%v (ok %v)", r.Leader, ok)
	}
	// The leaver invariant after it all: Cloudflare holds exactly the
	// active members of the mapped group, each with exactly the mapped
	// role; nobody else (the survivors' users are in no group).
	wpa := fake.RoleID(e2eAccount, "Workers Platform Admin")
	members := fake.Members(e2eAccount)
	if len(members) != 19 {
		t.Errorf("Cloudflare holds %d members, want the 19 active members of cf-deployers", len(members))
	}
	for _, m := range members {
		if m.Email == "fo00@example.com" || strings.HasPrefix(m.Email, "survivor") || len(m.Roles) != 1 || m.Roles[0] != wpa {
			t.Errorf("after the failovers Cloudflare holds %s with %v", m.Email, m.Roles)
		}
	}
}
