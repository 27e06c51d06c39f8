package sync

import (
	"time"

	"github.com/scimflare/scimflare/mapping"
)

// Settings are the parts of the configuration file the reconciler acts on:
// the accounts and mapping table, the sync keys and identity.email_from.
// The wiring builds them from the file it loaded (already validated) and
// hands a new value to Reload; the reconciler never reads the file, its
// server or state keys. Field names follow the file's sections, so
// cfg.Sync.Guards.MaxRemovals is sync.guards.max_removals.
type Settings struct {
	Accounts []mapping.Account
	Mappings []mapping.Mapping
	Sync     SyncKeys
	Identity Identity
}

// SyncKeys are the keys under sync: in the configuration file.
type SyncKeys struct {
	Schedule         string // a cron spec or @every
	Debounce         time.Duration
	Mode             string // "enforce" or ModePlanOnly
	Unmanaged        string // "report" or UnmanagedRemove
	MaxGrantDuration time.Duration
	Guards           Guards
	Protected        []string // emails scimflare never touches
}

// Guards bound the removals of a run and of a rolling window
// (sync.guards).
type Guards struct {
	MaxRemovals       int
	MaxRemovalPercent float64
	// MinRemovals: the percent rule applies only to a run removing more
	// than this many grants.
	MinRemovals          int
	Window               time.Duration
	MaxRemovalsPerWindow int
}

// Identity is identity.email_from: which SCIM attribute is the Cloudflare
// email ("userName" or "primaryEmail").
type Identity struct {
	EmailFrom string
}

// The values of sync.mode and sync.unmanaged the reconciler acts on, as
// the configuration file spells them.
const (
	ModePlanOnly    = "plan-only"
	UnmanagedRemove = "remove"
)

// Table is the mapping table of these settings.
func (s *Settings) Table() mapping.Table {
	return mapping.Table{Accounts: s.Accounts, Mappings: s.Mappings}
}
