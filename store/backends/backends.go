// Package backends opens the state backend a configuration names, so the
// daemon, the CLI and `scimflare migrate` choose between the bbolt file and
// PostgreSQL in one place.
package backends

import (
	"context"
	"fmt"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/postgres"
)

// Backend names.
const (
	Bolt     = "bolt"
	Postgres = "postgres"
)

// Config says where the state is.
type Config struct {
	// Backend is Bolt ("" too) or Postgres.
	Backend string
	// Path is the bbolt state file (Bolt).
	Path string
	// DSN is the PostgreSQL connection string (Postgres), read by the
	// caller from the environment variable or file the configuration names.
	DSN string
	// LockTimeout is how long a bbolt Open waits for the file lock
	// (0: store.DefaultLockTimeout).
	LockTimeout time.Duration
}

// Use is what the opener does with the state.
type Use int

const (
	// Serve is the daemon: bbolt with group commit (concurrent writes
	// share commits, see BENCHMARKS.md), PostgreSQL migrated to this
	// version's schema.
	Serve Use = iota
	// Command is an offline CLI command: PostgreSQL's schema is checked,
	// never migrated (older replicas may still serve from it).
	Command
	// Migrate is either side of `scimflare migrate`: PostgreSQL migrated.
	Migrate
	// ReadOnly is a command that only looks: a bbolt file is opened
	// read-only (never created, stamped or written), PostgreSQL as for
	// Command.
	ReadOnly
)

// Open opens the backend c names for use.
func Open(ctx context.Context, c Config, use Use) (store.Backend, error) {
	switch c.Backend {
	case "", Bolt:
		if c.Path == "" {
			return nil, fmt.Errorf("state: the bbolt backend needs a path: %w", store.ErrInvalid)
		}
		if use == ReadOnly {
			return store.OpenReadOnly(c.Path)
		}
		opts := []store.Option{store.WithLockTimeout(c.LockTimeout)}
		if use == Serve {
			opts = append(opts, store.WithGroupCommit())
		}
		return store.Open(c.Path, opts...)
	case Postgres:
		if c.DSN == "" {
			return nil, fmt.Errorf("state: the postgres backend needs a DSN: %w", store.ErrInvalid)
		}
		var opts []postgres.Option
		if use == Command || use == ReadOnly {
			opts = append(opts, postgres.WithoutMigrations())
		}
		return postgres.Open(ctx, c.DSN, opts...)
	}
	return nil, fmt.Errorf("state: backend %q is neither %q nor %q: %w", c.Backend, Bolt, Postgres, store.ErrInvalid)
}
