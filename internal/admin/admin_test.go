package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Listen replaces only a stale socket: never a file, never a socket a
// daemon still answers on (issue 16 point 9).
func TestListenReplacesOnlyAStaleSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "is not a unix socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Fatalf("the file was touched: %v %q", err, b)
	}

	sock := filepath.Join(dir, "admin.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	_ = stale.Close()
	live, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	srv := &http.Server{Handler: Handler(func(_ context.Context, args []string, out, _ io.Writer) int {
		_, _ = io.WriteString(out, strings.Join(args, " "))
		return 0
	})}
	go func() { _ = srv.Serve(live) }()
	t.Cleanup(func() { _ = srv.Close() })

	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen over a live socket: %v", err)
	}
	resp, err := Call(context.Background(), sock, []string{"status"})
	if err != nil || resp.Stdout != "status" {
		t.Errorf("the live daemon no longer answers: %+v %v", resp, err)
	}
	Remove(file)
	if _, err := os.Stat(file); err != nil {
		t.Errorf("Remove deleted a regular file: %v", err)
	}
}
