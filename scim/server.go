package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/scimflare/scimflare/scim/query"
	"github.com/scimflare/scimflare/store"
)

// Change tells the reconciler which users and groups a SCIM write touched.
// Group IDs stand for every user in the group, nested groups included.
// Emails lists identity emails that no longer belong to a user (a deleted
// user, a renamed userName): their access must be re-planned too. A UserIDs
// entry that names no user may name a group (an untyped member reference).
type Change struct {
	UserIDs  []string
	GroupIDs []string
	Emails   []string
}

// Notifier is told about every acknowledged write, after it is durable.
type Notifier interface {
	Changed(Change)
}

// Options configures the SCIM endpoint.
type Options struct {
	BasePath     string // e.g. /scim/v2
	MaxBodyBytes int64
	EmailFrom    string // "userName" or "primaryEmail"
	Auth         *Authenticator
	Notifier     Notifier // may be nil
	Metrics      *Metrics // nil: none recorded
	Logger       *slog.Logger
	// RequestLog, when set, has every answer in the 4xx range logged at
	// WARN with its detail and the client's address, and, while it returns
	// true (log.access_log), one line per request (requestlog.go). nil:
	// no request is logged.
	RequestLog func() (access bool)
	Now        func() time.Time
	// AuthFailureLimit is how many failed authentications one client
	// address may collect within a minute before its unauthenticated
	// requests get 429 for a minute: 0 means 10; negative means no limit
	// (tests of other refusals).
	AuthFailureLimit int
}

// Server answers SCIM requests from the store.
type Server struct {
	st       store.Store
	opt      Options
	log      *slog.Logger
	now      func() time.Time
	lib      elimity.Server
	userType elimity.ResourceType
	grpType  elimity.ResourceType
	// userLoc writes a user's meta.location; userSchemasJSON is the
	// "schemas" of a user answer (userjson.go).
	userLoc         locations
	userSchemasJSON []byte
	// userSchema is what the library validates a user body against (its
	// schemaWithCommon), built once.
	userSchema schema.Schema
	// viaLibrary sends user lists, GETs and creations through the
	// library, as before userjson.go, and every Group PATCH through the
	// generic PATCH reader, as before grouppatch.go: the tests compare the
	// two answers.
	viaLibrary bool
	// failures counts failed authentications per client address (limit.go).
	failures *authFailures
}

const maxResults = 1000

// New builds the SCIM endpoint over st.
func New(st store.Store, opt Options) (*Server, error) {
	if opt.Auth == nil {
		return nil, errors.New("scim: an authenticator is required")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 1 << 20
	}
	opt.BasePath = "/" + strings.Trim(opt.BasePath, "/")
	s := &Server{st: st, opt: opt, log: opt.Logger, now: opt.Now}
	if opt.AuthFailureLimit >= 0 {
		lim := defaultAuthLimit
		if opt.AuthFailureLimit > 0 {
			lim.Failures = opt.AuthFailureLimit
		}
		s.failures = newAuthFailures(lim)
	}
	s.userType = elimity.ResourceType{
		ID:          optional.NewString("User"),
		Name:        "User",
		Description: optional.NewString("User Account"),
		Endpoint:    "/Users",
		Schema:      schema.CoreUserSchema(),
		SchemaExtensions: []elimity.SchemaExtension{
			{Schema: schema.ExtensionEnterpriseUser()},
		},
		Handler: userHandler{s: s},
	}
	s.grpType = elimity.ResourceType{
		ID:          optional.NewString("Group"),
		Name:        "Group",
		Description: optional.NewString("Group"),
		Endpoint:    "/Groups",
		Schema:      schema.CoreGroupSchema(),
		Handler:     groupHandler{s: s},
	}
	lib, err := elimity.NewServer(&elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			DocumentationURI: optional.NewString("https://github.com/scimflare/scimflare"),
			AuthenticationSchemes: []elimity.AuthenticationScheme{{
				Type:        elimity.AuthenticationTypeOauthBearerToken,
				Name:        "OAuth Bearer Token",
				Description: "Authentication with a bearer token: a scimflare token, the configured static token, or a JWT access token from scim.oidc.issuer.",
				Primary:     true,
			}},
			MaxResults:       maxResults,
			SupportFiltering: true,
			SupportPatch:     true,
		},
		ResourceTypes: []elimity.ResourceType{s.userType, s.grpType},
	}, elimity.WithBaseURL(opt.BasePath))
	if err != nil {
		return nil, err
	}
	s.lib = lib
	s.userLoc = newLocations(s.userType.Endpoint, strings.TrimRight(opt.BasePath, "/"))
	schemas := []string{s.userType.Schema.ID}
	for _, e := range s.userType.SchemaExtensions {
		schemas = append(schemas, e.Schema.ID)
	}
	if s.userSchemasJSON, err = json.Marshal(schemas); err != nil {
		return nil, err
	}
	s.userSchema = withExternalID(s.userType.Schema)
	return s, nil
}

