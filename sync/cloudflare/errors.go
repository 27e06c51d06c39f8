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
	// ErrIncompleteListing: a listing answered, but its pages do not prove
	// it complete (success false or no result on HTTP 200, a short page, a
	// total that does not add up or keeps changing, an id listed twice).
	// It must be treated like a failed read: nothing is known to be absent.
	ErrIncompleteListing = errors.New("cloudflare: listing incomplete or inconsistent, so it cannot be trusted")
)

// A duplicate invite is answered HTTP 400 with a 1xxx code (the members
// API's "Invalid request" family, e.g. 1001) and a message saying the user
// is "already" a member; the message decides. 409 is taken too.
const (
	codeInvalidRequestMin = 1000
	codeInvalidRequestMax = 1999
)

// Cloudflare's answer (HTTP 400) to an Authorization header that is not a
// well-formed bearer token: 6003 "Invalid request headers", with 6111
// "Invalid format for Authorization header" in its error_chain.
const (
	codeInvalidHeaders       = 6003
	codeInvalidAuthorization = 6111
)

// APIError is an HTTP error answer from Cloudflare, with the first error of
// the response envelope.
type APIError struct {
	Status  int    // HTTP status
	Code    int    // Cloudflare error code from the envelope; 0 when the body had none
	Message string // Cloudflare error message(s) from the envelope, joined with "; "
	Method  string // HTTP method
	Route   string // route template, e.g. /accounts/{account_id}/members
	// Chain are the codes of the first error's error_chain, when it has one.
	Chain []int
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
		return e.Status == http.StatusBadRequest && e.Code >= codeInvalidRequestMin && e.Code <= codeInvalidRequestMax &&
			strings.Contains(strings.ToLower(e.Message), "already")
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// malformedToken reports whether Cloudflare refused the Authorization
// header itself as malformed (400, 6003 / 6111).
func (e *APIError) malformedToken() bool {
	if e.Status != http.StatusBadRequest {
		return false
	}
	if e.Code == codeInvalidHeaders || e.Code == codeInvalidAuthorization {
		return true
	}
	for _, c := range e.Chain {
		if c == codeInvalidAuthorization {
			return true
		}
	}
	return false
}
