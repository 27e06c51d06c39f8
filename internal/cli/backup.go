package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/scimflare/scimflare/store"
)

func init() {
	register("backup", "backup --out FILE", runBackup)
}

func runBackup(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("backup", errOut)
	dest := fs.String("out", "", "file to write the copy to")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dest == "" {
		return usagef("backup: --out FILE is required")
	}
	if env.Daemon && !filepath.IsAbs(*dest) {
		// The daemon's working directory is not the caller's.
		return usagef("backup: --out %q must be an absolute path when a daemon writes it", *dest)
	}
	n, err := env.Store.BackupFile(*dest)
	if err != nil {
		return err
	}
	// A backup nobody has opened is a hope, not a backup.
	if err := store.CheckFile(*dest, 0); err != nil {
		return fmt.Errorf("the backup at %s was written but does not check out: %w", *dest, err)
	}
	fmt.Fprintf(out, "backed up %s to %s (%d bytes, mode 0600); bbolt consistency check passed\n", env.Store.Path(), *dest, n)
	return nil
}