// patchedByServer is the library handlers' Patch, never reached: serveHTTP
// answers every PATCH itself, because the library's PATCH validator rejects
// shapes real IdPs send.
type patchedByServer struct{}

func (patchedByServer) Patch(r *http.Request, id string, _ []elimity.PatchOperation) (elimity.Resource, error) {
	return elimity.Resource{}, scimError(http.StatusInternalServerError, "", "PATCH was routed past scimflare's PATCH handler")
}

// Handler is the SCIM endpoint, to be mounted at opt.BasePath.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// statusWriter keeps the status of the answer, counts its bytes, and keeps
// the start of a 4xx body (its SCIM error) for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int
	body   bytes.Buffer
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	if code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		// An IdP backs off a 503 that says when to come back, instead of
		// counting it toward quarantining the provisioning job.
		w.Header().Set("Retry-After", retryAfterUnavailable)
	}
	w.ResponseWriter.WriteHeader(code)
}

// retryAfterUnavailable is the Retry-After of a 503: the state backend is
// down, and a database failover takes seconds.
const retryAfterUnavailable = "5"

// keptErrorBody is how much of a 4xx body the request log reads.
const keptErrorBody = 4 << 10

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += n
	if w.status >= 400 && w.status < 500 && w.body.Len() < keptErrorBody {
		w.body.Write(b[:min(len(b), keptErrorBody-w.body.Len())])
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	rest := strings.TrimPrefix(r.URL.Path, s.opt.BasePath)
	path, endpoint := canonicalPath(rest)
	defer func() {
		status := w.status
		if status == 0 {
			status = http.StatusOK
		}
		if s.opt.Metrics != nil {
			method := methodLabel(r.Method)
			s.opt.Metrics.Requests.WithLabelValues(endpoint, method, statusLabel(status)).Inc()
			s.opt.Metrics.Latency.WithLabelValues(endpoint, method).Observe(time.Since(start).Seconds())
		}
		s.logRequest(r, w, status, time.Since(start))
	}()
	err := s.opt.Auth.Check(r)
	// Failures are counted only for a refused token: an authenticated
	// request takes neither the address parse nor the table's lock.
	refused := err != nil && !errors.Is(err, ErrAuthUnavailable)
	var key string
	var wait time.Duration
	var blocked bool
	if refused {
		key = clientKey(r.RemoteAddr)
		wait, blocked = s.failures.blockedFor(key, s.now())
	}
	if blocked {
		// A blocked address whose token does authenticate is still served:
		// it may be shared (a TLS proxy, an IdP's egress), and blocking the
		// IdP itself would stop deprovisioning. Telling a valid token apart
		// this way teaches nothing: a token is 256 random bits.
		if s.opt.Metrics != nil {
			s.opt.Metrics.AuthBlocked.Inc()
		}
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, scimerr.ScimError{Status: http.StatusTooManyRequests,
			Detail: fmt.Sprintf("too many failed authentications from this address; retry after %d seconds", secs)})
		return
	}
	if refused && s.failures != nil && s.failures.fail(key, s.now()) {
		s.log.Warn("SCIM client blocked after repeated failed authentications",
			"client", key, "failures", s.failures.lim.Failures, "for", s.failures.lim.Window.String())
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scimflare"`)
		detail := "authentication failed: " + err.Error()
		if !errors.Is(err, errNoToken) && !errors.Is(err, errBadToken) {
			// The server's fault, not the client's: a 401 would make an
			// IdP count it toward quarantining the provisioning job.
			s.log.Error("token check failed", "err", err)
			writeError(w, scimerr.ScimError{Status: http.StatusServiceUnavailable,
				Detail: "the token store cannot be read right now; nothing was done; retry later"})
			return
		}
		writeError(w, scimerr.ScimError{Status: http.StatusUnauthorized, Detail: detail})
		return
	}
	var body []byte
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		if r.ContentLength > s.opt.MaxBodyBytes {
			writeError(w, scimError(http.StatusRequestEntityTooLarge, "", "the request body is larger than scim.max_body_bytes (%d bytes)", s.opt.MaxBodyBytes))
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, s.opt.MaxBodyBytes+1))
		if err != nil {
			writeError(w, scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidSyntax, "the request body could not be read"))
			return
		}
		if int64(len(b)) > s.opt.MaxBodyBytes {
			writeError(w, scimError(http.StatusRequestEntityTooLarge, "", "the request body is larger than scim.max_body_bytes (%d bytes)", s.opt.MaxBodyBytes))
			return
		}
		body = b
	}
	if len(body) > 0 && !jsonContentType(r.Header.Get("Content-Type")) {
		writeError(w, scimError(http.StatusUnsupportedMediaType, "", "the request body must be JSON: Content-Type %q is not application/scim+json or application/json", shorten(r.Header.Get("Content-Type"))))
		return
	}
	if endpoint == "ServiceProviderConfig" || endpoint == "Schemas" || endpoint == "ResourceTypes" {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, scimError(http.StatusMethodNotAllowed, "", "%s is read-only: only GET is allowed", endpoint))
			return
		}
	}

	// path is decoded once (by net/http); id is used as it is, never
	// decoded again.
	resource, id, hasID := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if r.Method == http.MethodPatch && hasID && id != "" {
		switch resource {
		case "Users":
			s.patchUser(w, r, id, body)
			return
		case "Groups":
			s.patchGroup(w, r, id, body)
			return
		}
	}
	// decoded is body as the library decodes it, when normalizing decoded
	// it already.
	var decoded map[string]any
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && (resource == "Users" || resource == "Groups") && body != nil {
		nb, doc, err := normalizeResourceDoc(body, resource)
		if err != nil {
			writeError(w, scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidSyntax, "the request body is not valid JSON: %v", err))
			return
		}
		body, decoded = nb, doc
	}
	// A shallow copy: only URL, Body and the context are replaced below,
	// and nothing downstream writes to the request's headers.
	r2 := r.WithContext(r.Context())
	u := *r.URL
	u.Path = path
	if hasID && (resource == "Users" || resource == "Groups") {
		// The library unescapes the id it routes on: hand it the id
		// escaped once more so that it ends up decoded exactly once.
		u.Path = "/" + resource + "/" + url.PathEscape(id)
	}
	u.RawPath = ""
	q := u.Query()
	// Every filter is decided by scimflare's own parser, within its limits,
	// before any other code sees it: a list filter is compiled here and
	// handed to the list handlers, and taken out of the query so the
	// library never parses it; any other filter (/Schemas,
	// /ResourceTypes …) must at least be within the limits.
	listRes, isList := s.listResource(r.Method, path)
	if q.Has("filter") {
		raw := q.Get("filter")
		if isList {
			f, err := compileListFilter(raw, listRes)
			if err != nil {
				writeError(w, s.toSCIM(err, "", ""))
				return
			}
			q.Del("filter")
			u.RawQuery = q.Encode()
			r2 = withListFilter(r2, f)
		} else if err := query.CheckLimits(raw); err != nil {
			writeError(w, s.toSCIM(err, "", ""))
			return
		}
	}
	r2.URL = &u
	switch {
	case endpoint == "ServiceProviderConfig":
		s.serviceProviderConfig(w, r2)
		return
	case endpoint == "Schemas":
		s.schemas(w, r2)
		return
	}
	if body != nil {
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		r2 = r2.WithContext(context.WithValue(r2.Context(), rawBodyKey{}, body))
	}
	if isList {
		s.list(w, r2, q)
		return
	}
	uw := &unavailableWriter{ResponseWriter: w}
	switch {
	case r.Method == http.MethodPost && path == s.userType.Endpoint && !s.viaLibrary:
		s.postUser(uw, r2, body, decoded)
	case r.Method == http.MethodGet && resource == "Users" && hasID && id != ".search" && !s.viaLibrary:
		s.getUser(uw, r2, id)
	default:
		s.lib.ServeHTTP(uw, r2)
	}
	uw.finish()
}

