package main

// The command tree: cobra (github.com/spf13/cobra, as kubectl, Helm and dex
// use) owns names, descriptions, examples, help, `--version` and shell
// completion. Flags are declared here for help and completion only; each
// command parses its own with internal/cli's parser (DisableFlagParsing, as
// Helm does for plugins), because the same parser runs inside the daemon
// for commands that arrive over the admin socket, and it reads --config
// and flags wherever users type them (`token revoke NAME --config F`).

import (
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scimflare/scimflare/internal/cli"
)

// flagDoc is one flag as help and completion show it.
type flagDoc struct {
	name, value, usage string
	file               bool // complete file names
}

type commandDoc struct {
	name, use, short, long, example string
	flags                           []flagDoc
	// words are the subcommands completed as the first argument.
	words []string
}

var configFlagDoc = flagDoc{"config", "FILE", "the config file (YAML); may stand anywhere on the line", true}

var commandDocs = []commandDoc{
	{
		name:  "serve",
		use:   "serve (--config FILE | --dev)",
		short: "Run the daemon: SCIM API, health, metrics, scheduler, reconciler, expiry timer, admin socket",
		long: `serve runs everything. The IdP pushes users and groups to the SCIM API; the
reconciler applies what the mapping table says to Cloudflare on
sync.schedule, sync.debounce after every SCIM change, and when a time-bound
grant ends. Without a Cloudflare token in cloudflare.api_token_env
(default SCIMFLARE_CLOUDFLARE_API_TOKEN) or api_token_file it only plans.

--dev runs the whole loop on a throw-away state against an in-process fake
Cloudflare (config.example.yaml's accounts, Cloudflare's role names) and
prints the curl lines to try; nothing reaches a real Cloudflare account.`,
		example: `  scimflare serve --dev
  SCIMFLARE_CLOUDFLARE_API_TOKEN=... scimflare serve --config /etc/scimflare/config.yaml`,
		flags: []flagDoc{configFlagDoc, {"dev", "", "throw-away state, in-process fake Cloudflare, a generated SCIM token", false}},
	},
	{
		name:  "validate",
		use:   "validate --config FILE [--online]",
		short: "Check the config strictly and lint it against the state",
		long: `validate decodes the config strictly (unknown keys, wrong types, bad
durations and URLs are errors naming file, line and key), checks the
mapping table, and warns about legal but risky settings. --online also
resolves every role, permission group and resource group name against
Cloudflare. Exit 1 with every error listed, 0 with warnings. It never
creates a state file.`,
		example: `  scimflare validate --config config.yaml
  scimflare validate --config config.yaml --online`,
		flags: []flagDoc{configFlagDoc, {"online", "", "also resolve every name against Cloudflare", false}},
	},
	{
		name:  "plan",
		use:   "plan --config FILE [--json] [--detailed-exitcode]",
		short: "Show the changes a reconcile would make now; changes nothing",
		long: `plan reads the state and Cloudflare (or the member list of the last full
scan without a token), and prints the changes per account: add member,
change roles, remove member, expire grant, guard trips, drift.`,
		example: `  scimflare plan --config config.yaml
  scimflare plan --config config.yaml --json | jq '.accounts[].changes[]'
  scimflare plan --config config.yaml --detailed-exitcode   # 0 none, 2 changes, 1 error`,
		flags: []flagDoc{configFlagDoc, {"json", "", "print one JSON object", false}, {"detailed-exitcode", "", "exit 2 when there are changes", false}},
	},
	{
		name:  "apply",
		use:   "apply --config FILE [--force]",
		short: "Run one reconcile now and print what it did",
		long: `apply runs one full reconcile now. It exits 0 when the run completed (even
with nothing to do), 1 when it aborted. --force overrides a tripped removal
guard once; the override is audited.`,
		example: `  scimflare apply --config config.yaml
  scimflare apply --config config.yaml --force`,
		flags: []flagDoc{configFlagDoc, {"force", "", "override a tripped removal guard once (audited)", false}},
	},
	{
		name:  "grant",
		use:   "grant --config FILE --user EMAIL --account NAME (--role R | --mapping G) --for DURATION --reason TEXT",
		short: "Give a temporary grant outside the IdP; removed at expiry",
		long: `grant gives one user a role (or a mapping's grants) on one account for a
bounded time (at most sync.max_grant_duration). It is applied at once and
removed when it ends; both are audited with the reason.`,
		example: `  scimflare grant --config config.yaml --user alice@example.com --account prod \
    --role Administrator --for 2h --reason "INC-1234 database failover"`,
		flags: []flagDoc{configFlagDoc, {"user", "EMAIL", "the user's email", false}, {"account", "NAME", "account name", false},
			{"role", "ROLE", "a Cloudflare role name", false}, {"mapping", "GROUP", "grant what this mapping's group grants", false},
			{"for", "DURATION", "how long, e.g. 2h", false}, {"reason", "TEXT", "why (audited)", false}},
	},
	{
		name:    "revoke",
		use:     "revoke --config FILE --grant ID",
		short:   "End a temporary grant now",
		long:    `revoke ends a temporary grant made with grant; the access goes at once.`,
		example: `  scimflare revoke --config config.yaml --grant 01J9Z…`,
		flags:   []flagDoc{configFlagDoc, {"grant", "ID", "the grant id grant printed", false}},
	},
	{
		name:  "status",
		use:   "status --config FILE",
		short: "Show the last and next reconcile, guards, expiries, budget and token state",
		long: `status shows the last reconcile and its outcome, the next run, tripped
guards and withheld removals, pending expiries (soonest first), the
Cloudflare request budget left and the token's state, and SCIM token ages.
It never creates a state file.`,
		example: `  scimflare status --config config.yaml`,
		flags:   []flagDoc{configFlagDoc},
	},
	{
		name:  "explain",
		use:   "explain --config FILE --user EMAIL [--live] [--json]",
		short: "Why a user has (or should have) each Cloudflare role",
		long: `explain shows, per account, every role the user holds in Cloudflare and
every role they should hold, with the reasons: IdP group (nesting path) ->
mapping -> role, temporary grant, adopted, drift. It writes nothing.`,
		example: `  scimflare explain --config config.yaml --user alice@example.com
  scimflare explain --config config.yaml --user alice@example.com --live --json`,
		flags: []flagDoc{configFlagDoc, {"user", "EMAIL", "the user's email", false},
			{"live", "", "list the accounts now instead of the last scan's member list", false}, {"json", "", "print JSON", false}},
	},
	{
		name:  "audit",
		use:   "audit --config FILE [--since T] [--until T] [--user EMAIL] [--account NAME] [--json] | audit verify",
		short: "Print the append-only, hash-chained audit trail, or verify it",
		long: `audit prints every change scimflare made or withheld, with actor, account,
email, before -> after and reason; privilege-raising records are flagged
(!). audit verify recomputes the hash chain and names the first altered,
removed or inserted record (exit 1 when broken).`,
		example: `  scimflare audit --config config.yaml --since 24h
  scimflare audit --config config.yaml --user alice@example.com --json
  scimflare audit verify --config config.yaml`,
		flags: []flagDoc{configFlagDoc, {"since", "T", "from this time (RFC 3339, date, or a duration ago such as 24h)", false},
			{"until", "T", "up to this time", false}, {"user", "EMAIL", "only this email", false},
			{"account", "NAME", "only this account (name or id)", false}, {"json", "", "print JSON", false}},
		words: []string{"verify"},
	},
	{
		name:  "report",
		use:   "report access --config FILE [--at T] [--csv]",
		short: "Access review: who holds what, from which source, since and until when",
		long: `report access lists user, account, role, source, granted at and expires at:
now, or rebuilt from the audit trail for a past time (--at).`,
		example: `  scimflare report access --config config.yaml --csv > review.csv
  scimflare report access --config config.yaml --at 2026-09-30T00:00:00Z`,
		flags: []flagDoc{configFlagDoc, {"at", "T", "as of this past time", false}, {"csv", "", "print CSV", false}},
		words: []string{"access"},
	},
	{
		name:  "reload",
		use:   "reload --config FILE",
		short: "Make the running daemon re-read its config (as SIGHUP does)",
		long: `reload asks the running daemon to re-read its own config file. A bad file
is rejected and audited, and the running config stays. When --config names
another file than the daemon's, the command says so.`,
		example: `  scimflare validate --config config.yaml && scimflare reload --config config.yaml`,
		flags:   []flagDoc{configFlagDoc},
	},
	{
		name:  "backup",
		use:   "backup --config FILE --out FILE",
		short: "Write a consistent hot copy of the state and check it",
		long: `backup copies the state while the daemon serves (one read transaction),
writes it with mode 0600 through a temp file and rename, and checks the
copy before reporting success. It never creates a state file.`,
		example: `  scimflare backup --config config.yaml --out /backups/scimflare-$(date +%F).db`,
		flags:   []flagDoc{configFlagDoc, {"out", "FILE", "where to write the copy", true}},
	},
	{
		name:  "token",
		use:   "token (create --name N [--ttl 90d|never] | list | revoke N) --config FILE",
		short: "Create, list and revoke SCIM bearer tokens",
		long: `token create prints a new SCIM bearer token once and stores only its
SHA-256 hash; the default lifetime is 90 days, --ttl never must be asked
for by name. token list shows names, ages and expiry; token revoke NAME
refuses the token from the next request on, whether or not a daemon runs.`,
		example: `  scimflare token create --name okta --ttl 90d --config config.yaml
  scimflare token list --config config.yaml
  scimflare token revoke okta --config config.yaml`,
		flags: []flagDoc{configFlagDoc, {"name", "N", "token name (create)", false}, {"ttl", "DURATION", "lifetime, e.g. 90d, or never (create)", false}},
		words: []string{"create", "list", "revoke"},
	},
	{
		name:  "migrate",
		use:   "migrate --from bolt --to postgres --config FILE [--bolt PATH]",
		short: "Copy a bbolt state file into an empty PostgreSQL database and verify the copy",
		long: `migrate copies everything a bbolt state file holds — users, groups,
memberships with their times, tokens, the ownership ledger, the member
cache, grants, the audit trail with its hashes, run status — into the empty
PostgreSQL database that state.dsn_env or state.dsn_file names, then
verifies the copy (counts, a fingerprint of every record, the audit chain).
It refuses a database that already holds state, and a state file a daemon
still serves from. --bolt names the file (default: state.path).`,
		example: `  SCIMFLARE_POSTGRES_DSN=postgres://scimflare@db/scimflare scimflare migrate --from bolt --to postgres --config config.yaml`,
		flags: []flagDoc{configFlagDoc, {"from", "bolt", "the backend to copy from", false}, {"to", "postgres", "the backend to copy to", false},
			{"bolt", "PATH", "the bbolt state file (default: state.path)", true}},
	},
	{
		name:  "healthcheck",
		use:   "healthcheck --config FILE",
		short: "Ask the daemon's /healthz (for container health checks without a shell)",
		long: `healthcheck requests /healthz on server.listen (loopback when it listens
on every address) and exits 0 on 200, else 1 with one sentence. It never
opens the state or the admin socket.`,
		example: `  scimflare healthcheck --config /etc/scimflare/config.yaml`,
		flags:   []flagDoc{configFlagDoc},
	},
	{
		name:  "version",
		use:   "version",
		short: "Print version, commit and Go version",
		example: `  scimflare version
  scimflare --version`,
	},
}

