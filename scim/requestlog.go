package scim

import (
	"encoding/json"
	"net/http"
	"time"
)

// logRequest logs, when Options.RequestLog is set, every answer in the 4xx
// range at WARN with its detail and the client's address (an IdP's typo is
// otherwise visible only in the IdP), and, while RequestLog returns true,
// one line per request. It never logs a header, so never a token; the
// query string is left out too (filters carry personal data), the detail
// names what was wrong with it.
func (s *Server) logRequest(r *http.Request, w *statusWriter, status int, took time.Duration) {
	if s.opt.RequestLog == nil {
		return
	}
	if status >= 400 && status < 500 {
		var body struct {
			Detail   string `json:"detail"`
			SCIMType string `json:"scimType"`
		}
		_ = json.Unmarshal(w.body.Bytes(), &body)
		s.log.Warn("SCIM request refused", "method", r.Method, "path", r.URL.Path, "status", status,
			"scim_type", body.SCIMType, "detail", body.Detail, "client", r.RemoteAddr)
	}
	if s.opt.RequestLog() {
		s.log.Info("SCIM request", "method", r.Method, "path", r.URL.Path, "status", status,
			"bytes", w.n, "duration", took.Round(time.Microsecond).String(), "client", r.RemoteAddr)
	}
}
