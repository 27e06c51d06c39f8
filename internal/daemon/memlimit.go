package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// A full run holds every account's member listing and the desired state at
// once, and leaves as much again behind as garbage; the collector lets the
// heap grow to twice what was live after its last cycle before it runs
// again. In a container that can pass the memory limit although the live
// data fits, and the kernel kills the daemon mid-run. Under a soft limit
// the collector works harder as the heap nears it instead (BENCHMARKS.md,
// "Full runs": a 1M-user plan peaked at 776 MB under an 800 MiB limit,
// and at 877 MB without one). So serve sets one from the
// container's limit; GOMEMLIMIT, when set, wins, as in any Go program.

// memLimitShare is the part of the container's memory the Go heap may
// use before the collector works harder: the rest is for the runtime's
// own overhead, goroutine stacks and the page cache the kernel charges to
// the container.
const memLimitShare = 0.8

// memoryLimit is the soft memory limit serve runs under and where it came
// from, for the start-up log.
type memoryLimit struct {
	bytes  int64 // 0: none
	source string
}

// String puts the limit in the start-up log's words.
func (m memoryLimit) String() string {
	if m.bytes <= 0 {
		return "none"
	}
	return fmt.Sprintf("%d MiB (%s)", m.bytes>>20, m.source)
}

// chooseMemoryLimit decides the soft limit: GOMEMLIMIT as the runtime
// read it, else memLimitShare of the container's limit (0: none), else
// none. current is what the runtime holds now (math.MaxInt64 when unset).
func chooseMemoryLimit(goMemLimitSet bool, current, container int64) memoryLimit {
	switch {
	case goMemLimitSet && current > 0 && current < math.MaxInt64:
		return memoryLimit{bytes: current, source: "GOMEMLIMIT"}
	case goMemLimitSet:
		return memoryLimit{source: "GOMEMLIMIT"}
	case container > 0:
		return memoryLimit{
			bytes:  int64(float64(container) * memLimitShare),
			source: fmt.Sprintf("%.0f%% of the container's %d MiB", memLimitShare*100, container>>20),
		}
	}
	return memoryLimit{}
}

// applyMemoryLimit sets the soft limit chosen from the environment and
// the cgroup this process runs in, read through fsys (the root file
// system), and returns it.
func applyMemoryLimit(fsys fs.FS) memoryLimit {
	_, set := os.LookupEnv("GOMEMLIMIT")
	m := chooseMemoryLimit(set, debug.SetMemoryLimit(-1), containerMemory(fsys))
	if !set && m.bytes > 0 {
		debug.SetMemoryLimit(m.bytes)
	}
	return m
}

// noLimit is the smallest figure cgroup v1 reports for "unlimited" on any
// page size (it rounds 2^63-1 down to a page); no real limit comes near it.
const noLimit = int64(1) << 60

// containerMemory is the memory limit of the cgroup this process runs in,
// in bytes, or 0 when there is none or it cannot be read: cgroup v2's
// memory.max, else cgroup v1's memory.limit_in_bytes. The cgroup's own
// directory is tried first (no cgroup namespace: the path is the host's),
// then the mount's root (a container sees its own cgroup there).
func containerMemory(fsys fs.FS) int64 {
	own, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0
	}
	v2, v1 := cgroupPaths(own)
	var candidates []string
	if v2 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup", v2, "memory.max"), "sys/fs/cgroup/memory.max")
	}
	if v1 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"), "sys/fs/cgroup/memory/memory.limit_in_bytes")
	}
	for _, name := range candidates {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= noLimit {
			return 0
		}
		return n
	}
	return 0
}

// cgroupPaths reads /proc/self/cgroup: the unified (v2) path from the
// "0::" line, and the memory controller's (v1) path.
func cgroupPaths(procCgroup []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case v1 == "" && hasController(parts[1], "memory"):
			v1 = parts[2]
		}
	}
	return v2, v1
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