// methodLabel is the method as a metrics label, from a closed set: a client
// can send any token as a method, and each would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

// statusLabel is the status as a metrics label; scimflare answers a known
// set of statuses, and anything else is counted by its class.
func statusLabel(code int) string {
	switch code {
	case 200, 201, 204, 400, 401, 403, 404, 405, 409, 412, 413, 415, 429, 500, 501, 503:
		return strconv.Itoa(code)
	}
	return strconv.Itoa(code/100) + "xx"
}

// jsonContentType accepts a missing Content-Type (a body is read as JSON)
// and the two JSON media types RFC 7644 §3.1 names, with any parameters.
func jsonContentType(h string) bool {
	if strings.TrimSpace(h) == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(h)
	if err != nil {
		return false
	}
	return mt == "application/scim+json" || mt == "application/json"
}

// shorten keeps a client's value short in an error message.
func shorten(v string) string {
	if len(v) > 100 {
		return v[:100] + "…"
	}
	return v
}

// compileListFilter is scimflare's decision on a list filter: the filter as
// written, else with bare string values quoted (Microsoft's conformance
// collection sends `userName sw O`). An empty filter is no filter.
func compileListFilter(raw string, res query.Resource) (*query.Filter, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	f, err := query.Compile(raw, res)
	if err == nil {
		return f, nil
	}
	if query.CheckLimits(raw) != nil {
		return nil, err
	}
	if fixed, ok := quoteBareValues(raw); ok {
		if f, ferr := query.Compile(fixed, res); ferr == nil {
			return f, nil
		}
	}
	return nil, err
}

