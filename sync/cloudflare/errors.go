package cloudflare

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors. An *APIError matches the first three through its Is
// method, by HTTP status and Cloudflare error code.
var (
	// ErrNotFound: the member (or other object) does not exist.
	ErrNotFound = errors.New("cloudflare: not found")
	// ErrAlreadyMember: the email already is a member of the account, accepted or pending.
	ErrAlreadyMember = errors.New("cloudflare: already a member")
	// ErrRateLimited: Cloudflare answered 429 and retrying was not allowed
	// (retries used up, or the requested wait exceeds MaxRetryAfter).
	ErrRateLimited = errors.New("cloudflare: rate limited")
	// ErrBudget: no request slot in the rolling window became free before the
	// caller's context ended.
	ErrBudget = errors.New("cloudflare: request budget exhausted")
)

// codeInvalidRequest is Cloudflare's generic "Invalid request" code. The
// members API answers a duplicate invite with it (HTTP 400 in the wild, 409 in
// our fake), so the message decides whether it means "already a member".
const codeInvalidRequest = 1001

// APIError is an HTTP error answer from Cloudflare, with the first error of
// the response envelope.
type APIError struct {
	Status  int    // HTTP status
	Code    int    // Cloudflare error code from the envelope; 0 when the body had none
	Message string // Cloudflare error message(s) from the envelope, joined with "; "
	Method  string // HTTP method
	Route   string // route template, e.g. /accounts/{account_id}/members
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudflare %s %s: HTTP %d", e.Method, e.Route, e.Status)
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ": error %d", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is lets errors.Is match an APIError against the package sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrAlreadyMember:
		if e.Status == http.StatusConflict {
			return true
		}
		return e.Status == http.StatusBadRequest && e.Code == codeInvalidRequest &&
			strings.Contains(strings.ToLower(e.Message), "already")
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}
