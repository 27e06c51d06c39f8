package scim

import (
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

func writeError(w http.ResponseWriter, e scimerr.ScimError) {
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
	case errors.Is(err, store.ErrVersionMismatch):
		return scimError(http.StatusPreconditionFailed, "", "%s %q has changed since the version given in If-Match", resource, id)
	}
	s.log.Error("scim request failed", "resource", resource, "id", id, "err", err)
	return scimError(http.StatusInternalServerError, "", "internal error; the request was not applied")
}
