package cli

import (
	"context"
	"encoding/json"
	"io"

	syncer "github.com/scimflare/scimflare/sync"
)

func init() {
	register("explain", "explain --config FILE --user EMAIL [--live] [--json]", runExplain)
}

// runExplain prints why a person has, or lacks, each Cloudflare role. The
// JSON shape is sync.Explanation's.
func runExplain(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("explain", errOut)
	user := fs.String("user", "", "email")
	live := fs.Bool("live", false, "list the accounts' members now instead of reading the member cache of the last scan")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *user == "" {
		return usagef("explain: --user EMAIL is required")
	}
	x, err := env.Reconciler.Explain(ctx, *user, syncer.ExplainOptions{Live: *live})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(x)
	}
	return x.WriteText(out)
}
