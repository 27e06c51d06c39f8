package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeResult(t *testing.T, name string, r Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func result(opsPerSec float64, errs int) Result {
	ph := Summary{Name: "import", Ops: 100, Seconds: 100 / opsPerSec, OpsPerSec: opsPerSec, P99ms: 3,
		Kinds: []*Summary{{Name: "create_user", Ops: 100, OpsPerSec: opsPerSec, P99ms: 3}}}
	if errs > 0 {
		ph.ErrorCount = errs
		ph.Errors = map[string]int{"500": errs}
	}
	return Result{Target: "x", Phases: []Summary{ph}}
}

func TestReportGates(t *testing.T) {
	ceiling := writeResult(t, "ceiling.json", result(1000, 0))
	for _, tc := range []struct {
		name  string
		sf    Result
		flags []string
		code  int
		want  string
	}{
		{"fast enough", result(400, 0), []string{"-min-ops", "import=100", "-min-ratio", "import=0.1"}, 0, "0.400"},
		{"below ops floor", result(50, 0), []string{"-min-ops", "import=100"}, 1, "below the floor of 100"},
		{"tenfold slower than ceiling", result(90, 0), []string{"-min-ratio", "import=0.1"}, 1, "ratio 0.090"},
		{"errors fail without floors", result(400, 2), nil, 1, "2 failed requests (500×2)"},
		{"missing phase", result(400, 0), []string{"-min-ops", "lookup=1"}, 1, "phase lookup did not run"},
	} {
		sf := writeResult(t, "sf.json", tc.sf)
		var out, errOut bytes.Buffer
		args := append([]string{"report"}, tc.flags...)
		args = append(args, "scimflare="+sf, "ceiling="+ceiling)
		code := run(args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d (want %d), output:\n%s%s", tc.name, code, tc.code, out.String(), errOut.String())
		}
	}
}

func TestReportRejectsBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"report"},
		{"report", "noequals"},
		{"report", "a=" + bad},
		{"report", "a=/does/not/exist"},
		{"report", "-min-ops", "import", "a=" + bad},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}
