package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	userSchema   = "urn:ietf:params:scim:schemas:core:2.0:User"
	entSchema    = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	groupSchema  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	patchSchema  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	contentType  = "application/scim+json"
	phaseImport  = "import"
	phaseChurn   = "churn"
	phaseLookup  = "lookup"
	phaseDiscovr = "discover"
)

// Config is one scimload run.
type Config struct {
	URL         string // SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2
	Token       string
	Users       int
	Groups      int
	Memberships int
	Chunk       int // members per PATCH in the import
	Concurrency int
	Churn       int // requests in the churn phase (at least)
	Lookups     int // requests in the lookup phase (about)
	Phases      []string
	Prefix      string // userName / displayName prefix, so runs do not collide
	Seed        uint64
	RSSPid      int       // when > 0, VmRSS of this process is read after each phase
	Progress    io.Writer // one line per phase start and end; nil = silent
}

// runState is what the phases share.
type runState struct {
	cfg  Config
	base string
	hc   *http.Client
	w    *Workload
	m    *model
	rng  *rand.Rand
}

// errDependency marks a request that was not sent because a resource it
// names failed to be created earlier in the run.
const errDependency = "dependency"

// Run executes the configured phases in order and returns their summaries
// and the model of what the server must now hold. It stops early, with an
// error, only when ctx ends; failed requests are counted, not fatal.
func Run(ctx context.Context, cfg Config) (Result, *model, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, nil, err
	}
	w, err := NewWorkload(cfg.Prefix, cfg.Users, cfg.Groups, cfg.Memberships)
	if err != nil {
		return Result{}, nil, err
	}
	tr := &http.Transport{
		MaxIdleConns:        cfg.Concurrency * 2,
		MaxIdleConnsPerHost: cfg.Concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	s := &runState{
		cfg:  cfg,
		base: strings.TrimRight(cfg.URL, "/"),
		hc:   &http.Client{Transport: tr, Timeout: time.Minute},
		w:    w,
		m:    newModel(w),
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x5c1f1a4e)),
	}
	res := Result{Target: cfg.URL, Users: cfg.Users, Groups: cfg.Groups, Memberships: cfg.Memberships,
		Chunk: cfg.Chunk, Concurrency: cfg.Concurrency}
	phases := cfg.Phases
	if !slices.Contains(phases, phaseImport) {
		// Without an import the ids must come from the server.
		phases = append([]string{phaseDiscovr}, phases...)
	}
	for _, name := range phases {
		s.progress("phase %s: start", name)
		rec := newRecorder()
		start := time.Now()
		switch name {
		case phaseImport:
			s.importPhase(ctx, rec)
		case phaseChurn:
			s.runUnits(ctx, rec, planChurn(s.m, s.rng, cfg.Churn))
		case phaseLookup:
			for _, batch := range planLookups(s.m, s.rng, cfg.Lookups) {
				s.runUnits(ctx, rec, batch)
			}
		case phaseDiscovr:
			s.discoverPhase(ctx, rec)
		}
		sum := rec.summary(name, time.Since(start))
		if cfg.RSSPid > 0 {
			rss, anon, err := readRSS(cfg.RSSPid)
			if err != nil {
				return res, s.m, err
			}
			sum.RSSKiB, sum.RSSAnonKiB = rss, anon
		}
		res.Phases = append(res.Phases, *sum)
		s.progress("phase %s: %d requests in %.1fs, %d errors", name, sum.Ops, sum.Seconds, sum.ErrorCount)
		if err := ctx.Err(); err != nil {
			return res, s.m, fmt.Errorf("phase %s stopped: %w", name, err)
		}
	}
	return res, s.m, nil
}

func (c Config) validate() error {
	if c.URL == "" {
		return errors.New("-url is required (the SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2)")
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q is not an http(s) URL", c.URL)
	}
	if c.Chunk < 1 {
		return errors.New("-chunk must be at least 1")
	}
	if c.Concurrency < 1 {
		return errors.New("-concurrency must be at least 1")
	}
	if c.Churn < 0 || c.Lookups < 0 {
		return errors.New("-churn and -lookups must not be negative")
	}
	if len(c.Phases) == 0 {
		return errors.New("-phases names no phase")
	}
	for _, p := range c.Phases {
		if p != phaseImport && p != phaseChurn && p != phaseLookup {
			return fmt.Errorf("-phases: unknown phase %q (want import, churn, lookup)", p)
		}
	}
	return nil
}

func (s *runState) progress(format string, args ...any) {
	if s.cfg.Progress != nil {
		fmt.Fprintf(s.cfg.Progress, "scimload: "+format+"\n", args...)
	}
}

