package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
)

const basePath = "/scim/v2"

// inProcess serves scimflare's real SCIM handler from this process, so a
// CPU profile of a run covers the server (scimflare has no pprof
// endpoint). It is the daemon's SCIM stack without the reconciler: no
// Notifier is attached. The store shares commits as serve's does (group
// commit).
type inProcess struct {
	enabled bool
	state   string
	batch   time.Duration
}

type inProcessServer struct {
	URL   string
	srv   *http.Server
	st    *store.BoltStore
	tmp   string
	serve chan error
}

// newSCIMHandler builds the SCIM endpoint the way internal/daemon does,
// mounted at basePath.
func newSCIMHandler(st store.Store, token string) (http.Handler, error) {
	s, err := scim.New(st, scim.Options{
		BasePath:     basePath,
		MaxBodyBytes: 1 << 20,
		EmailFrom:    "userName",
		Auth:         scim.NewAuthenticator(token, st, time.Now),
		Metrics:      scim.NewMetrics(prometheus.NewRegistry()),
		Now:          time.Now,
		// A load run counts every refusal by its status; the daemon's
		// failed-authentication limit would turn a wrong token's 401s
		// into 429s after ten.
		AuthFailureLimit: -1,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(basePath+"/", s.Handler())
	mux.Handle(basePath, s.Handler())
	return mux, nil
}

func (ip inProcess) start(token string) (*inProcessServer, error) {
	out := &inProcessServer{serve: make(chan error, 1)}
	path := ip.state
	if path == "" {
		dir, err := os.MkdirTemp("", "scimload-")
		if err != nil {
			return nil, fmt.Errorf("in-process state directory: %w", err)
		}
		out.tmp = dir
		path = filepath.Join(dir, "state.db")
	}
	// The daemon's group commit, unless bbolt's timer batch is asked for
	// (to compare the two).
	opts := []store.Option{store.WithGroupCommit()}
	if ip.batch > 0 {
		opts = []store.Option{store.WithBatch(ip.batch)}
	}
	st, err := store.Open(path, opts...)
	if err != nil {
		out.cleanup()
		return nil, err
	}
	out.st = st
	h, err := newSCIMHandler(st, token)
	if err != nil {
		out.cleanup()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		out.cleanup()
		return nil, fmt.Errorf("in-process listener: %w", err)
	}
	out.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	out.URL = "http://" + ln.Addr().String() + basePath
	go func() { out.serve <- out.srv.Serve(ln) }()
	return out, nil
}

// Close stops serving, closes the store and removes a temporary state file.
func (s *inProcessServer) Close() error {
	err := s.srv.Close()
	if serr := <-s.serve; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, s.cleanup())
}

func (s *inProcessServer) cleanup() error {
	var err error
	if s.st != nil {
		err = s.st.Close()
	}
	if s.tmp != "" {
		err = errors.Join(err, os.RemoveAll(s.tmp))
	}
	return err
}
