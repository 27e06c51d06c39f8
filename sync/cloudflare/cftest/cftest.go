package cftest

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/scimflare/scimflare/sync/cloudflare/cloudflarefake"
)

//go:embed testdata/openapi-iam.json
var specJSON []byte

// The fake's types and constants, under the names tests know.
type (
	Server         = cloudflarefake.Server
	Clock          = cloudflarefake.Clock
	Fault          = cloudflarefake.Fault
	ListingFault   = cloudflarefake.ListingFault
	TokenInfo      = cloudflarefake.TokenInfo
	Write          = cloudflarefake.Write
	InvalidRequest = cloudflarefake.InvalidRequest
	Member         = cloudflarefake.Member
	Policy         = cloudflarefake.Policy
	Named          = cloudflarefake.Named
	Change         = cloudflarefake.Change
	UserGroup      = cloudflarefake.UserGroup
	Access         = cloudflarefake.Access
)

// BasePath is where the fake serves the API, as api.cloudflare.com does.
const BasePath = cloudflarefake.BasePath

// Route templates, the keys of Server.Calls.
const (
	RouteMembers            = cloudflarefake.RouteMembers
	RouteMember             = cloudflarefake.RouteMember
	RouteRoles              = cloudflarefake.RouteRoles
	RoutePermissionGroups   = cloudflarefake.RoutePermissionGroups
	RouteResourceGroups     = cloudflarefake.RouteResourceGroups
	RouteUserGroups         = cloudflarefake.RouteUserGroups
	RouteUserGroup          = cloudflarefake.RouteUserGroup
	RouteUserGroupMembers   = cloudflarefake.RouteUserGroupMembers
	RouteUserGroupMember    = cloudflarefake.RouteUserGroupMember
	RouteTokenVerify        = cloudflarefake.RouteTokenVerify
	RouteAccountTokenVerify = cloudflarefake.RouteAccountTokenVerify
)

// Cloudflare error codes the fake answers with (see cloudflarefake).
const (
	CodeInvalidRequest       = cloudflarefake.CodeInvalidRequest
	CodeMemberNotFound       = cloudflarefake.CodeMemberNotFound
	CodeUserGroupNotFound    = cloudflarefake.CodeUserGroupNotFound
	CodeNoRoute              = cloudflarefake.CodeNoRoute
	CodeRateLimited          = cloudflarefake.CodeRateLimited
	CodeAuth                 = cloudflarefake.CodeAuth
	CodeInvalidToken         = cloudflarefake.CodeInvalidToken
	CodeInvalidHeaders       = cloudflarefake.CodeInvalidHeaders
	CodeInvalidAuthorization = cloudflarefake.CodeInvalidAuthorization
)

// Listing faults (see cloudflarefake.ListingFault).
const (
	ListingOK           = cloudflarefake.ListingOK
	ListingUnsuccessful = cloudflarefake.ListingUnsuccessful
	ListingNullResult   = cloudflarefake.ListingNullResult
	ListingShortPage    = cloudflarefake.ListingShortPage
	ListingTotalChanged = cloudflarefake.ListingTotalChanged
	ListingDuplicate    = cloudflarefake.ListingDuplicate
)

// Epoch is the time a Clock made by New starts at when none is given.
var Epoch = cloudflarefake.Epoch

// The default catalog every account has (see cloudflarefake).
var (
	DefaultRoles            = cloudflarefake.DefaultRoles
	DefaultPermissionGroups = cloudflarefake.DefaultPermissionGroups
	DefaultResourceGroups   = cloudflarefake.DefaultResourceGroups
)

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return cloudflarefake.NewClock(start) }

// AccountScope is the key of the resource group that stands for the whole
// account.
func AccountScope(accountID string) string { return cloudflarefake.AccountScope(accountID) }

// Options configures a fake. The zero value is usable.
type Options struct {
	// Clock is the fake's time; nil makes one at Epoch. Pass the same Clock
	// to the client so its waits advance the fake's time.
	Clock *Clock
	// Accounts are created with the default catalog (DefaultRoles,
	// DefaultPermissionGroups, DefaultResourceGroups).
	Accounts []string
	// Token, when set, is the only bearer token accepted.
	Token string
	// RateLimit is requests per RateWindow before 429s (default 1200 per
	// 5 minutes); exceeding it blocks every request for RateBlock (default
	// 5 minutes), as Cloudflare does.
	RateLimit  int
	RateWindow time.Duration
	RateBlock  time.Duration
	// AllowInvalid stops the cleanup check that fails the test when any
	// request did not match the OpenAPI schema.
	AllowInvalid bool
	// OnChange is called with every member or user-group write the fake accepted.
	OnChange func(Change)
	// RefusePendingGroupMembers makes the fake refuse a pending member
	// joining a user group (by default it may join; BEHAVIOURS.md 2b).
	RefusePendingGroupMembers bool
	// AllowSCIMGroupChanges lets the API change SCIM-managed user groups
	// (by default refused, as Cloudflare documents; BEHAVIOURS.md 2c).
	AllowSCIMGroupChanges bool
	// AfterWrite is called after every write took effect, before it is
	// answered: check an invariant (EffectiveAccessAll) at every point.
	AfterWrite func(Write)
}

// New starts a fake on loopback, validating against the schema, and stops
// it when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	v, err := newSchemaValidator()
	if err != nil {
		t.Fatalf("cftest: %v", err)
	}
	s, err := cloudflarefake.New(cloudflarefake.Options{
		Clock: opts.Clock, Accounts: opts.Accounts, Token: opts.Token,
		RateLimit: opts.RateLimit, RateWindow: opts.RateWindow, RateBlock: opts.RateBlock,
		OnChange: opts.OnChange, Validator: v, Reporter: t,
		RefusePendingGroupMembers: opts.RefusePendingGroupMembers, AllowSCIMGroupChanges: opts.AllowSCIMGroupChanges,
		AfterWrite: opts.AfterWrite,
	})
	if err != nil {
		t.Fatalf("cftest: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if !opts.AllowInvalid {
			s.AssertValid(t)
		}
		s.AssertValidResponses(t)
	})
	return s
}

// schemaValidator checks the fake's traffic against Cloudflare's OpenAPI
// schema with kin-openapi.
type schemaValidator struct{ router routers.Router }

func newSchemaValidator() (*schemaValidator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(specJSON)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI schema: %w", err)
	}
	doc.Servers = openapi3.Servers{{URL: BasePath}}
	if err := doc.Validate(loader.Context, openapi3.DisableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("OpenAPI schema invalid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("OpenAPI router: %w", err)
	}
	return &schemaValidator{router: router}, nil
}

func (v *schemaValidator) Request(r *http.Request, body []byte) error {
	// The router matches on the URL as a client sent it.
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			// Cloudflare's schema declares key/email auth; bearer tokens are
			// checked by the fake itself.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			MultiError:         true,
		},
	}
	return openapi3filter.ValidateRequest(req.Context(), in)
}

// validateResponse checks an answer of the fake against the schema. Routes
// outside the schema (token verification) and answers the schema does not
// describe are not checked: 429s come from Cloudflare's edge rate limiter
// (code 971, below the IAM schema's minimum error code 1000), 5xx are
// undeclared.
func (v *schemaValidator) Response(r *http.Request, reqBody []byte, status int, out []byte) error {
	if status == http.StatusTooManyRequests || status >= 500 {
		return nil
	}
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return nil
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 http.Header{"Content-Type": {"application/json"}},
		Body:                   io.NopCloser(bytes.NewReader(out)),
		Options:                opts,
	}
	return openapi3filter.ValidateResponse(req.Context(), in)
}