// list answers a list request through the library, with itemsPerPage set
// to the number of resources returned (RFC 7644 §3.4.2.4) rather than the
// count asked for.
//
// q is the request's query as serveHTTP parsed it, filter taken out.
func (s *Server) list(w http.ResponseWriter, r *http.Request, q url.Values) {
	if r.URL.Path == s.userType.Endpoint && !s.viaLibrary {
		s.listUsers(w, r, q)
		return
	}
	s.libraryList(w, r)
}

// libraryList is list through the library.
func (s *Server) libraryList(w http.ResponseWriter, r *http.Request) {
	n := new(int)
	*n = -1
	r = r.WithContext(context.WithValue(r.Context(), listCountKey{}, n))
	rec := &bufferedResponse{header: w.Header(), code: http.StatusOK}
	s.lib.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.code == http.StatusOK && *n >= 0 {
		body = setItemsPerPage(body, *n)
	}
	w.WriteHeader(rec.code)
	_, _ = w.Write(body)
}

// setItemsPerPage rewrites the top-level itemsPerPage of a ListResponse.
// The library marshals it from a map, keys sorted: a body that starts with
// "Resources" has the top-level member after it, as the last
// `"itemsPerPage":` in the body (a string value cannot hold that sequence
// unescaped). Anything unexpected
// takes the slow path: decode, set, encode.
func setItemsPerPage(body []byte, n int) []byte {
	key := []byte(`"itemsPerPage":`)
	i := bytes.LastIndex(body, key)
	if i >= 0 && bytes.HasPrefix(body, []byte(`{"Resources":`)) {
		j := i + len(key)
		k := j
		for k < len(body) && body[k] >= '0' && body[k] <= '9' {
			k++
		}
		if k > j && k < len(body) && (body[k] == ',' || body[k] == '}') {
			out := make([]byte, 0, len(body)+8)
			out = append(out, body[:j]...)
			out = strconv.AppendInt(out, int64(n), 10)
			return append(out, body[k:]...)
		}
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return body
	}
	doc["itemsPerPage"] = json.RawMessage(strconv.Itoa(n))
	if b, err := json.Marshal(doc); err == nil {
		return b
	}
	return body
}

