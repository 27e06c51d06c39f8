package cloudflare

import (
	"errors"
	"testing"
)

// TestAPIErrorSentinels: which answers mean "already a member" and which
// mean "the token itself is malformed", as Cloudflare words them.
func TestAPIErrorSentinels(t *testing.T) {
	for _, tc := range []struct {
		name             string
		body             string
		status           int
		already, refused bool
	}{
		{"duplicate invite, 1001", `{"errors":[{"code":1001,"message":"Invalid request: user is already a member of this account"}]}`, 400, true, false},
		{"duplicate invite, another 1xxx code", `{"errors":[{"code":1004,"message":"Member already exists"}]}`, 400, true, false},
		{"duplicate invite as 409", `{"errors":[{"code":1001,"message":"conflict"}]}`, 409, true, false},
		{"refused invite, no 'already'", `{"errors":[{"code":1001,"message":"Invalid request: automatic verification of new members is not allowed"}]}`, 400, false, false},
		{"'already' outside the 1xxx family", `{"errors":[{"code":6003,"message":"already bad"}]}`, 400, false, true},
		{"malformed token", `{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],"messages":[],"result":null}`, 400, false, true},
		{"6111 alone", `{"errors":[{"code":6111,"message":"Invalid format for Authorization header"}]}`, 400, false, true},
		{"6003 on another status", `{"errors":[{"code":6003,"message":"Invalid request headers"}]}`, 500, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAPIError("POST", RouteMembers, tc.status, []byte(tc.body))
			if got := errors.Is(e, ErrAlreadyMember); got != tc.already {
				t.Errorf("ErrAlreadyMember = %v, want %v (%v)", got, tc.already, e)
			}
			if got := refused(e); got != tc.refused {
				t.Errorf("refused = %v, want %v (%v)", got, tc.refused, e)
			}
		})
	}
	e := newAPIError("GET", RouteTokenVerify, 400, []byte(`{"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}]}`))
	if want := "cloudflare GET /user/tokens/verify: HTTP 400 Bad Request: error 6003: Invalid request headers (error 6111: Invalid format for Authorization header)"; e.Error() != want {
		t.Errorf("message = %q, want %q", e.Error(), want)
	}
}
