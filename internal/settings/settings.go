// Package settings hands each subsystem its part of the configuration file,
// so that none of them imports the whole config (internal/config): the
// reconciler gets sync.Settings, built here from the file the daemon or a
// command loaded and validated.
package settings

import (
	"github.com/scimflare/scimflare/internal/config"
	syncer "github.com/scimflare/scimflare/sync"
)

// Reconciler is the reconciler's part of cfg: accounts, mappings, the sync
// keys and identity.email_from. Each call makes a new value, which Reload
// takes as a new configuration.
func Reconciler(cfg *config.Config) *syncer.Settings {
	s := cfg.Sync
	return &syncer.Settings{
		Accounts: cfg.Accounts,
		Mappings: cfg.Mappings,
		Sync: syncer.SyncKeys{
			Schedule:         s.Schedule,
			Debounce:         s.Debounce,
			Mode:             s.Mode,
			Unmanaged:        s.Unmanaged,
			MaxGrantDuration: s.MaxGrantDuration,
			Guards:           syncer.Guards(s.Guards),
			Protected:        s.Protected,
		},
		Identity: syncer.Identity(cfg.Identity),
	}
}