type listCountKey struct{}

// setListCount tells list how many resources a list handler returned.
func setListCount(r *http.Request, n int) {
	if p, ok := r.Context().Value(listCountKey{}).(*int); ok {
		*p = n
	}
}

// listResource is the resource a GET of its collection lists.
func (s *Server) listResource(method, path string) (query.Resource, bool) {
	if method != http.MethodGet {
		return query.Resource{}, false
	}
	switch path {
	case s.userType.Endpoint:
		return userResource, true
	case s.grpType.Endpoint:
		return groupResource, true
	}
	return query.Resource{}, false
}

type rawBodyKey struct{}

func rawBody(r *http.Request) []byte {
	b, _ := r.Context().Value(rawBodyKey{}).([]byte)
	return b
}

// canonicalPath maps the path below the base path onto the library's
// routes: resource names in any letter case (OneLogin and others send
// /users), a trailing slash, and Microsoft's /serviceConfiguration alias.
// It also returns a fixed endpoint label for metrics.
func canonicalPath(p string) (path, endpoint string) {
	p = "/" + strings.Trim(p, "/")
	first, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	name, ok := canonicalResources[strings.ToLower(first)]
	if !ok {
		return p, "other"
	}
	if rest == "" {
		return "/" + name, name
	}
	if name == "Users" || name == "Groups" {
		return "/" + name + "/" + rest, name + "/{id}"
	}
	return "/" + name + "/" + rest, name
}

var canonicalResources = map[string]string{
	"users": "Users", "groups": "Groups", "schemas": "Schemas", "resourcetypes": "ResourceTypes",
	"serviceproviderconfig": "ServiceProviderConfig", "serviceproviderconfigs": "ServiceProviderConfig",
	"serviceconfiguration": "ServiceProviderConfig",
}

// versionTag renders a store version as a weak ETag.
func versionTag(v uint64) string { return `W/"` + strconv.FormatUint(v, 10) + `"` }

// ifMatch reads If-Match as a store version; 0 means no precondition.
func ifMatch(r *http.Request) (uint64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	v, err := strconv.ParseUint(strings.Trim(h, `"`), 10, 64)
	if err != nil || v == 0 {
		// An ETag we never issued cannot match the current version.
		return ^uint64(0), nil
	}
	return v, nil
}

func meta(m store.Meta) elimity.Meta {
	c, l := m.Created, m.LastModified
	return elimity.Meta{Created: &c, LastModified: &l, Version: versionTag(m.Version)}
}

func (s *Server) notify(c Change) {
	if s.opt.Notifier != nil && (len(c.UserIDs) > 0 || len(c.GroupIDs) > 0 || len(c.Emails) > 0) {
		s.opt.Notifier.Changed(c)
	}
}

// listParams reads attributes/excludedAttributes (comma separated).
func listParams(r *http.Request) (attrs, excluded []string) {
	return listParamsOf(r.URL.Query())
}

// listParamsOf is listParams over a parsed query.
func listParamsOf(q url.Values) (attrs, excluded []string) {
	split := func(v string) []string {
		var out []string
		for _, p := range strings.Split(v, ",") {
			// Microsoft's collection asks for attributes=emails[type eq "work"]:
			// a value filter is not part of the attributes grammar, so the
			// whole attribute is returned.
			if i := strings.IndexByte(p, '['); i >= 0 {
				p = p[:i]
			}
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	return split(q.Get("attributes")), split(q.Get("excludedAttributes"))
}

// listFilter is a list request's filter, compiled by serveHTTP; nil when
// there is none.
func listFilter(r *http.Request, res query.Resource) (*query.Filter, error) {
	if f, ok := r.Context().Value(listFilterKey{}).(*query.Filter); ok {
		return f, nil
	}
	return compileListFilter(r.URL.Query().Get("filter"), res)
}

type listFilterKey struct{}

// withListFilter hands a compiled list filter to the list handlers.
func withListFilter(r *http.Request, f *query.Filter) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), listFilterKey{}, f))
}

