package daemon

import (
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	gosync "sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scimflare/scimflare/scim"
)

// authLimit bounds failed SCIM authentications per client address. A bearer
// token is 256 random bits, so guessing is hopeless anyway; the limit exists
// so that a misconfigured or hostile client cannot turn every request into a
// token-store read, a 401 and a log line, forever.
type authLimit struct {
	// Failures is how many 401s one address may collect within Window
	// before it is blocked.
	Failures int
	// Window is both the span failures are counted over (from the first
	// one) and how long a block lasts.
	Window time.Duration
	// MaxAddrs caps the table; when full, the address seen least recently
	// is forgotten first, so memory stays bounded whatever the traffic.
	MaxAddrs int
}

// defaultAuthLimit is what the daemon uses.
var defaultAuthLimit = authLimit{Failures: 10, Window: time.Minute, MaxAddrs: 10000}

// authFailures counts failed authentications per client address. It reads
// no clock: every method takes now. Safe for concurrent use.
type authFailures struct {
	lim authLimit

	mu     gosync.Mutex
	byAddr map[string]*list.Element // of *addrFailures
	order  *list.List               // most recently seen first
}

type addrFailures struct {
	addr         string
	first        time.Time // first failure of the current window
	fails        int
	blockedUntil time.Time
}

// newAuthFailures returns an empty table; zero fields of lim take
// defaultAuthLimit's values.
func newAuthFailures(lim authLimit) *authFailures {
	if lim.Failures <= 0 {
		lim.Failures = defaultAuthLimit.Failures
	}
	if lim.Window <= 0 {
		lim.Window = defaultAuthLimit.Window
	}
	if lim.MaxAddrs <= 0 {
		lim.MaxAddrs = defaultAuthLimit.MaxAddrs
	}
	return &authFailures{lim: lim, byAddr: map[string]*list.Element{}, order: list.New()}
}

// blockedFor reports whether addr may not be served at now, and for how much
// longer.
func (a *authFailures) blockedFor(addr string, now time.Time) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	el, ok := a.byAddr[addr]
	if !ok {
		return 0, false
	}
	e := el.Value.(*addrFailures)
	if now.Before(e.blockedUntil) {
		return e.blockedUntil.Sub(now), true
	}
	return 0, false
}

// fail records one failed authentication from addr at now and reports
// whether it is the one that blocked the address.
func (a *authFailures) fail(addr string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	var e *addrFailures
	if el, ok := a.byAddr[addr]; ok {
		e = el.Value.(*addrFailures)
		a.order.MoveToFront(el)
	} else {
		for a.order.Len() >= a.lim.MaxAddrs {
			oldest := a.order.Back()
			delete(a.byAddr, oldest.Value.(*addrFailures).addr)
			a.order.Remove(oldest)
		}
		e = &addrFailures{addr: addr}
		a.byAddr[addr] = a.order.PushFront(e)
	}
	if now.Before(e.blockedUntil) {
		return false
	}
	if e.fails == 0 || now.Sub(e.first) >= a.lim.Window {
		e.first, e.fails = now, 0
	}
	e.fails++
	if e.fails < a.lim.Failures {
		return false
	}
	e.blockedUntil = now.Add(a.lim.Window)
	e.fails = 0
	return true
}

// len is how many addresses the table holds.
func (a *authFailures) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.order.Len()
}

// clientKey is the address failures are counted against: the connection's
// IP (IPv4, or an IPv4-mapped IPv6 address unmapped), or its /64 for IPv6,
// because one IPv6 host holds a whole /64 and could otherwise rotate past
// the limit. Forwarding headers are not trusted: any client can set them.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

// authGate counts the 401s the SCIM handler gives per address and, once an
// address is blocked, answers 429 to its requests whose token does not
// authenticate. A request from a blocked address whose token does
// authenticate is still served: the address may be shared (a TLS proxy, an
// IdP's egress), and blocking the IdP itself would stop deprovisioning.
// Telling a valid token apart this way teaches nothing: a token is 256
// random bits. 401s that are the server's fault (scim.ErrAuthUnavailable)
// are not counted.
type authGate struct {
	next    http.Handler
	auth    *scim.Authenticator
	table   *authFailures
	now     func() time.Time
	log     *slog.Logger
	blocked prometheus.Counter
}

func (g *authGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := clientKey(r.RemoteAddr)
	if wait, ok := g.table.blockedFor(key, g.now()); ok {
		// Checking first keeps a blocked address's bad tokens from costing
		// the handler anything beyond this check.
		if err := g.auth.Check(r); err != nil && !errors.Is(err, scim.ErrAuthUnavailable) {
			g.blocked.Inc()
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeSCIMError(w, http.StatusTooManyRequests,
				fmt.Sprintf("too many failed authentications from this address; retry after %d seconds", secs))
			return
		}
	}
	var res scim.AuthResult
	rec := &statusRecorder{ResponseWriter: w}
	g.next.ServeHTTP(rec, r.WithContext(scim.WithAuthResult(r.Context(), &res)))
	if rec.status != http.StatusUnauthorized || !res.Checked || res.Err == nil || errors.Is(res.Err, scim.ErrAuthUnavailable) {
		return
	}
	if g.table.fail(key, g.now()) {
		g.log.Warn("SCIM client blocked after repeated failed authentications",
			"client", key, "failures", g.table.lim.Failures, "for", g.table.lim.Window.String())
	}
}

// hardenSCIM wraps the SCIM handler with the failed-authentication limit.
func (d *Daemon) hardenSCIM(next http.Handler, auth *scim.Authenticator) http.Handler {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scimflare_scim_auth_blocked_total",
		Help: "SCIM requests refused with 429 because their address had too many failed authentications.",
	})
	if err := d.metrics.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			c = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return &authGate{next: next, auth: auth, table: newAuthFailures(defaultAuthLimit), now: d.now, log: d.log, blocked: c}
}

// writeSCIMError writes an RFC 7644 §3.12 error body.
func writeSCIMError(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status":  strconv.Itoa(status),
		"detail":  detail,
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
