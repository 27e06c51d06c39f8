package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	scimerr "github.com/elimity-com/scim/errors"

	"github.com/scimflare/scimflare/store"
)

// errorBody is the RFC 7644 §3.12 error response; status is a string.
type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// unavailableDetail marks the error of a request the state backend could
// not serve: it is answered 503 with Retry-After.
const unavailableDetail = "the state backend is unavailable; nothing was written; retry later"

func writeError(w http.ResponseWriter, e scimerr.ScimError) {
	if e.Detail == unavailableDetail {
		e.Status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{
		Schemas:  []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		Status:   strconv.Itoa(e.Status),
		ScimType: string(e.ScimType),
		Detail:   e.Detail,
	})
}

func scimError(status int, typ scimerr.ScimType, format string, args ...any) scimerr.ScimError {
	return scimerr.ScimError{Status: status, ScimType: typ, Detail: fmt.Sprintf(format, args...)}
}

// toSCIM turns a store error into the SCIM error a client should see.
// Unexpected errors are logged and become a 500 whose detail says nothing
// internal.
func (s *Server) toSCIM(err error, resource, id string) scimerr.ScimError {
	var se scimerr.ScimError
	var sep *scimerr.ScimError
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &sep):
		return *sep
	case errors.Is(err, store.ErrNotFound):
		return scimError(http.StatusNotFound, "", "%s %q not found", resource, id)
	case errors.Is(err, store.ErrConflict):
		attr := "userName"
		if resource == "Group" {
			attr = "displayName"
		}
		return scimError(http.StatusConflict, scimerr.ScimTypeUniqueness, "%s is already in use by another %s (compared case-insensitively)", attr, strings.ToLower(resource))
	case errors.Is(err, store.ErrMemberNotFound):
		return scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "a member value names no user or group: %v", err)
	case errors.Is(err, store.ErrInvalid):
		// The store refuses values no schema check catches: a group as its
		// own member, a name longer than the store accepts.
		return scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "%v", err)
	case errors.Is(err, store.ErrUnavailable):
		// PostgreSQL down or unreachable: nothing was written. The library
		// refuses a 503 for most operations, so this travels as a 500 with
		// unavailableDetail and leaves as a 503 with Retry-After
		// (writeError, unavailableWriter), which an IdP retries.
		return scimError(http.StatusInternalServerError, "", unavailableDetail)
	case errors.Is(err, store.ErrVersionMismatch):
		return scimError(http.StatusPreconditionFailed, "", "%s %q has changed since the version given in If-Match", resource, id)
	}
	s.log.Error("scim request failed", "resource", resource, "id", id, "err", err)
	return scimError(http.StatusInternalServerError, "", "internal error; the request was not applied")
}

// unavailableWriter turns the library's 500 for an unavailable state
// backend (unavailableDetail) into the 503 with Retry-After that the
// library will not write itself. Other answers pass through unchanged.
type unavailableWriter struct {
	http.ResponseWriter
	held bool
	buf  bytes.Buffer
}

func (u *unavailableWriter) WriteHeader(code int) {
	if code == http.StatusInternalServerError {
		u.held = true
		return
	}
	u.ResponseWriter.WriteHeader(code)
}

func (u *unavailableWriter) Write(p []byte) (int, error) {
	if u.held {
		return u.buf.Write(p)
	}
	return u.ResponseWriter.Write(p)
}

// finish writes a held 500, as a 503 when it says the backend is down.
func (u *unavailableWriter) finish() {
	if !u.held {
		return
	}
	var body errorBody
	if json.Unmarshal(u.buf.Bytes(), &body) == nil && body.Detail == unavailableDetail {
		writeError(u.ResponseWriter, scimerr.ScimError{Status: http.StatusServiceUnavailable, Detail: unavailableDetail})
		return
	}
	u.ResponseWriter.WriteHeader(http.StatusInternalServerError)
	_, _ = u.ResponseWriter.Write(u.buf.Bytes())
}
