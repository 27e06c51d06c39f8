package backends_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/backends"
	"github.com/scimflare/scimflare/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var now = time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)

func TestOpenEachBackend(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	// An offline command never migrates: a fresh database is refused…
	if _, err := backends.Open(ctx, backends.Config{Backend: backends.Postgres, DSN: dsn}, backends.Command); !errors.Is(err, store.ErrSchemaVersion) {
		t.Fatalf("Command on an unmigrated database: %v, want ErrSchemaVersion", err)
	}
	for _, c := range []backends.Config{
		{Path: filepath.Join(t.TempDir(), "state.db")},
		{Backend: backends.Postgres, DSN: dsn},
	} {
		for _, use := range []backends.Use{backends.Serve, backends.Command} { // …until serve migrated it
			b, err := backends.Open(ctx, c, use)
			if err != nil {
				t.Fatalf("Open(%q, use %d): %v", c.Backend, use, err)
			}
			if _, err := b.CreateUser(now, store.User{UserName: fmt.Sprintf("u%d", use)}); err != nil {
				t.Fatalf("%s: CreateUser: %v", b.Location(), err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]backends.Config{
		"unknown backend":   {Backend: "etcd", Path: "x"},
		"bolt without path": {Backend: backends.Bolt},
		"postgres, no DSN":  {Backend: backends.Postgres},
	} {
		if _, err := backends.Open(ctx, c, backends.Serve); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
