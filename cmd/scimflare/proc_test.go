package main

// The real binary as a child process: built once per test into its temp
// dir, started with `serve`, killed with SIGKILL. Shared by the crash and
// soak tests.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	procSCIMToken = "proc-scim-token-5f2a9c"
	procCFToken   = "proc-cloudflare-token-81d0e7"
)

// buildBinary compiles cmd/scimflare (without -race: the child is the
// subject, not the test) into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "scimflare")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// procConfig writes a config for a child daemon. cfURL "" means no
// Cloudflare token: plan-only.
func procConfig(t *testing.T, dir, cfURL, schedule, debounce string) string {
	t.Helper()
	tokenEnv := "PROC_CF_TOKEN"
	if cfURL == "" {
		tokenEnv, cfURL = `""`, "https://api.cloudflare.com/client/v4"
	}
	yaml := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
admin:
  socket: %s
state:
  path: %s
scim:
  token_env: PROC_SCIM_TOKEN
cloudflare:
  api_token_env: %s
  base_url: %s
  request_budget: 1200
sync:
  schedule: %q
  debounce: %s
  max_grant_duration: 24h
  guards:
    max_removals: 100000
    max_removal_percent: 100
accounts:
  - name: prod
    id: %s
    environment: production
    grant_shape: roles
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
    ttl: 1h
`, filepath.Join(dir, "admin.sock"), filepath.Join(dir, "state.db"), tokenEnv, cfURL, schedule, debounce, e2eAccount)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type proc struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan struct{}
}

// startProc runs `serve` and waits for its "scimflare serving" log line.
func startProc(t *testing.T, bin, cfgPath string, logs *syncBuffer) *proc {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "PROC_SCIM_TOKEN="+procSCIMToken, "PROC_CF_TOKEN="+procCFToken)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: logs, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logs.Write(append(bytes.Clone(line), '\n'))
			var l struct{ Msg, Listen string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "scimflare serving" {
				select {
				case addr <- l.Listen:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addr:
	case <-p.done:
		_ = cmd.Wait()
		t.Fatalf("serve exited before serving:\n%s", logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start within 20s:\n%s", logs.String())
	}
	return p
}

// kill sends SIGKILL and reaps the process; a no-op once done.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	_ = p.cmd.Wait()
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// scimCall is one SCIM request to a child; err is a transport error (the
// process may be dead).
func scimCall(client *http.Client, addr, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://"+addr+"/scim/v2"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+procSCIMToken)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err // the answer was cut: not an acknowledgement
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, nil
}

func userBody(email string) map[string]any {
	return map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": email, "active": true,
		"emails": []any{map[string]any{"primary": true, "value": email}},
	}
}

func addMemberBody(ids ...string) map[string]any {
	var vals []any
	for _, id := range ids {
		vals = append(vals, map[string]any{"value": id})
	}
	return map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "add", "path": "members", "value": vals}},
	}
}

func hasMember(group map[string]any, id string) bool {
	ms, _ := group["members"].([]any)
	for _, m := range ms {
		if mm, ok := m.(map[string]any); ok && mm["value"] == id {
			return true
		}
	}
	return false
}

func quoteFilter(attr, v string) string {
	return "?filter=" + strings.ReplaceAll(attr+` eq "`+v+`"`, " ", "%20")
}