// forEach runs fn(i) for i in [0, n) on cfg.Concurrency workers, until ctx ends.
func (s *runState) forEach(ctx context.Context, n int, fn func(i int)) {
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(s.cfg.Concurrency, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// runUnits runs units on cfg.Concurrency workers; a unit goes to the worker
// its user hashes to, so one user's units run in plan order.
func (s *runState) runUnits(ctx context.Context, rec *recorder, units []unit) {
	n := s.cfg.Concurrency
	queues := make([]chan unit, n)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan unit, 64)
		q := queues[i]
		wg.Go(func() {
			for u := range q {
				for _, st := range u.steps {
					if ctx.Err() != nil {
						continue
					}
					s.doStep(ctx, rec, st)
				}
			}
		})
	}
	for _, u := range units {
		if ctx.Err() != nil {
			break
		}
		queues[max(u.user, 0)%n] <- u
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
}

func (s *runState) importPhase(ctx context.Context, rec *recorder) {
	w, m := s.w, s.m
	s.forEach(ctx, w.Users, func(i int) {
		body := mustJSON(map[string]any{
			"schemas":     []string{userSchema, entSchema},
			"userName":    w.UserName(i),
			"externalId":  fmt.Sprintf("ext-%s-u%d", w.Prefix, i),
			"active":      true,
			"name":        map[string]any{"givenName": "Load", "familyName": fmt.Sprintf("User %d", i)},
			"displayName": fmt.Sprintf("Load User %d", i),
			"emails":      []any{map[string]any{"value": w.UserName(i), "type": "work", "primary": true}},
			entSchema:     map[string]any{"department": fmt.Sprintf("dept-%d", i%50)},
		})
		m.userIDs[i] = s.send(ctx, rec, kindCreateUser, 1, http.MethodPost, "/Users", body, http.StatusCreated)
	})
	s.forEach(ctx, w.Groups, func(g int) {
		body := mustJSON(map[string]any{
			"schemas":     []string{groupSchema},
			"displayName": w.GroupName(g),
			"externalId":  fmt.Sprintf("ext-%s-g%d", w.Prefix, g),
			"members":     []any{},
		})
		m.groupIDs[g] = s.send(ctx, rec, kindCreateGroup, 1, http.MethodPost, "/Groups", body, http.StatusCreated)
	})
	type chunk struct{ group, from, to int }
	var chunks []chunk
	for g := 0; g < w.Groups; g++ {
		for from := 0; from < w.GroupSize(g); from += s.cfg.Chunk {
			chunks = append(chunks, chunk{g, from, min(from+s.cfg.Chunk, w.GroupSize(g))})
		}
	}
	s.forEach(ctx, len(chunks), func(i int) {
		c := chunks[i]
		gid := m.groupIDs[c.group]
		values := make([]any, 0, c.to-c.from)
		k := 0
		missing := gid == ""
		w.MembersOf(c.group, func(u int) {
			if k >= c.from && k < c.to {
				missing = missing || m.userIDs[u] == ""
				values = append(values, map[string]any{"value": m.userIDs[u]})
			}
			k++
		})
		if missing {
			rec.record(kindAddMembers, time.Now(), 0, len(values), errDependency)
			return
		}
		body := patchBody(map[string]any{"op": "add", "path": "members", "value": values})
		s.send(ctx, rec, kindAddMembers, len(values), http.MethodPatch, "/Groups/"+url.PathEscape(gid), body, http.StatusOK, http.StatusNoContent)
	})
}

// discoverPhase fills the model's ids from the server when the run has no
// import: it assumes an earlier import with the same sizes and prefix.
func (s *runState) discoverPhase(ctx context.Context, rec *recorder) {
	s.forEach(ctx, s.w.Users, func(i int) {
		s.m.userIDs[i] = s.lookup(ctx, rec, kindDiscoverUser, "/Users", "userName", s.w.UserName(i), "")
	})
	s.forEach(ctx, s.w.Groups, func(g int) {
		s.m.groupIDs[g] = s.lookup(ctx, rec, kindDiscoverGroups, "/Groups", "displayName", s.w.GroupName(g), "")
	})
}

func (s *runState) doStep(ctx context.Context, rec *recorder, st step) {
	m := s.m
	var uid, gid string
	if st.user >= 0 {
		uid = m.userIDs[st.user]
	}
	if st.group >= 0 {
		gid = m.groupIDs[st.group]
	}
	if (st.user >= 0 && uid == "") || (st.group >= 0 && gid == "") {
		rec.record(st.kind, time.Now(), 0, 1, errDependency)
		return
	}
	switch st.kind {
	case kindUpdateUser:
		body := patchBody(map[string]any{"op": "replace", "path": st.attr, "value": st.value})
		s.send(ctx, rec, st.kind, 1, http.MethodPatch, "/Users/"+url.PathEscape(uid), body, http.StatusOK, http.StatusNoContent)
	case kindDeactivate:
		// Okta's shape: a no-path replace carrying active.
		body := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
		s.send(ctx, rec, st.kind, 1, http.MethodPatch, "/Users/"+url.PathEscape(uid), body, http.StatusOK, http.StatusNoContent)
	case kindMoveRemove, kindBigRemove:
		body := patchBody(map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %s]", strconv.Quote(uid))})
		s.send(ctx, rec, st.kind, 1, http.MethodPatch, "/Groups/"+url.PathEscape(gid), body, http.StatusOK, http.StatusNoContent)
	case kindMoveAdd, kindBigAdd:
		body := patchBody(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": uid}}})
		s.send(ctx, rec, st.kind, 1, http.MethodPatch, "/Groups/"+url.PathEscape(gid), body, http.StatusOK, http.StatusNoContent)
	case kindUserNameEq:
		s.lookup(ctx, rec, st.kind, "/Users", "userName", s.w.UserName(st.user), uid)
	case kindGetGroupNoMem:
		s.getGroupWithoutMembers(ctx, rec, gid)
	default:
		panic(fmt.Sprintf("scimload: no request for step kind %q", st.kind))
	}
}

// send issues one request and records it; it returns the "id" of the
// answer when the status is one of want and the body has one, else "".
func (s *runState) send(ctx context.Context, rec *recorder, kind opKind, items int, method, path string, body []byte, want ...int) string {
	status, resp, start, d, err := s.roundTrip(ctx, method, path, body)
	if err != nil {
		rec.record(kind, start, d, items, "transport")
		return ""
	}
	if !slices.Contains(want, status) {
		rec.record(kind, start, d, items, strconv.Itoa(status))
		return ""
	}
	var id string
	if method == http.MethodPost {
		var doc struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(resp, &doc) != nil || doc.ID == "" {
			rec.record(kind, start, d, items, "mismatch")
			return ""
		}
		id = doc.ID
	}
	rec.record(kind, start, d, items, "")
	return id
}

// lookup filters attr eq value and expects exactly one resource whose attr
// equals value (ignoring case) and, when wantID is set, whose id is wantID.
// It returns the id found.
func (s *runState) lookup(ctx context.Context, rec *recorder, kind opKind, endpoint, attr, value, wantID string) string {
	q := url.Values{"filter": {fmt.Sprintf("%s eq %s", attr, strconv.Quote(value))}}
	status, resp, start, d, err := s.roundTrip(ctx, http.MethodGet, endpoint+"?"+q.Encode(), nil)
	if err != nil {
		rec.record(kind, start, d, 1, "transport")
		return ""
	}
	if status != http.StatusOK {
		rec.record(kind, start, d, 1, strconv.Itoa(status))
		return ""
	}
	var list struct {
		TotalResults int              `json:"totalResults"`
		Resources    []map[string]any `json:"Resources"`
	}
	if json.Unmarshal(resp, &list) != nil || list.TotalResults != 1 || len(list.Resources) != 1 {
		rec.record(kind, start, d, 1, "mismatch")
		return ""
	}
	got, _ := list.Resources[0][attr].(string)
	id, _ := list.Resources[0]["id"].(string)
	if !strings.EqualFold(got, value) || id == "" || (wantID != "" && id != wantID) {
		rec.record(kind, start, d, 1, "mismatch")
		return ""
	}
	rec.record(kind, start, d, 1, "")
	return id
}

// getGroupWithoutMembers expects the group without a members attribute:
// a server that sends the members anyway does the work the parameter
// exists to avoid.
func (s *runState) getGroupWithoutMembers(ctx context.Context, rec *recorder, gid string) {
	status, resp, start, d, err := s.roundTrip(ctx, http.MethodGet, "/Groups/"+url.PathEscape(gid)+"?excludedAttributes=members", nil)
	if err != nil {
		rec.record(kindGetGroupNoMem, start, d, 1, "transport")
		return
	}
	if status != http.StatusOK {
		rec.record(kindGetGroupNoMem, start, d, 1, strconv.Itoa(status))
		return
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(resp, &doc) != nil || string(doc["id"]) != strconv.Quote(gid) || doc["members"] != nil {
		rec.record(kindGetGroupNoMem, start, d, 1, "mismatch")
		return
	}
	rec.record(kindGetGroupNoMem, start, d, 1, "")
}

// roundTrip sends one request and reads the whole answer; the latency
// covers both, as a client sees it.
func (s *runState) roundTrip(ctx context.Context, method, path string, body []byte) (status int, resp []byte, start time.Time, d time.Duration, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return 0, nil, time.Now(), 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	req.Header.Set("Accept", contentType)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	start = time.Now()
	r, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, start, time.Since(start), err
	}
	resp, err = io.ReadAll(r.Body)
	r.Body.Close()
	d = time.Since(start)
	if err != nil {
		return 0, nil, start, d, err
	}
	return r.StatusCode, resp, start, d, nil
}

func patchBody(ops ...map[string]any) []byte {
	return mustJSON(map[string]any{"schemas": []string{patchSchema}, "Operations": ops})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("scimload: marshal request body: %v", err))
	}
	return b
}

// readRSS returns the resident set size of process pid and its anonymous
// part (heap, stacks: what the process itself allocated, as opposed to
// file pages such as a memory-mapped state file), in KiB.
func readRSS(pid int) (rss, anon int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read RSS of process %d: %w", pid, err)
	}
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || len(f) == 0 {
			continue
		}
		switch key {
		case "VmRSS":
			rss, err = strconv.Atoi(f[0])
			found = true
		case "RssAnon":
			anon, err = strconv.Atoi(f[0])
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read RSS of process %d: %s: %w", pid, key, err)
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("read RSS of process %d: no VmRSS line in /proc/%d/status", pid, pid)
	}
	return rss, anon, nil
}
