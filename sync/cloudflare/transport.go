package cloudflare

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/option"
)

// Observer sees every HTTP attempt the client makes; the daemon feeds its
// metrics from it. Implementations must be safe for concurrent use and fast.
type Observer interface {
	// Attempt is called once per HTTP attempt, retries included. status is 0
	// when no response arrived (err then says why).
	Attempt(method, route string, status int, err error)
	// RateLimited is called for every 429 answer, with the pause the client
	// takes before retrying (0 when it gives up instead).
	RateLimited(method, route string, wait time.Duration)
}

type callKey struct{}

type countKey struct{}

// CountCalls is ctx with every HTTP attempt made under it, retries
// included, added to n: what one reconcile cost, whatever else shares the
// client meanwhile (explain, plan, the daemon's token check).
func CountCalls(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, countKey{}, n)
}

// call carries one API call's route template to the middleware, and the
// middleware's final error back: cloudflare-go replaces any error with
// ctx.Err() once the context has ended, which would lose ErrBudget and the
// attempt count.
type call struct {
	route string
	err   error
	// bulk marks a page of a listing that reads a whole account: it
	// leaves the budget's reserve to other calls (limiter.acquire).
	bulk bool
}

// do runs fn with a context that labels its requests with route.
func do(ctx context.Context, route string, fn func(context.Context) error) error {
	return run(ctx, &call{route: route}, fn)
}

// doBulk is do for one page of a listing that reads a whole account,
// unless ctx says the listing is Urgent.
func doBulk(ctx context.Context, route string, fn func(context.Context) error) error {
	return run(ctx, &call{route: route, bulk: ctx.Value(urgentKey{}) == nil}, fn)
}

type urgentKey struct{}

// Urgent marks the listings made with ctx as part of an urgent change, not
// a full run's read: they may use the budget's reserve. A targeted run
// lists an account before removing a Super Administrator (or when its
// member cache is stale or was never filled); that listing is the
// leaver's removal and must not wait for the window a full run filled.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

func run(ctx context.Context, cl *call, fn func(context.Context) error) error {
	err := fn(context.WithValue(ctx, callKey{}, cl))
	if err != nil && cl.err != nil {
		return cl.err
	}
	return err
}

func callOf(req *http.Request) *call {
	if cl, ok := req.Context().Value(callKey{}).(*call); ok {
		return cl
	}
	return &call{route: req.URL.Path}
}

// middleware is installed into cloudflare-go (whose own retries are off) so
// that each attempt is counted against the budget exactly once, retried by
// our rules, and turned into an *APIError in one place.
func (c *Client) middleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	cl := callOf(req)
	resp, err := c.send(req, cl.route, cl.bulk, next)
	cl.err = err
	return resp, err
}

func (c *Client) send(req *http.Request, route string, bulk bool, next option.MiddlewareNext) (*http.Response, error) {
	ctx := req.Context()
	method := req.Method
	retries := c.maxRetries
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		retries = 0 // the body cannot be sent twice
	}
	for attempt := 0; ; attempt++ {
		if err := c.limiter.acquire(ctx, bulk); err != nil {
			return nil, fmt.Errorf("cloudflare %s %s: %w", method, route, err)
		}
		resp, body, err := c.attempt(ctx, req, next)
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		if c.observer != nil {
			c.observer.Attempt(method, route, status, err)
		}
		if n, ok := ctx.Value(countKey{}).(*atomic.Int64); ok {
			n.Add(1)
		}
		now := c.clock.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cloudflare %s %s: %w", method, route, ctx.Err())
			}
			if attempt >= retries {
				return nil, fmt.Errorf("cloudflare %s %s: gave up after %d attempts: %w", method, route, attempt+1, err)
			}
			if err := c.clock.Sleep(ctx, c.backoff(attempt)); err != nil {
				return nil, fmt.Errorf("cloudflare %s %s: %w", method, route, err)
			}
			continue
		}
		if pause, ok := rateLimitPause(resp.Header); ok && status != http.StatusTooManyRequests {
			c.limiter.holdUntil(now.Add(min(pause, c.maxRetryAfter)))
		}
		if status < 400 {
			return resp, nil
		}
		apiErr := newAPIError(method, route, status, body)
		wait, told := parseRetryAfter(resp.Header.Get("Retry-After"), now)
		if !told && status == http.StatusTooManyRequests {
			wait, told = rateLimitPause(resp.Header)
		}
		if !told {
			wait = c.backoff(attempt)
		}
		if status == http.StatusTooManyRequests {
			if attempt >= retries || wait > c.maxRetryAfter {
				if c.observer != nil {
					c.observer.RateLimited(method, route, 0)
				}
				if wait > c.maxRetryAfter {
					return nil, fmt.Errorf("%w (asked to wait %s, more than the %s cap)", apiErr, wait, c.maxRetryAfter)
				}
				return nil, apiErr
			}
			if c.observer != nil {
				c.observer.RateLimited(method, route, wait)
			}
			// Every caller pauses, not just this one: Cloudflare refuses the
			// whole token until then and each refusal costs budget.
			c.limiter.holdUntil(now.Add(wait))
			continue
		}
		// Never retry other 4xx: the request itself is wrong, or the
		// answer (404, 409) is the information the caller needs.
		if status < 500 || attempt >= retries {
			return nil, apiErr
		}
		if err := c.clock.Sleep(ctx, min(wait, c.maxRetryAfter)); err != nil {
			return nil, fmt.Errorf("%w (retry abandoned: %w)", apiErr, err)
		}
	}
}

// attempt sends one request with its own timeout and reads the whole body
// before the timeout's context is released, so callers get a body that
// cannot be cut short by a cancelled context.
func (c *Client) attempt(ctx context.Context, req *http.Request, next option.MiddlewareNext) (*http.Response, []byte, error) {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	defer cancel()
	areq := req.Clone(actx)
	areq.Header.Set("Authorization", "Bearer "+*c.token.Load())
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, nil, fmt.Errorf("rewind request body: %w", err)
		}
		areq.Body = b
	}
	resp, err := next(areq)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, body, nil
}

// backoff is capped exponential backoff with jitter: a random duration in
// [d/2, d] where d = 500ms * 2^attempt, at most MaxBackoff.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.maxBackoff
	if attempt < 30 {
		d = min(c.maxBackoff, 500*time.Millisecond<<attempt)
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// newAPIError builds the error from Cloudflare's envelope
// {"success":false,"errors":[{"code":…,"message":…}],…}. A body that is not
// an envelope (a proxy's HTML 502) still yields its status and a short excerpt.
func newAPIError(method, route string, status int, body []byte) *APIError {
	e := &APIError{Status: status, Method: method, Route: route}
	type message struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	var env struct {
		Errors []struct {
			message
			ErrorChain []message `json:"error_chain"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Errors) > 0 {
		e.Code = env.Errors[0].Code
		msgs := make([]string, 0, len(env.Errors))
		for i, x := range env.Errors {
			if i == 0 {
				m := x.Message
				for _, c := range x.ErrorChain {
					e.Chain = append(e.Chain, c.Code)
					m += fmt.Sprintf(" (error %d: %s)", c.Code, c.Message)
				}
				msgs = append(msgs, m)
				continue
			}
			msgs = append(msgs, fmt.Sprintf("error %d: %s", x.Code, x.Message))
		}
		e.Message = strings.Join(msgs, "; ")
		return e
	}
	excerpt := strings.TrimSpace(string(body))
	if len(excerpt) > 200 {
		excerpt = excerpt[:200] + "…"
	}
	e.Message = excerpt
	return e
}