const usageTemplate = `usage: {{.UseLine}}{{if .HasAvailableSubCommands}}

commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasExample}}

examples:
{{.Example}}{{end}}{{if .HasAvailableLocalFlags}}

flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run "{{.CommandPath}} COMMAND --help" for a command's description and examples.{{end}}
`

// newRoot builds the command tree; run is what each command does with its
// arguments (flags unparsed), returning the exit status.
func newRoot(stdout, stderr io.Writer, run func(name string, args []string) int) *cobra.Command {
	root := &cobra.Command{
		Use:   "scimflare COMMAND --config FILE [flags]",
		Short: "Keep Cloudflare account access in line with your identity provider",
		Long: `scimflare keeps Cloudflare account access in line with your identity
provider. The IdP pushes users and groups over SCIM 2.0; a YAML mapping
table turns IdP groups into Cloudflare roles or policies per account; a
reconciler applies the difference, on a schedule, seconds after every SCIM
change, and when a time-bound grant ends.

Every command but serve talks to the running daemon over its admin socket
(admin.socket) or, when none runs, opens the state file itself.`,
		Example: `  scimflare serve --dev                         # try the whole loop against a fake Cloudflare
  scimflare validate --config config.yaml
  scimflare serve --config config.yaml
  scimflare completion bash > /etc/bash_completion.d/scimflare`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetUsageTemplate(usageTemplate)
	root.SetVersionTemplate(versionLine() + "\n")
	for _, d := range commandDocs {
		c := &cobra.Command{
			Use:                   d.use,
			Short:                 d.short,
			Long:                  d.long,
			Example:               d.example,
			DisableFlagParsing:    true,
			DisableFlagsInUseLine: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				if cli.IsHelp(args) {
					return cmd.Help()
				}
				return exitErr(run(d.name, args))
			},
		}
		for _, f := range d.flags {
			addFlag(c.Flags(), f)
			if f.file {
				_ = c.MarkFlagFilename(f.name, "yaml", "yml", "db")
			}
		}
		words := d.words
		c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 && len(words) > 0 {
				return words, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveDefault
		}
		root.AddCommand(c)
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

func addFlag(fs *pflag.FlagSet, f flagDoc) {
	if f.value == "" {
		fs.Bool(f.name, false, f.usage)
		return
	}
	fs.Var(&valueName{name: f.value}, f.name, f.usage)
}

// valueName is a string flag whose help names its value (FILE, EMAIL).
type valueName struct{ name, v string }

func (n *valueName) String() string     { return n.v }
func (n *valueName) Set(v string) error { n.v = v; return nil }
func (n *valueName) Type() string       { return n.name }

// exitCode carries a command's non-zero exit status through cobra.
type exitCode int

func (e exitCode) Error() string { return "exit " + strconv.Itoa(int(e)) }

func exitErr(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}
