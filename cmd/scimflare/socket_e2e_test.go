package main

// Issue 16 point 9: serve replaced whatever stood at admin.socket (a file
// notes.txt was deleted; with admin.socket equal to state.path, the live
// state file), validate accepted such a config, and backup --out could be
// moved into place over the socket.

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// withSocket rewrites the admin.socket line of the config at cfgPath.
func withSocket(t *testing.T, cfgPath, socket string) {
	t.Helper()
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "  socket: ") {
			l = "  socket: " + socket
		}
		lines = append(lines, l)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serveBriefly runs the binary's serve for at most limit; a serve that is
// still running then is killed and reported as exit -1.
func serveBriefly(t *testing.T, bin, cfgPath string, limit time.Duration) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config="+cfgPath)
	cmd.Env = append(os.Environ(), "PROC_SCIM_TOKEN="+procSCIMToken)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), errOut.String()
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		return -1, errOut.String()
	}
}

func TestServeNeverDeletesWhatStandsAtAdminSocket(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	cfgPath := procConfig(t, dir, "", "@every 1h", "1s")
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("do not delete"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.db")

	t.Run("a regular file", func(t *testing.T) {
		withSocket(t, cfgPath, notes)
		code, errOut := serveBriefly(t, bin, cfgPath, 5*time.Second)
		if b, err := os.ReadFile(notes); err != nil || string(b) != "do not delete" {
			t.Fatalf("serve destroyed %s: %v %q", notes, err, b)
		}
		if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
			!strings.Contains(errOut, cfgPath) || !strings.Contains(errOut, "admin.socket "+notes) || !strings.Contains(errOut, "not a unix socket") {
			t.Errorf("serve must refuse in one sentence naming the file and the key: exit %d\n%s", code, errOut)
		}
		code, out, errOut := runMain("validate", "--config", cfgPath)
		if code != 1 || !strings.Contains(errOut, "admin.socket "+notes) || strings.Contains(out, "is valid") {
			t.Errorf("validate must refuse what serve refuses: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("the state file", func(t *testing.T) {
		// A state file with content, as a running daemon leaves it.
		withSocket(t, cfgPath, filepath.Join(dir, "admin.sock"))
		if code, out, errOut := runMain("token", "create", "--name", "okta", "--config", cfgPath); code != 0 {
			t.Fatalf("token create: %d %s %s", code, out, errOut)
		}
		before, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		withSocket(t, cfgPath, state)
		code, errOut := serveBriefly(t, bin, cfgPath, 5*time.Second)
		if after, err := os.ReadFile(state); err != nil || !bytes.Equal(before, after) {
			t.Fatalf("serve destroyed or changed the state file: %v", err)
		}
		if code != 1 || !strings.Contains(errOut, "admin.socket: "+state+" is also state.path") || !strings.Contains(errOut, cfgPath) {
			t.Errorf("serve must refuse admin.socket = state.path naming both keys: exit %d\n%s", code, errOut)
		}
		for _, other := range []string{state, "./" + filepath.Base(state), cfgPath} {
			rel := other
			if strings.HasPrefix(other, "./") {
				// The same file through another spelling.
				t.Chdir(dir)
			}
			withSocket(t, cfgPath, rel)
			code, out, errOut := runMain("validate", "--config", cfgPath)
			if code != 1 || !strings.Contains(errOut, "admin.socket: "+rel+" is also") {
				t.Errorf("validate with admin.socket %s: exit %d\n%s%s", rel, code, out, errOut)
			}
		}
	})

	t.Run("a stale socket is replaced", func(t *testing.T) {
		sock := filepath.Join(dir, "admin.sock")
		withSocket(t, cfgPath, sock)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		_ = l.Close() // a crashed daemon's socket: there, but nobody answers
		if code, out, errOut := runMain("validate", "--config", cfgPath); code != 0 {
			t.Errorf("validate refuses a stale socket: %d %s %s", code, out, errOut)
		}
		p := startProc(t, bin, cfgPath, newSyncBuffer())
		if code, out, errOut := runMain("status", "--config", cfgPath); code != 0 || !daemonAnswered(out) {
			t.Errorf("status did not reach the daemon on the replaced socket: %d\n%s%s", code, out, errOut)
		}
		p.kill()
	})
}

// TestBackupRefusesTheSocketAndTheState: a backup is moved into place with
// rename, which replaces whatever stands at --out.
func TestBackupRefusesTheSocketAndTheState(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	dir := filepath.Dir(e.cfgPath)
	sock, state := filepath.Join(dir, "admin.sock"), filepath.Join(dir, "state.db")
	for _, c := range []struct{ out, key string }{{sock, "the admin socket (admin.socket"}, {state, "the live state file (state.path"}, {e.cfgPath, "the config file"}} {
		code, out, errOut := e.cli("backup", "--out", c.out)
		if code != 1 || !strings.Contains(errOut, "--out "+c.out+" is "+c.key) {
			t.Errorf("backup --out %s: exit %d, want a refusal naming %s\n%s%s", c.out, code, c.key, out, errOut)
		}
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the admin socket is gone or replaced: %v", err)
	}
	if code, out, errOut := e.cli("status"); code != 0 || !daemonAnswered(out) {
		t.Errorf("the daemon no longer answers after the refused backups: %d %s %s", code, out, errOut)
	}
	// A relative --out, as typed in the state's directory.
	t.Chdir(dir)
	code, out, errOut := runMain("backup", "--out", "admin.sock", "--config", e.cfgPath)
	if code != 1 || !strings.Contains(errOut, "(admin.socket in") {
		t.Errorf("backup --out admin.sock (relative): exit %d\n%s%s", code, out, errOut)
	}
}

// daemonAnswered reports whether status output came from a running daemon.
func daemonAnswered(status string) bool {
	return regexp.MustCompile(`(?m)^daemon +true$`).MatchString(status)
}
