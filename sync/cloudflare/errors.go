package cloudflare

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors. An *APIError matches ErrNotFound, ErrAlreadyMember,
// ErrRateLimited, ErrGroupNotManageable and ErrPendingMember through its Is
// method, by HTTP status, Cloudflare error code, route and message.
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
	// ErrGroupNotManageable: Cloudflare refused to rename, re-member or
	// delete a user group because its own SCIM provisioning manages it
	// (the identity provider owns the group). scimflare must leave such a
	// group alone.
	ErrGroupNotManageable = errors.New("cloudflare: the user group is managed by Cloudflare's SCIM provisioning and cannot be changed over the API")
	// ErrPendingMember: Cloudflare refused to add a member to a user group
	// because the member has not accepted its invitation yet.
	ErrPendingMember = errors.New("cloudflare: a pending (not yet accepted) member cannot join a user group")
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
	case ErrGroupNotManageable:
		return e.refusedGroupWrite() && strings.Contains(strings.ToLower(e.Message), "scim")
	case ErrPendingMember:
		m := strings.ToLower(e.Message)
		return e.refusedGroupWrite() && e.Route == RouteUserGroupMembers &&
			(strings.Contains(m, "pending") || strings.Contains(m, "not accepted") || strings.Contains(m, "not yet accepted"))
	}
	return false
}

// refusedGroupWrite reports whether a user-group write was refused as
// such: a 4xx that is not "not found", "throttled" or a malformed token.
// Cloudflare documents that it refuses SCIM-managed groups' changes, not
// with which status or code, so the words of the message decide
// (BEHAVIOURS.md 2b, 2c).
func (e *APIError) refusedGroupWrite() bool {
	switch e.Route {
	case RouteUserGroup, RouteUserGroupMembers, RouteUserGroupMember:
	default:
		return false
	}
	return e.Method != http.MethodGet && e.Status >= 400 && e.Status < 500 &&
		e.Status != http.StatusNotFound && e.Status != http.StatusTooManyRequests && !e.malformedToken()
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
