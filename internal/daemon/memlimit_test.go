package daemon

import (
	"math"
	"testing"
	"testing/fstest"
)

func TestContainerMemory(t *testing.T) {
	const mib = int64(1) << 20
	files := func(kv ...string) fstest.MapFS {
		m := fstest.MapFS{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
		}
		return m
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want int64
	}{
		{"v2 in a container (namespace: its cgroup at the root)", files(
			"proc/self/cgroup", "0::/\n",
			"sys/fs/cgroup/memory.max", "268435456\n"), 256 * mib},
		{"v2 without a namespace: the cgroup's own directory", files(
			"proc/self/cgroup", "0::/system.slice/scimflare.service\n",
			"sys/fs/cgroup/system.slice/scimflare.service/memory.max", "536870912\n",
			"sys/fs/cgroup/memory.max", "max\n"), 512 * mib},
		{"v2 unlimited", files(
			"proc/self/cgroup", "0::/\n",
			"sys/fs/cgroup/memory.max", "max\n"), 0},
		{"v1 (hybrid: the unified line has no memory controller)", files(
			"proc/self/cgroup", "4:memory:/kubepods/pod1/c1\n0::/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n"), 1024 * mib},
		{"v1 own directory, controllers listed together", files(
			"proc/self/cgroup", "5:cpuacct,memory:/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "134217728"), 128 * mib},
		{"v1 unlimited (2^63-1 rounded to a page)", files(
			"proc/self/cgroup", "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n"), 0},
		{"no cgroup file", files(), 0},
		{"garbage", files(
			"proc/self/cgroup", "0::/\n",
			"sys/fs/cgroup/memory.max", "lots\n"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := containerMemory(tc.fsys); got != tc.want {
				t.Fatalf("containerMemory = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestChooseMemoryLimit(t *testing.T) {
	const mib = int64(1) << 20
	tests := []struct {
		name       string
		envSet     bool
		current    int64
		container  int64
		want       int64
		wantString string
	}{
		{"container limit: 80% of it", false, math.MaxInt64, 256 * mib, 256 * mib * 4 / 5, "204 MiB (80% of the container's 256 MiB)"},
		{"GOMEMLIMIT wins over the container", true, 300 * mib, 256 * mib, 300 * mib, "300 MiB (GOMEMLIMIT)"},
		{"GOMEMLIMIT=off", true, math.MaxInt64, 256 * mib, 0, "none"},
		{"neither", false, math.MaxInt64, 0, 0, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := chooseMemoryLimit(tc.envSet, tc.current, tc.container)
			if got.bytes != tc.want || got.String() != tc.wantString {
				t.Fatalf("chooseMemoryLimit = %d %q, want %d %q", got.bytes, got, tc.want, tc.wantString)
			}
		})
	}
}
