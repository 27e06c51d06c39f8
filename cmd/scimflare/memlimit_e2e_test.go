package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// serve runs under GOMEMLIMIT when it is set, and says the limit it runs
// under in its start-up line (without it: 80 % of the container's memory
// limit, or none; internal/daemon's TestContainerMemory reads the cgroup
// files).
func TestServeSaysItsMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	cfg := procConfig(t, dir, "", "@every 1h", "1s")
	t.Setenv("GOMEMLIMIT", "300MiB")
	logs := newSyncBuffer()
	p := startProc(t, bin, cfg, logs)
	p.kill()
	var got string
	for line := range strings.SplitSeq(logs.String(), "\n") {
		var l struct {
			Msg         string
			MemoryLimit string `json:"memory_limit"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "scimflare serving" {
			got = l.MemoryLimit
		}
	}
	if got != "300 MiB (GOMEMLIMIT)" {
		t.Fatalf("start-up line says memory_limit %q, want \"300 MiB (GOMEMLIMIT)\"; logs:\n%s", got, logs.String())
	}
}
