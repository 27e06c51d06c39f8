package cloudflare_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The root cloudflare-go package pulls in every Cloudflare service: minutes
// of build and ~17 MB of binary. Nothing in the module may depend on it.
func TestModuleDoesNotImportCloudflareGoRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	// Our packages must load and be clean.
	deps, err := goListDeps(root, "./sync/cloudflare/...")
	if err != nil {
		t.Fatal(err)
	}
	checkDeps(t, "./sync/cloudflare/...", deps)
	// The whole module: a module that does not load is a failure, not a
	// reason to skip the check.
	deps, err = goListDeps(root, "./...")
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	checkDeps(t, "./...", deps)
}

func checkDeps(t *testing.T, pattern, deps string) {
	t.Helper()
	const forbidden = "github.com/cloudflare/cloudflare-go/v7"
	seen := false
	for line := range strings.SplitSeq(deps, "\n") {
		if line == forbidden {
			t.Errorf("%s depends on %s; import its sub-packages instead", pattern, forbidden)
		}
		if strings.HasPrefix(line, forbidden+"/") {
			seen = true
		}
	}
	if !seen {
		t.Errorf("no cloudflare-go sub-package among the dependencies of %s: the check is not looking at this module", pattern)
	}
}

func goListDeps(dir string, pkgs ...string) (string, error) {
	// -e: a package that does not compile yet must not hide the check.
	cmd := exec.Command("go", append([]string{"list", "-e", "-deps"}, pkgs...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -deps %s: %w: %s", strings.Join(pkgs, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