// writePatched answers a successful PATCH: 204 No Content unless the client
// asked for attributes back (the "attributes" parameter, or Prefer:
// return=representation), as RFC 7644 §3.5.2 allows. etag is the patched
// resource's version tag; build, the resource, is called only for an
// answer with a body (a group's reads a snapshot of the store).
func (s *Server) writePatched(w http.ResponseWriter, r *http.Request, attrs, excluded []string, etag string, build func() elimity.Resource, location string) {
	q := r.URL.Query()
	wantBody := q.Has("attributes") || q.Has("excludedAttributes") ||
		strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "return=representation")
	w.Header().Set("Etag", etag)
	if !wantBody {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	res := build()
	out := make(map[string]any, len(res.Attributes)+4)
	for k, v := range res.Attributes {
		out[k] = v
	}
	out["id"] = res.ID
	if res.ExternalID.Present() {
		out["externalId"] = res.ExternalID.Value()
	}
	rt := "User"
	schemas := []string{userSchemaURN, enterpriseSchemaURN}
	if strings.HasPrefix(location, "/Groups/") {
		rt, schemas = "Group", []string{groupSchemaURN}
	}
	out["schemas"] = schemas
	out["meta"] = map[string]any{
		"resourceType": rt,
		"created":      res.Meta.Created.Format(time.RFC3339),
		"lastModified": res.Meta.LastModified.Format(time.RFC3339),
		"version":      res.Meta.Version,
		"location":     s.opt.BasePath + location,
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(out)
}

// serviceProviderConfig corrects the library's answer, which always says
// etag unsupported: scimflare issues meta.version ETags and honours
// If-Match, and a client that reads this document should know it. It also
// leaves out the optional URIs scimflare has none of, which the library
// sends as "" (python-scim and authentik refuse an empty URI).
func (s *Server) serviceProviderConfig(w http.ResponseWriter, r *http.Request) {
	rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
	s.lib.ServeHTTP(rec, r)
	var doc map[string]any
	if rec.code != http.StatusOK || json.Unmarshal(rec.body.Bytes(), &doc) != nil {
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		_, _ = w.Write(rec.body.Bytes())
		return
	}
	doc["etag"] = map[string]bool{"supported": true}
	dropEmptyURIs(doc)
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(doc)
}

// bufferedResponse holds a library answer so it can be amended before it is
// sent.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

// dropEmptyURIs removes every "…Uri" member whose value is "", at any depth.
func dropEmptyURIs(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, sv := range v {
			if str, ok := sv.(string); ok && str == "" && strings.HasSuffix(k, "Uri") {
				delete(v, k)
				continue
			}
			dropEmptyURIs(sv)
		}
	case []any:
		for _, sv := range v {
			dropEmptyURIs(sv)
		}
	}
}

// schemas answers /Schemas and /Schemas/{id} from the library, with the
// Group schema's members.display marked "returned": "never": scimflare
// accepts it and keeps only the member's id, so a client must not wait for
// it.
func (s *Server) schemas(w http.ResponseWriter, r *http.Request) {
	rec := &bufferedResponse{header: w.Header(), code: http.StatusOK}
	s.lib.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.code == http.StatusOK {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var doc map[string]any
		if dec.Decode(&doc) == nil {
			markDisplayNeverReturned(doc)
			if b, err := json.Marshal(doc); err == nil {
				body = b
			}
		}
	}
	w.WriteHeader(rec.code)
	_, _ = w.Write(body)
}

func markDisplayNeverReturned(v any) {
	switch v := v.(type) {
	case map[string]any:
		if v["id"] == groupSchemaURN {
			attrs, _ := v["attributes"].([]any)
			for _, a := range attrs {
				am, _ := a.(map[string]any)
				if am["name"] != "members" {
					continue
				}
				subs, _ := am["subAttributes"].([]any)
				for _, sa := range subs {
					if sm, _ := sa.(map[string]any); sm["name"] == "display" {
						sm["returned"] = "never"
					}
				}
			}
			return
		}
		for _, sv := range v {
			markDisplayNeverReturned(sv)
		}
	case []any:
		for _, sv := range v {
			markDisplayNeverReturned(sv)
		}
	}
}
