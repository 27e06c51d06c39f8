// Package arch holds no code: its test reads the module's imports and
// fails when a dependency points the wrong way (STYLE.md: data flows one
// way, SCIM -> store -> desired state -> plan -> apply -> audit).
package arch

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/scimflare/scimflare"

// knownDebt are arrows that point the wrong way today and are to be
// removed. It is empty: the reconciler takes its own settings
// (sync.Settings) and each subsystem registers its own collectors. No arrow
// may join this list.
var knownDebt = map[string]bool{}

// leaves are internal packages that import nothing of the module: inner
// packages may use them as they use the standard library.
var leaves = map[string]bool{"internal/terminal": true}

func TestDependenciesPointOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module+"/") {
				imports[pkg] = append(imports[pkg], strings.TrimPrefix(imp, module+"/"))
			}
		}
	}
	if len(imports) < 10 {
		t.Fatalf("read the imports of %d packages: the check is not looking at this module", len(imports))
	}
	top := func(p string) string { s, _, _ := strings.Cut(p, "/"); return s }
	inner := map[string]bool{"scim": true, "mapping": true, "sync": true, "store": true}
	for leaf := range leaves {
		if len(imports[leaf]) != 0 {
			t.Errorf("%s is listed as a leaf but imports %v", leaf, imports[leaf])
		}
	}
	for pkg, deps := range imports {
		if strings.HasSuffix(pkg, "_test") {
			continue
		}
		for _, dep := range deps {
			arrow := pkg + " -> " + dep
			switch {
			case knownDebt[arrow]:
			case inner[top(pkg)] && top(dep) == "internal" && !leaves[dep]:
				t.Errorf("%s: an inner package imports the wiring layer", arrow)
			case top(pkg) == "scim" && top(dep) == "sync", top(pkg) == "sync" && top(dep) == "scim":
				t.Errorf("%s: SCIM and the reconciler know nothing of each other", arrow)
			case (top(pkg) == "store" || top(pkg) == "mapping") && top(dep) != top(pkg):
				t.Errorf("%s: %s imports nothing of the module but itself", arrow, top(pkg))
			case inner[top(pkg)] && (top(dep) == "cmd" || top(dep) == "bench"):
				t.Errorf("%s: an inner package imports a program", arrow)
			}
		}
	}
	for arrow := range knownDebt {
		p, d, _ := strings.Cut(arrow, " -> ")
		found := false
		for _, dep := range imports[p] {
			found = found || dep == d
		}
		if !found {
			t.Errorf("%s is gone: remove it from knownDebt", arrow)
		}
	}
}

// TestNoProgramLinksTesting: no binary of the module (cmd/, bench/) links
// the testing package, which registers test flags and drags test-only
// code paths into what operators run.
func TestNoProgramLinksTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{range .Deps}} {{.}}{{end}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	programs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		programs++
		for _, dep := range f[1:] {
			if dep == "testing" || strings.HasPrefix(dep, "testing/") {
				t.Errorf("%s links %s", strings.TrimPrefix(f[0], module+"/"), dep)
			}
		}
	}
	if programs < 4 {
		t.Fatalf("found %d programs: the check is not looking at this module's cmd/ and bench/", programs)
	}
}
