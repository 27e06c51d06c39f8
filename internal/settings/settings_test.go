package settings

import (
	"reflect"
	"testing"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/mapping"
	syncer "github.com/scimflare/scimflare/sync"
)

// TestReconcilerGetsEveryKeyItActsOn: every field of sync.Settings is
// filled from the file, so a key added to the reconciler's settings and
// forgotten here (the reconciler would then run with its zero value: no
// guard, no protected email) fails this test.
func TestReconcilerGetsEveryKeyItActsOn(t *testing.T) {
	cfg := config.Default()
	cfg.Accounts = []mapping.Account{{Name: "prod", ID: "0123"}}
	cfg.Mappings = []mapping.Mapping{{Group: "cf-oncall", Account: "prod", Roles: []string{"Administrator"}}}
	cfg.Sync.Mode = config.ModePlanOnly
	cfg.Sync.Unmanaged = config.UnmanagedRemove
	cfg.Sync.Protected = []string{"breakglass@example.com"}
	cfg.Sync.Guards.MinRemovals = 7
	cfg.Identity.EmailFrom = config.EmailFromPrimary
	got := Reconciler(&cfg)
	var zero []string
	walk(reflect.ValueOf(*got), "Settings", func(path string) { zero = append(zero, path) })
	if len(zero) > 0 {
		t.Fatalf("left at their zero value: %v", zero)
	}
	if got.Sync.Guards.MinRemovals != 7 || got.Sync.Debounce != 10*time.Second || got.Sync.Protected[0] != "breakglass@example.com" ||
		got.Identity.EmailFrom != "primaryEmail" || got.Table().Mappings[0].Group != "cf-oncall" {
		t.Errorf("settings differ from the file: %+v", got)
	}
	// The file's spellings are the reconciler's.
	if got.Sync.Mode != syncer.ModePlanOnly || got.Sync.Unmanaged != syncer.UnmanagedRemove {
		t.Errorf("sync.mode %q / sync.unmanaged %q do not match the reconciler's %q / %q",
			got.Sync.Mode, got.Sync.Unmanaged, syncer.ModePlanOnly, syncer.UnmanagedRemove)
	}
	if a, b := Reconciler(&cfg), Reconciler(&cfg); a == b {
		t.Error("two calls share one value: Reload would not see a new configuration")
	}
}

func walk(v reflect.Value, path string, zero func(string)) {
	if v.Kind() == reflect.Struct {
		for i := range v.NumField() {
			walk(v.Field(i), path+"."+v.Type().Field(i).Name, zero)
		}
		return
	}
	if v.IsZero() {
		zero(path)
	}
}
