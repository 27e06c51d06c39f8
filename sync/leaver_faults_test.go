package sync

// Listing faults for TestLeaverNeverKeepsAccess (issue 10 point 4), made on
// the client's side of the wire until the fake has hooks for them: a
// RoundTripper that rewrites the fake's answer to a member listing.
//
// TODO(after merge with the realistic fake): inject these through the
// fake's own fault hooks (cftest) and drop this file; the step kinds and
// their weights stay as they are.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	gosync "sync"
)

// listingFault is one armed rewrite: it skips nth-1 matching listings, then
// rewrites the next times ones.
type listingFault struct {
	kind        propKind
	nth, times  int
	seen, fired int
}

// listingFaults rewrites answers to GET /accounts/{id}/members.
type listingFaults struct {
	next   http.RoundTripper
	mu     gosync.Mutex
	faults []*listingFault
}

func (l *listingFaults) arm(kind propKind, nth, times int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faults = append(l.faults, &listingFault{kind: kind, nth: nth, times: times})
}

func (l *listingFaults) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faults = nil
}

func isMemberListing(r *http.Request) bool {
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	return r.Method == http.MethodGet && len(seg) >= 2 && seg[len(seg)-1] == "members" && seg[len(seg)-3] == "accounts"
}

func (l *listingFaults) pick() *listingFault {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.faults {
		f.seen++
		if f.seen < f.nth || f.fired >= f.times {
			continue
		}
		f.fired++
		return f
	}
	return nil
}

func (l *listingFaults) RoundTrip(r *http.Request) (*http.Response, error) {
	if !isMemberListing(r) {
		return l.next.RoundTrip(r)
	}
	f := l.pick()
	resp, err := l.next.RoundTrip(r)
	if f == nil || err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var env map[string]json.RawMessage
	if json.Unmarshal(raw, &env) == nil {
		rewrite(f.kind, env)
		raw, _ = json.Marshal(env)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	resp.ContentLength = int64(len(raw))
	resp.Header.Set("Content-Length", strconv.Itoa(len(raw)))
	return resp, nil
}

// rewrite turns a good listing answer into the faulty one kind names, each
// as issue 10 describes what Cloudflare (or an attacker in the path) sent.
func rewrite(kind propKind, env map[string]json.RawMessage) {
	var items []json.RawMessage
	_ = json.Unmarshal(env["result"], &items)
	var info map[string]any
	_ = json.Unmarshal(env["result_info"], &info)
	switch kind {
	case kFaultSuccessFalse:
		// Cloudflare says it failed, and what result it sent is partial: a
		// client that reads success:false as success loses members.
		env["success"] = json.RawMessage("false")
		env["errors"] = json.RawMessage(`[{"code":10000,"message":"internal error"}]`)
		items = items[:len(items)/2]
	case kFaultResultNull:
		env["result"] = json.RawMessage("null")
	case kFaultShortPage:
		// One member fewer than the page and total_count say.
		if len(items) > 0 {
			items = items[:len(items)-1]
		}
	case kFaultTotalChanges:
		if info != nil {
			if n, ok := info["total_count"].(float64); ok {
				info["total_count"] = n + 1
			}
		}
	case kFaultDuplicateIDs:
		if len(items) > 1 {
			items[len(items)-1] = items[0]
		}
	}
	if kind == kFaultShortPage || kind == kFaultDuplicateIDs || kind == kFaultSuccessFalse {
		env["result"], _ = json.Marshal(items)
	}
	if info != nil {
		env["result_info"], _ = json.Marshal(info)
	}
}
