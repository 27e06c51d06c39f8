package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/scimflare/scimflare/internal/metrics"
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
	Metrics      *metrics.Metrics
	Logger       *slog.Logger
	Now          func() time.Time
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
	shapes   filterShapes
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

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	rest := strings.TrimPrefix(r.URL.Path, s.opt.BasePath)
	path, endpoint := canonicalPath(rest)
	defer func() {
		if s.opt.Metrics != nil {
			status := w.status
			if status == 0 {
				status = http.StatusOK
			}
			s.opt.Metrics.SCIMRequests.WithLabelValues(endpoint, r.Method, strconv.Itoa(status)).Inc()
			s.opt.Metrics.SCIMLatency.WithLabelValues(endpoint, r.Method).Observe(time.Since(start).Seconds())
		}
	}()
	err := s.opt.Auth.Check(r)
	reportAuth(r.Context(), err)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scimflare"`)
		detail := "authentication failed: " + err.Error()
		if !errors.Is(err, errNoToken) && !errors.Is(err, errBadToken) {
			s.log.Error("token check failed", "err", err)
			detail = "authentication failed: the token store could not be read"
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

	resource, id, hasID := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if r.Method == http.MethodPatch && hasID && id != "" {
		switch resource {
		case "Users":
			s.patchUser(w, r, unescape(id), body)
			return
		case "Groups":
			s.patchGroup(w, r, unescape(id), body)
			return
		}
	}
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && (resource == "Users" || resource == "Groups") && body != nil {
		nb, err := normalizeResourceBody(body, resource)
		if err != nil {
			writeError(w, scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidSyntax, "the request body is not valid JSON: %v", err))
			return
		}
		body = nb
	}
	r2 := r.Clone(r.Context())
	u := *r.URL
	u.Path = path
	u.RawPath = ""
	q := u.Query()
	if rt, ok := s.listType(r.Method, path); ok && q.Has("filter") && s.shapes.libraryAccepts(rt, q.Get("filter")) {
		raw := q.Get("filter")
		q.Del("filter")
		u.RawQuery = q.Encode()
		r2 = withListFilter(r2, raw)
	} else if q, changed := lenientFilterQuery(q, resource); changed {
		u.RawQuery = q.Encode()
	}
	r2.URL = &u
	if endpoint == "ServiceProviderConfig" && r.Method == http.MethodGet {
		s.serviceProviderConfig(w, r2)
		return
	}
	if body != nil {
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		r2 = r2.WithContext(context.WithValue(r2.Context(), rawBodyKey{}, body))
	}
	s.lib.ServeHTTP(w, r2)
}

// listType is the resource type a GET of its collection lists.
func (s *Server) listType(method, path string) (elimity.ResourceType, bool) {
	if method != http.MethodGet {
		return elimity.ResourceType{}, false
	}
	switch path {
	case s.userType.Endpoint:
		return s.userType, true
	case s.grpType.Endpoint:
		return s.grpType, true
	}
	return elimity.ResourceType{}, false
}

type rawBodyKey struct{}

func rawBody(r *http.Request) []byte {
	b, _ := r.Context().Value(rawBodyKey{}).([]byte)
	return b
}

func unescape(id string) string {
	if u, err := url.PathUnescape(id); err == nil {
		return u
	}
	return id
}

// canonicalPath maps the path below the base path onto the library's
// routes: resource names in any letter case (OneLogin and others send
// /users), a trailing slash, and Microsoft's /serviceConfiguration alias.
// It also returns a fixed endpoint label for metrics.
func canonicalPath(p string) (path, endpoint string) {
	p = "/" + strings.Trim(p, "/")
	first, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	canon := map[string]string{
		"users": "Users", "groups": "Groups", "schemas": "Schemas", "resourcetypes": "ResourceTypes",
		"serviceproviderconfig": "ServiceProviderConfig", "serviceproviderconfigs": "ServiceProviderConfig",
		"serviceconfiguration": "ServiceProviderConfig",
	}
	name, ok := canon[strings.ToLower(first)]
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
	q := r.URL.Query()
	return split(q.Get("attributes")), split(q.Get("excludedAttributes"))
}

// listFilter compiles a list request's filter parameter, if any: f is nil
// when there is none, and raw is the parameter as sent.
func listFilter(r *http.Request, res query.Resource) (f *query.Filter, raw string, err error) {
	raw = strings.TrimSpace(listFilterParam(r))
	if raw == "" {
		return nil, "", nil
	}
	f, err = query.Compile(raw, res)
	return f, raw, err
}

// writePatched answers a successful PATCH: 204 No Content unless the client
// asked for attributes back (the "attributes" parameter, or Prefer:
// return=representation), as RFC 7644 §3.5.2 allows.
func (s *Server) writePatched(w http.ResponseWriter, r *http.Request, attrs, excluded []string, build func() elimity.Resource, location string) {
	wantBody := r.URL.Query().Has("attributes") || r.URL.Query().Has("excludedAttributes") ||
		strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "return=representation")
	res := build()
	w.Header().Set("Etag", res.Meta.Version)
	if !wantBody {
		w.WriteHeader(http.StatusNoContent)
		return
	}
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
// If-Match, and a client that reads this document should know it.
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
