package main

// TestReadmeWalkthrough runs README.md's walk-through as written: the
// block marked `readme-test: serve` starts the daemon (`go run
// ./cmd/scimflare serve --dev`, with `go run ./cmd/scimflare` standing for
// the binary built here), the blocks marked `run` are run by bash in
// order, in the second terminal the README describes (its `export` line
// pasted from the daemon's output, variables kept from block to block),
// and every line of a block marked `output` must show up in what the
// daemon or the blocks printed (`…` stands for anything; runs of spaces
// match any run). Then the daemon is stopped with SIGINT and its state
// folder must be gone.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

type readmeBlock struct {
	kind string // serve, run, output
	text string
	line int
}

func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	marker := regexp.MustCompile(`^<!-- readme-test: (serve|run|output) -->$`)
	var blocks []readmeBlock
	var cur *readmeBlock
	kind := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case marker.MatchString(line):
			kind = marker.FindStringSubmatch(line)[1]
		case kind != "" && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{kind: kind, line: n}
			kind = ""
		case kind != "" && strings.TrimSpace(line) != "":
			t.Fatalf("README.md:%d: a readme-test marker must be followed by a code block", n)
		}
	}
	return blocks
}

// linePattern turns an expected output line into a regexp over one line.
func linePattern(want string) *regexp.Regexp {
	var parts []string
	for _, piece := range strings.Split(want, "…") {
		words := strings.Fields(piece)
		for i, w := range words {
			words[i] = regexp.QuoteMeta(w)
		}
		p := strings.Join(words, `\s+`)
		if strings.HasPrefix(piece, " ") && p != "" {
			p = `\s+` + p
		}
		if strings.HasSuffix(piece, " ") && p != "" {
			p += `\s+`
		}
		parts = append(parts, p)
	}
	return regexp.MustCompile(`(?m)^\s*` + strings.Join(parts, `.*`) + `\s*$`)
}

func TestReadmeWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed; the walk-through uses it")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, filepath.Join(root, "README.md"))
	if len(blocks) < 5 || blocks[0].kind != "serve" {
		t.Fatalf("README.md: the walk-through must start with a `readme-test: serve` block and have run and output blocks; found %d blocks", len(blocks))
	}
	if got := strings.TrimSpace(blocks[0].text); got != "go run ./cmd/scimflare serve --dev" {
		t.Fatalf("README.md:%d: the walk-through starts with %q, want `go run ./cmd/scimflare serve --dev`", blocks[0].line, got)
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	// `go run ./cmd/scimflare ARGS` as the README writes it, with the
	// binary built above.
	shim := `go() { if [ "$1" = run ] && [ "$2" = ./cmd/scimflare ]; then shift 2; "$SCIMFLARE_BIN" "$@"; else command go "$@"; fi; }` + "\n"
	env := append(os.Environ(), "SCIMFLARE_BIN="+bin,
		// Tokens a developer may have exported for other tools: --dev
		// must read neither.
		"CLOUDFLARE_API_TOKEN=must-never-be-used", "SCIMFLARE_CLOUDFLARE_API_TOKEN=must-never-be-used")

	daemonOut, daemonLog := newSyncBuffer(), newSyncBuffer()
	serve := exec.Command("bash", "-c", shim+blocks[0].text)
	serve.Dir, serve.Env = root, env
	serve.Stdout, serve.Stderr = daemonOut, daemonLog
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-serve.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-serve.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Error("serve --dev did not stop within 30s of SIGINT")
		}
	}
	t.Cleanup(stop)
	defer func() {
		if t.Failed() {
			t.Logf("daemon stdout:\n%s\ndaemon stderr:\n%s", daemonOut.String(), daemonLog.String())
		}
	}()

	var export string
	waitUntil(t, 60*time.Second, "serve --dev prints the export line", func() bool {
		for _, l := range strings.Split(daemonOut.String(), "\n") {
			if strings.HasPrefix(l, "export B=") {
				export = l
				return true
			}
		}
		return false
	})

	vars := filepath.Join(dir, "vars.sh")
	assigned := regexp.MustCompile(`(?m)^([A-Z][A-Z0-9_]*)=`)
	var printed strings.Builder
	for _, b := range blocks[1:] {
		switch b.kind {
		case "serve":
			t.Fatalf("README.md:%d: a second serve block", b.line)
		case "run":
			// What the daemon told the reader to paste is what the
			// README shows.
			for _, l := range strings.Split(b.text, "\n") {
				if strings.HasPrefix(l, "ALICE=$(curl") || strings.HasPrefix(l, "curl -s -o /dev/null") {
					if !strings.Contains(daemonOut.String(), l) {
						t.Errorf("README.md:%d: serve --dev does not print this line:\n%s", b.line, l)
					}
				}
			}
			script := shim + export + "\n[ -f " + vars + " ] && . " + vars + "\n" + b.text
			for _, m := range assigned.FindAllStringSubmatch(b.text, -1) {
				script += "declare -p " + m[1] + " >> " + vars + "\n"
			}
			cmd := exec.Command("bash", "-c", script)
			cmd.Dir, cmd.Env = root, env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("README.md:%d: the block failed: %v\n%s\n%s", b.line, err, b.text, out)
			}
			printed.Write(out)
		case "output":
			for _, want := range strings.Split(strings.TrimSpace(b.text), "\n") {
				re := linePattern(want)
				ok := false
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					if re.MatchString(printed.String()) || re.MatchString(daemonOut.String()) {
						ok = true
						break
					}
				}
				if !ok {
					t.Fatalf("README.md:%d: nothing printed matches %q\nthe blocks printed:\n%s", b.line, want, printed.String())
				}
			}
		}
	}

	// The dev config points at the loopback fake and reads no token from
	// the environment.
	cfgPath := strings.TrimPrefix(regexp.MustCompile(`C=\S+`).FindString(export), "C=")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`api_token_env: ""`, "base_url: http://127.0.0.1:"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the dev config lacks %q:\n%s", want, raw)
		}
	}
	stop()
	if _, err := os.Stat(filepath.Dir(cfgPath)); !os.IsNotExist(err) {
		t.Errorf("serve --dev left its state folder %s behind (%v)", filepath.Dir(cfgPath), err)
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
}
