package scim

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
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

	mu     sync.Mutex
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
	if a == nil { // no limit
		return 0, false
	}
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
