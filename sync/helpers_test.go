package sync

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/plan"
)

const (
	prodID    = "0123456789abcdef0123456789abcdef"
	stagingID = "fedcba9876543210fedcba9876543210"
)

// configYAML has two accounts: prod keeps roles (grant_shape: roles), staging
// grants policies.
// Guards keep SPEC's defaults unless syncExtra (lines under sync:, two
// spaces in) overrides them.
func configYAML(syncExtra string) string {
	return `
sync:
  schedule: "@every 1h"
  debounce: 50ms
  max_grant_duration: 24h
  protected: [breakglass@example.com]
` + syncExtra + `
accounts:
  - {name: prod, id: ` + prodID + `, environment: production, grant_shape: roles}
  - {name: staging, id: ` + stagingID + `, environment: staging}
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
    ttl: 2s
  - group: cf-log-readers
    account: staging
    policies:
      - permission_groups: [Workers Platform (Read-only)]
        resource_groups: [staging-workers]
`
}

// env is a reconciler over a real bbolt file and the real Cloudflare
// client talking HTTP to the fake.
type env struct {
	t     testing.TB
	path  string
	st    *store.BoltStore
	fake  *cftest.Server
	cf    *cloudflare.Client
	clock *cftest.Clock
	cfg   *Settings
	m     *Metrics
	r     *Reconciler
	now   func() time.Time // the reconciler's clock

	planOnly bool
}

type envOption func(*envOpts)

type envOpts struct {
	yaml     string
	onChange func(cftest.Change)
	noClient bool
	realTime bool
	planOnly bool
}

func withPlanOnly() envOption { return func(o *envOpts) { o.planOnly = true } }
func withoutToken() envOption { return func(o *envOpts) { o.noClient = true } }
func withRealTime() envOption { return func(o *envOpts) { o.realTime = true } }

// parseConfig reads a configuration file as serve would and gives the
// reconciler's part of it.
func parseConfig(t testing.TB, yaml string) *Settings {
	t.Helper()
	return settingsOf(parseFile(t, yaml))
}

func parseFile(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// testMetrics are collectors in a registry of their own, to read back.
func testMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }

// settingsOf is the wiring's conversion (internal/settings), which a test
// of this package cannot import.
func settingsOf(c *config.Config) *Settings {
	s := c.Sync
	keys := SyncKeys{Schedule: s.Schedule, Debounce: s.Debounce, Mode: s.Mode, Unmanaged: s.Unmanaged,
		MaxGrantDuration: s.MaxGrantDuration, Guards: Guards(s.Guards), Protected: s.Protected}
	return &Settings{Accounts: c.Accounts, Mappings: c.Mappings, Sync: keys, Identity: Identity(c.Identity)}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	o := envOpts{yaml: configYAML("")}
	for _, f := range opts {
		f(&o)
	}
	e := &env{t: t, path: filepath.Join(t.TempDir(), "state.db")}
	e.clock = cftest.NewClock(cftest.Epoch)
	e.now = e.clock.Now
	if o.realTime {
		e.now = time.Now
	}
	e.fake = cftest.New(t, cftest.Options{Clock: e.clock, Accounts: []string{prodID, stagingID}, Token: "test-token", OnChange: o.onChange})
	e.m = testMetrics()
	if !o.noClient {
		// Observed as the daemon's client is: the calls metric counts.
		cf, err := cloudflare.New(cloudflare.Config{
			BaseURL: e.fake.URL(), Token: "test-token", Clock: e.clock, HTTPClient: e.fake.HTTPClient(),
			Observer: e.m.CloudflareObserver(),
		})
		if err != nil {
			t.Fatal(err)
		}
		e.cf = cf
	}
	e.cfg = parseConfig(t, o.yaml)
	e.planOnly = o.planOnly
	e.open()
	return e
}

// open (re)opens the state file and builds a fresh reconciler on it, as a
// restarted daemon would.
func (e *env) open() {
	e.t.Helper()
	st, err := store.Open(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.t.Cleanup(func() { _ = st.Close() })
	opt := Options{Settings: e.cfg, State: st, Metrics: e.m, Now: e.now, PlanOnly: e.planOnly}
	if e.cf != nil {
		opt.Cloudflare = e.cf
	}
	r, err := New(opt)
	if err != nil {
		e.t.Fatal(err)
	}
	e.r = r
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// user creates an active SCIM user whose identity email is email.
func (e *env) user(email string) string {
	e.t.Helper()
	u, err := e.st.CreateUser(e.now(), store.User{UserName: email, Email: email, Active: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

func (e *env) users(n int, format string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.user(fmt.Sprintf(format, i))
	}
	return ids
}

func (e *env) group(name string, memberIDs ...string) string {
	e.t.Helper()
	refs := make([]store.MemberRef, len(memberIDs))
	for i, id := range memberIDs {
		refs[i] = store.MemberRef{ID: id}
	}
	g, err := e.st.CreateGroup(e.now(), store.Group{DisplayName: name}, refs)
	if err != nil {
		e.t.Fatal(err)
	}
	return g.ID
}

func (e *env) deactivate(ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		if _, err := e.st.UpdateUser(id, e.now(), 0, func(u *store.User) error { u.Active = false; return nil }); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) apply(o RunOptions) *Result {
	e.t.Helper()
	res, err := e.r.Apply(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) mustApply(o RunOptions) *Result {
	e.t.Helper()
	res := e.apply(o)
	if res.Aborted != nil {
		e.t.Fatalf("run aborted: %v", res.Aborted)
	}
	for _, f := range res.Failed {
		e.t.Errorf("change failed: %s %s: %v", f.Change.Kind, f.Change.Email, f.Err)
	}
	return res
}

func (e *env) targeted(userIDs, groupIDs, emails []string) *Result {
	e.t.Helper()
	t := newTouched()
	t.add(userIDs, groupIDs, emails)
	res, err := e.r.execute(context.Background(), runRequest{kind: targetedRun, actor: ActorIdPPush, touched: t})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) expiry() *Result {
	e.t.Helper()
	res, err := e.r.execute(context.Background(), runRequest{kind: expiryRun, actor: ActorExpiry})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) roleID(account, name string) string { return e.fake.RoleID(account, name) }

// memberRoles is a member's role names in the fake, sorted; ok false when
// the email is not a member.
func (e *env) memberRoles(account, email string) ([]string, bool) {
	m, ok := e.fake.Member(account, email)
	if !ok {
		return nil, false
	}
	var names []string
	for _, id := range m.Roles {
		for _, n := range e.fake.Roles(account) {
			if n.ID == id {
				names = append(names, n.Name)
			}
		}
	}
	slices.Sort(names)
	return names, true
}

func (e *env) writes(method string) []cftest.Write {
	var out []cftest.Write
	for _, w := range e.fake.Writes() {
		if method == "" || w.Method == method {
			out = append(out, w)
		}
	}
	return out
}

func (e *env) audit(action string) []store.AuditRecord {
	e.t.Helper()
	var out []store.AuditRecord
	err := e.st.Audit(time.Time{}, func(r store.AuditRecord) bool {
		if action == "" || r.Action == action {
			out = append(out, r)
		}
		return true
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func kinds(cs []plan.Change) string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Kind)+" "+c.Email)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// metricValue reads one counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func withYAML(y string) envOption { return func(o *envOpts) { o.yaml = y } }

// runLoop runs the reconciler's loop (Run) until the test ends, and
// returns the context it runs under; Run must end without an error.
func (e *env) runLoop(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ctx
}
