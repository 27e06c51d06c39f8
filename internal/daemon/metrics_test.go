package daemon_test

import (
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
)

var updateMetrics = flag.Bool("update-metrics", false, "rewrite testdata/metrics.golden from the running daemon")

// TestMetricsPageIsUnchanged: the scimflare_ families /metrics of a running
// daemon serves (name, type, label names and help text) are those of
// testdata/metrics.golden, written before each subsystem took its own
// collectors. Dashboards and alerts are written against these; a rename, a
// new label or a lost family fails here. The daemon runs against the fake
// Cloudflare in enforce mode, takes one SCIM user into a mapped group and
// applies it, so that the reconciler's labelled families have series.
func TestMetricsPageIsUnchanged(t *testing.T) {
	r, err := startCred(t, credOptions{cfToken: credCFOld, noOIDC: true})
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("the startup reconcile", func() bool { code, _ := r.readyz(); return code == 200 })
	code, body := r.do("POST", "/scim/v2/Users", credSCIMToken, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ann@example.com","active":true}`)
	if code != 201 {
		t.Fatalf("create user: %d %s", code, body)
	}
	var user struct{ ID string }
	if err := json.Unmarshal([]byte(body), &user); err != nil {
		t.Fatal(err)
	}
	code, body = r.do("POST", "/scim/v2/Groups", credSCIMToken, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"cf-deployers","members":[{"value":"`+user.ID+`"}]}`)
	if code != 201 {
		t.Fatalf("create group: %d %s", code, body)
	}
	var page string
	r.waitFor("the targeted run's add_member", func() bool {
		_, page = r.get("/metrics", "")
		return strings.Contains(page, `scimflare_changes_applied_total{kind="add_member"} 1`)
	})
	got := metricFamilies(page)
	if *updateMetrics {
		if err := os.WriteFile("testdata/metrics.golden", []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile("testdata/metrics.golden")
	if err != nil {
		t.Fatal(err)
	}
	// A line starting with "~" is a family this run does not reach (it
	// needs a refused change): checked when present, not required.
	var want, optional []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if rest, ok := strings.CutPrefix(l, "~"); ok {
			optional = append(optional, rest)
		} else {
			want = append(want, l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) && !slices.Contains(optional, l) {
			t.Errorf("/metrics serves a family not in testdata/metrics.golden (or with another type, labels or help):\n  %s", l)
		}
	}
	for _, l := range want {
		if !slices.Contains(got, l) {
			t.Errorf("/metrics lacks:\n  %s", l)
		}
	}
	if len(got) < 20 {
		t.Fatalf("read %d families: the page was not parsed", len(got))
	}
}

// metricFamilies reads a Prometheus text page into one line per scimflare_
// family: "name type {label,names} help", sorted.
func metricFamilies(page string) []string {
	help, typ, labels := map[string]string{}, map[string]string{}, map[string]map[string]bool{}
	var names []string
	for _, l := range strings.Split(page, "\n") {
		switch {
		case strings.HasPrefix(l, "# HELP scimflare_"):
			name, text, _ := strings.Cut(strings.TrimPrefix(l, "# HELP "), " ")
			help[name] = text
			names = append(names, name)
		case strings.HasPrefix(l, "# TYPE scimflare_"):
			name, t, _ := strings.Cut(strings.TrimPrefix(l, "# TYPE "), " ")
			typ[name] = t
		case strings.HasPrefix(l, "scimflare_"):
			series, _, _ := strings.Cut(l, " ")
			name, ls, _ := strings.Cut(series, "{")
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && typ[base] == "histogram" {
					name = base
				}
			}
			if labels[name] == nil {
				labels[name] = map[string]bool{}
			}
			for _, kv := range strings.Split(strings.TrimSuffix(ls, "}"), ",") {
				if k, _, ok := strings.Cut(kv, "="); ok && k != "le" {
					labels[name][k] = true
				}
			}
		}
	}
	var out []string
	for _, n := range names {
		var ls []string
		for k := range labels[n] {
			ls = append(ls, k)
		}
		slices.Sort(ls)
		out = append(out, n+" "+typ[n]+" {"+strings.Join(ls, ",")+"} "+help[n])
	}
	slices.Sort(out)
	return out
}
