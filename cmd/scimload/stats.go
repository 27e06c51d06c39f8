package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Result is one scimload run, as -json prints it and `scimload report`
// reads it.
type Result struct {
	Target      string    `json:"target"`
	Users       int       `json:"users"`
	Groups      int       `json:"groups"`
	Memberships int       `json:"memberships"`
	Chunk       int       `json:"chunk"`
	Concurrency int       `json:"concurrency"`
	Phases      []Summary `json:"phases"`
}

// Errors is the number of failed requests over every phase.
func (r Result) Errors() int {
	n := 0
	for _, p := range r.Phases {
		n += p.ErrorCount
	}
	return n
}

// Summary describes one phase, or one kind of request inside a phase.
// Latencies are in milliseconds; Errors counts failed requests by HTTP
// status, "transport" (no answer) or "mismatch" (a 2xx whose body was not
// the expected answer).
type Summary struct {
	Name       string         `json:"name"`
	Ops        int            `json:"ops"`
	Items      int            `json:"items"`
	Seconds    float64        `json:"seconds"`
	OpsPerSec  float64        `json:"ops_per_sec"`
	P50ms      float64        `json:"p50_ms"`
	P99ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	ErrorCount int            `json:"error_count"`
	Errors     map[string]int `json:"errors,omitempty"`
	// RSSKiB is the watched process's VmRSS at the end of the phase
	// (-rss-pid); 0 when not watched.
	RSSKiB int `json:"rss_kib,omitempty"`
	// RSSAnonKiB is the anonymous part of RSSKiB (RssAnon): without the
	// file pages of a memory-mapped state file.
	RSSAnonKiB int        `json:"rss_anon_kib,omitempty"`
	Kinds      []*Summary `json:"kinds,omitempty"`
}

// recorder collects the outcome of every request of one phase.
type recorder struct {
	mu    sync.Mutex
	kinds map[opKind]*kindRec
	order []opKind
}

type kindRec struct {
	lat        []time.Duration
	items      int
	errs       map[string]int
	start, end time.Time
}

func newRecorder() *recorder { return &recorder{kinds: map[opKind]*kindRec{}} }

// record notes one request that started at start and took d; errKey is ""
// on success. items is how many resources or edges the request carried.
func (r *recorder) record(kind opKind, start time.Time, d time.Duration, items int, errKey string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kinds[kind]
	if k == nil {
		k = &kindRec{errs: map[string]int{}, start: start}
		r.kinds[kind] = k
		r.order = append(r.order, kind)
	}
	k.lat = append(k.lat, d)
	k.items += items
	if errKey != "" {
		k.errs[errKey]++
	}
	if start.Before(k.start) {
		k.start = start
	}
	if end := start.Add(d); end.After(k.end) {
		k.end = end
	}
}

// summary renders the phase: totals over its wall time, and one row per
// kind of request over that kind's own span (the lookup phase runs its
// kinds one after the other, so each rate is the kind's own).
func (r *recorder) summary(name string, wall time.Duration) *Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []time.Duration
	total := &Summary{Name: name, Seconds: wall.Seconds(), Errors: map[string]int{}}
	for _, kind := range r.order {
		k := r.kinds[kind]
		s := latencySummary(string(kind), k.lat)
		s.Items = k.items
		s.Seconds = k.end.Sub(k.start).Seconds()
		s.OpsPerSec = rate(s.Ops, s.Seconds)
		s.Errors = maps.Clone(k.errs)
		for key, n := range k.errs {
			s.ErrorCount += n
			total.Errors[key] += n
		}
		if len(s.Errors) == 0 {
			s.Errors = nil
		}
		total.Kinds = append(total.Kinds, s)
		total.Ops += s.Ops
		total.Items += s.Items
		total.ErrorCount += s.ErrorCount
		all = append(all, k.lat...)
	}
	t := latencySummary(name, all)
	total.P50ms, total.P99ms, total.MaxMs = t.P50ms, t.P99ms, t.MaxMs
	total.OpsPerSec = rate(total.Ops, total.Seconds)
	if len(total.Errors) == 0 {
		total.Errors = nil
	}
	return total
}

func rate(ops int, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(ops) / secs
}

func latencySummary(name string, lat []time.Duration) *Summary {
	s := &Summary{Name: name, Ops: len(lat)}
	if len(lat) == 0 {
		return s
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	s.P50ms = ms(percentile(sorted, 0.50))
	s.P99ms = ms(percentile(sorted, 0.99))
	s.MaxMs = ms(sorted[len(sorted)-1])
	return s
}

// percentile is the nearest-rank percentile of sorted: the smallest value
// that at least p of the samples do not exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// writeText prints r as an aligned table.
func writeText(w io.Writer, r Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target %s: %d users, %d groups, %d memberships, chunk %d, concurrency %d\n",
		r.Target, r.Users, r.Groups, r.Memberships, r.Chunk, r.Concurrency)
	fmt.Fprintf(&b, "%-26s %9s %9s %9s %10s %9s %9s %9s  %s\n", "phase/kind", "ops", "items", "seconds", "ops/s", "p50 ms", "p99 ms", "max ms", "errors")
	row := func(label string, s *Summary) {
		fmt.Fprintf(&b, "%-26s %9d %9d %9.2f %10.1f %9.3f %9.3f %9.3f  %s\n",
			label, s.Ops, s.Items, s.Seconds, s.OpsPerSec, s.P50ms, s.P99ms, s.MaxMs, errorText(s.Errors))
	}
	for i := range r.Phases {
		p := &r.Phases[i]
		row(p.Name, p)
		for _, k := range p.Kinds {
			row("  "+k.Name, k)
		}
		if p.RSSKiB > 0 {
			fmt.Fprintf(&b, "  rss after %s: %.1f MiB (anonymous %.1f MiB)\n", p.Name, float64(p.RSSKiB)/1024, float64(p.RSSAnonKiB)/1024)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func errorText(errs map[string]int) string {
	if len(errs) == 0 {
		return "-"
	}
	keys := slices.Collect(maps.Keys(errs))
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, errs[k])
	}
	return strings.Join(parts, " ")
}

func writeJSON(w io.Writer, r Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// kindByName finds a kind row of a phase; nil when absent.
func (s *Summary) kindByName(name string) *Summary {
	i := slices.IndexFunc(s.Kinds, func(k *Summary) bool { return k.Name == name })
	if i < 0 {
		return nil
	}
	return s.Kinds[i]
}

// phaseNames lists the phases of several runs in first-seen order.
func phaseNames(runs []Result) []string {
	var names []string
	for _, r := range runs {
		for _, p := range r.Phases {
			if !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	return names
}

func findPhase(r Result, name string) *Summary {
	i := slices.IndexFunc(r.Phases, func(p Summary) bool { return p.Name == name })
	if i < 0 {
		return nil
	}
	return &r.Phases[i]
}

// kindNames lists the kinds of a phase over several runs, first-seen order.
func kindNames(runs []Result, phase string) []string {
	var names []string
	for _, r := range runs {
		if p := findPhase(r, phase); p != nil {
			for _, k := range p.Kinds {
				if !slices.Contains(names, k.Name) {
					names = append(names, k.Name)
				}
			}
		}
	}
	return names
}
