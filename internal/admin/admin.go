// Package admin carries CLI commands to a running daemon over a unix socket
// (mode 0600: file permission is the authentication) and their output back.
// It knows nothing about the commands themselves; it must never listen on
// anything but a unix socket.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Request is one CLI invocation: the arguments after the program name.
type Request struct {
	Args []string `json:"args"`
}

// Response is what the command printed and its exit status.
type Response struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
	// Config is the path of the config file the daemon runs with, so a
	// command given another --config can say so.
	Config string `json:"config,omitempty"`
}

// RunFunc executes a command inside the daemon.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Listen opens the admin socket with mode 0600. What stands at path must
// be nothing or a stale socket: it refuses to replace any other file (a
// mistyped admin.socket must not delete it) and a socket a daemon still
// answers on.
func Listen(path string) (net.Listener, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("chmod admin socket %s: %w", path, err)
	}
	return l, nil
}

// removeStale removes the socket at path if it is a socket that refuses
// connections: a crashed daemon's.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("check admin socket %s: %w", path, err)
	case fi.Mode()&fs.ModeSocket == 0:
		return fmt.Errorf("admin socket %s exists and is not a unix socket: scimflare will not delete it", path)
	}
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("admin socket %s is in use by another scimflare daemon", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Busy or not ours to judge: a daemon may be there.
		return fmt.Errorf("admin socket %s: cannot tell whether a daemon still answers on it (%w); stop it or remove the socket yourself", path, err)
	}
	// Checked again just before removal, in case it changed meanwhile.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("admin socket %s exists and is not a unix socket: scimflare will not delete it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale admin socket %s: %w", path, err)
	}
	return nil
}

// Remove removes the admin socket at path when the daemon stops, and
// nothing else that may have taken its place.
func Remove(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}

// Handler serves commands on the admin socket.
func Handler(run RunFunc) http.Handler { return HandlerFor(run, nil) }

// HandlerFor is Handler that also reports the daemon's config file (an
// absolute path) with every answer.
func HandlerFor(run RunFunc, configPath func() string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/run", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var out, errOut bytes.Buffer
		code := run(r.Context(), req.Args, &out, &errOut)
		w.Header().Set("Content-Type", "application/json")
		resp := Response{Stdout: out.String(), Stderr: errOut.String(), Exit: code}
		if configPath != nil {
			resp.Config, _ = filepath.Abs(configPath())
		}
		_ = json.NewEncoder(w).Encode(resp)
	})
	return mux
}

// ErrNoDaemon means no daemon answers on the socket: the caller should open
// the state file itself.
var ErrNoDaemon = errors.New("no scimflare daemon is running")

// Call runs args in the daemon listening on path.
func Call(ctx context.Context, path string, args []string) (Response, error) {
	if _, err := os.Stat(path); err != nil {
		return Response{}, ErrNoDaemon
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	body, _ := json.Marshal(Request{Args: args})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://scimflare/v1/run", bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return Response{}, ErrNoDaemon
		}
		return Response{}, fmt.Errorf("talk to the daemon on %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Response{}, fmt.Errorf("the daemon on %s answered %s", path, resp.Status)
	}
	var out Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Response{}, fmt.Errorf("read the daemon's answer: %w", err)
	}
	return out, nil
}
