package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/scimflare/scimflare/internal/config"

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
	// A backup moved into place over the admin socket or the config would
	// replace them; over the state file, it would replace the live state.
	cfg := env.Config
	for _, k := range [][2]string{
		{cfg.Admin.Socket, "the admin socket (admin.socket in " + cfg.Path + ")"},
		{cfg.State.Path, "the live state file (state.path in " + cfg.Path + ")"},
		{cfg.Path, "the config file " + cfg.Path},
	} {
		if config.SameFile(*dest, k[0]) {
			return usagef("backup: --out %s is %s; write the backup to a file of its own", *dest, k[1])
		}
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
	fmt.Fprintf(out, "backed up %s to %s (%d bytes, mode 0600); bbolt consistency check passed\n", env.Store.Location(), *dest, n)
	return nil
}
