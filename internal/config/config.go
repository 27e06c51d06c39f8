package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/sync/identity"
)

// Config is the whole scimflare configuration file.
type Config struct {
	Server     Server            `yaml:"server"`
	Admin      Admin             `yaml:"admin"`
	State      State             `yaml:"state"`
	SCIM       SCIM              `yaml:"scim"`
	Identity   Identity          `yaml:"identity"`
	Cloudflare Cloudflare        `yaml:"cloudflare"`
	Sync       Sync              `yaml:"sync"`
	Log        Log               `yaml:"log"`
	Accounts   []mapping.Account `yaml:"accounts"`
	Mappings   []mapping.Mapping `yaml:"mappings"`

	// Path is the file the config was read from; Warnings are the
	// non-fatal problems found in it.
	Path     string    `yaml:"-"`
	Warnings []Problem `yaml:"-"`
	// written maps each path made absolute by Load to its spelling in the
	// file.
	written map[string]string
}

type Server struct {
	Listen       string `yaml:"listen"`
	SCIMBasePath string `yaml:"scim_base_path"`
	TLSCertFile  string `yaml:"tls_cert_file"`
	TLSKeyFile   string `yaml:"tls_key_file"`
}

type Admin struct {
	Socket string `yaml:"socket"`
}

type State struct {
	// Backend is StateBolt (one machine) or StatePostgres (several
	// replicas, one reconciler).
	Backend string `yaml:"backend"`
	Path    string `yaml:"path"`
	// DSNEnv / DSNFile name where the PostgreSQL connection string is: a
	// secret, never in the file itself. The file wins when both are set.
	DSNEnv  string `yaml:"dsn_env"`
	DSNFile string `yaml:"dsn_file"`
	// Lease is how long the reconciler leader's lease lasts (postgres).
	Lease time.Duration `yaml:"lease"`
}

// State backends.
const (
	StateBolt     = "bolt"
	StatePostgres = "postgres"
)

type SCIM struct {
	TokenEnv     string `yaml:"token_env"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
	OIDC         OIDC   `yaml:"oidc"`
}

type OIDC struct {
	Issuer         string            `yaml:"issuer"`
	Audience       string            `yaml:"audience"`
	AllowedClients []string          `yaml:"allowed_clients"`
	RequiredClaims map[string]string `yaml:"required_claims"`
}

type Identity struct {
	EmailFrom string `yaml:"email_from"`
}

type Cloudflare struct {
	APITokenEnv   string `yaml:"api_token_env"`
	APITokenFile  string `yaml:"api_token_file"`
	BaseURL       string `yaml:"base_url"`
	RequestBudget int    `yaml:"request_budget"`
}

type Sync struct {
	Schedule         string        `yaml:"schedule"`
	Debounce         time.Duration `yaml:"debounce"`
	Mode             string        `yaml:"mode"`
	Unmanaged        string        `yaml:"unmanaged"`
	MaxGrantDuration time.Duration `yaml:"max_grant_duration"`
	Guards           Guards        `yaml:"guards"`
	Protected        []string      `yaml:"protected"`
}

// Log says how much `serve` logs and in which format.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // auto | json | text
	// AccessLog logs one line per SCIM request (never the token).
	AccessLog bool `yaml:"access_log"`
}

// Log formats.
const (
	LogFormatAuto = "auto"
	LogFormatJSON = "json"
	LogFormatText = "text"
)

type Guards struct {
	MaxRemovals       int     `yaml:"max_removals"`
	MaxRemovalPercent float64 `yaml:"max_removal_percent"`
	// MinRemovals: the percent rule applies only to a run removing more
	// than this many grants, so one or two leavers in a small account are
	// never held back by it.
	MinRemovals int `yaml:"min_removals"`
	// Window and MaxRemovalsPerWindow bound an account's removals over a
	// rolling window, whatever the runs they were split over: a mass
	// removal trickled in slower than the debounce trips it.
	Window               time.Duration `yaml:"window"`
	MaxRemovalsPerWindow int           `yaml:"max_removals_per_window"`
}

// Sync modes and unmanaged policies.
const (
	ModeEnforce       = "enforce"
	ModePlanOnly      = "plan-only"
	UnmanagedReport   = "report"
	UnmanagedRemove   = "remove"
	EmailFromUserName = "userName"
	EmailFromPrimary  = "primaryEmail"
)

// Default returns the configuration every unset key falls back to.
func Default() Config {
	return Config{
		Server:   Server{Listen: "127.0.0.1:8080", SCIMBasePath: "/scim/v2"},
		Admin:    Admin{Socket: "./scimflare.sock"},
		State:    State{Backend: StateBolt, Path: "./scimflare.db", DSNEnv: "SCIMFLARE_POSTGRES_DSN", Lease: 15 * time.Second},
		SCIM:     SCIM{TokenEnv: "SCIMFLARE_SCIM_TOKEN", MaxBodyBytes: 1 << 20},
		Identity: Identity{EmailFrom: EmailFromUserName},
		Cloudflare: Cloudflare{
			// scimflare's own variable: the CLOUDFLARE_API_TOKEN that
			// Wrangler and Terraform users have exported must never make a
			// first start write to a real account.
			APITokenEnv:   DefaultCloudflareTokenEnv,
			BaseURL:       "https://api.cloudflare.com/client/v4",
			RequestBudget: 600,
		},
		Log: Log{Level: "info", Format: LogFormatAuto},
		Sync: Sync{
			Schedule:         "@every 5m",
			Debounce:         10 * time.Second,
			Mode:             ModeEnforce,
			Unmanaged:        UnmanagedReport,
			MaxGrantDuration: 24 * time.Hour,
			Guards:           Guards{MaxRemovals: 25, MaxRemovalPercent: 20, MinRemovals: 3, Window: time.Hour, MaxRemovalsPerWindow: 100},
		},
	}
}

// DefaultCloudflareTokenEnv is the environment variable the Cloudflare API
// token is read from unless cloudflare.api_token_env names another.
const DefaultCloudflareTokenEnv = "SCIMFLARE_CLOUDFLARE_API_TOKEN"

// Problem is one finding about a config file, positioned at a line.
type Problem struct {
	File    string
	Line    int
	Path    string
	Message string
	Warning bool
}

func (p Problem) String() string {
	// Values quoted back from the file may hold line breaks; a problem is
	// always one line that starts with the file name.
	msg := strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`).Replace(p.Message)
	p.Message = msg
	where := p.File
	if p.Line > 0 {
		where = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.Path == "" {
		return where + ": " + p.Message
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Path, p.Message)
}

// Error lists every error-level problem of a config file.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads, strictly decodes and validates a config file. On failure the
// error is an *Error listing every problem, or a one-sentence read error.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config file %s: %w", path, unwrapPathError(err))
	}
	return parse(path, raw, true)
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse decodes and validates config bytes; path is only used in messages,
// and relative paths in the config stay as they are.
func Parse(path string, raw []byte) (*Config, error) { return parse(path, raw, false) }

// parse decodes and validates; with resolve, relative paths in the config
// are made absolute against the folder of the config file, so a command
// run from another folder finds the same state and socket as the daemon.
func parse(path string, raw []byte, resolve bool) (*Config, error) {
	cfg := Default()
	cfg.Path = path
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, &Error{Problems: []Problem{{File: path, Message: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	d := &decoder{lines: map[string]int{}}
	if len(root.Content) > 0 {
		if err := d.decode(&root, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
			var de *decodeError
			if errors.As(err, &de) {
				return nil, &Error{Problems: []Problem{{File: path, Line: de.Line, Path: de.Path, Message: de.Msg}}}
			}
			return nil, err
		}
	}
	if resolve {
		if err := cfg.resolvePaths(); err != nil {
			return nil, err
		}
	}
	problems := cfg.validate()
	table := mapping.Table{Accounts: cfg.Accounts, Mappings: cfg.Mappings}
	for _, mp := range mapping.Validate(table, cfg.Sync.MaxGrantDuration) {
		problems = append(problems, Problem{Path: mp.Path, Message: mp.Message, Warning: mp.Warning})
	}
	var errs []Problem
	for i := range problems {
		problems[i].File = path
		problems[i].Line = d.lineOf(problems[i].Path)
		if problems[i].Warning {
			cfg.Warnings = append(cfg.Warnings, problems[i])
		} else {
			errs = append(errs, problems[i])
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, &Error{Problems: errs}
	}
	return &cfg, nil
}

// lineOf finds the line of path, or of its nearest recorded ancestor.
func (d *decoder) lineOf(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			break
		}
		path = path[:cut]
	}
	return 0
}

// validate checks the keys outside accounts and mappings.
func (c *Config) validate() []Problem {
	var ps []Problem
	bad := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "%q is not a host:port address", c.Server.Listen)
	}
	if !strings.HasPrefix(c.Server.SCIMBasePath, "/") {
		bad("server.scim_base_path", "%q must start with /", c.Server.SCIMBasePath)
	}
	if (c.Server.TLSCertFile == "") != (c.Server.TLSKeyFile == "") {
		bad("server.tls_cert_file", "tls_cert_file and tls_key_file must be set together")
	}
	if c.Admin.Socket == "" {
		bad("admin.socket", "must name a unix socket path")
	}
	switch c.State.Backend {
	case StateBolt:
		if c.State.Path == "" {
			bad("state.path", "must name the state file")
		}
	case StatePostgres:
		if c.State.DSNEnv == "" && c.State.DSNFile == "" {
			bad("state.dsn_env", "the postgres backend needs state.dsn_env or state.dsn_file (the DSN is a secret: never in this file)")
		}
		if c.State.Lease < 3*time.Second {
			bad("state.lease", "must be at least 3s, got %s", c.State.Lease)
		}
	default:
		bad("state.backend", "%q must be %s or %s", c.State.Backend, StateBolt, StatePostgres)
	}
	ps = append(ps, c.socketProblems()...)
	if c.SCIM.MaxBodyBytes < 1024 {
		bad("scim.max_body_bytes", "must be at least 1024, got %d", c.SCIM.MaxBodyBytes)
	}
	if c.SCIM.OIDC.Issuer != "" && c.SCIM.OIDC.Audience == "" {
		bad("scim.oidc.audience", "is required when scim.oidc.issuer is set")
	}
	if c.SCIM.OIDC.Issuer != "" && !scim.SecureURL(c.SCIM.OIDC.Issuer) {
		bad("scim.oidc.issuer", "%q must be an https URL (http only to localhost or a loopback IP)", c.SCIM.OIDC.Issuer)
	}
	switch c.Identity.EmailFrom {
	case EmailFromUserName, EmailFromPrimary:
	default:
		bad("identity.email_from", "%q must be userName or primaryEmail", c.Identity.EmailFrom)
	}
	if msg := httpURLProblem(c.Cloudflare.BaseURL); msg != "" {
		bad("cloudflare.base_url", "%q %s", c.Cloudflare.BaseURL, msg)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case LogFormatAuto, LogFormatJSON, LogFormatText:
	default:
		bad("log.format", "%q must be auto, json or text", c.Log.Format)
	}
	if c.Cloudflare.RequestBudget < 1 || c.Cloudflare.RequestBudget > 1200 {
		bad("cloudflare.request_budget", "must be between 1 and 1200 (Cloudflare allows 1200 per 5 minutes in all), got %d", c.Cloudflare.RequestBudget)
	}
	if _, err := cron.ParseStandard(c.Sync.Schedule); err != nil {
		bad("sync.schedule", "%q is not a cron schedule: %v", c.Sync.Schedule, err)
	}
	if c.Sync.Debounce < 0 || c.Sync.Debounce > 10*time.Minute {
		bad("sync.debounce", "must be between 0s and 10m, got %s", c.Sync.Debounce)
	}
	switch c.Sync.Mode {
	case ModeEnforce, ModePlanOnly:
	default:
		bad("sync.mode", "%q must be enforce or plan-only", c.Sync.Mode)
	}
	switch c.Sync.Unmanaged {
	case UnmanagedReport, UnmanagedRemove:
	default:
		bad("sync.unmanaged", "%q must be report or remove", c.Sync.Unmanaged)
	}
	if c.Sync.MaxGrantDuration <= 0 {
		bad("sync.max_grant_duration", "must be positive")
	}
	if c.Sync.Guards.MaxRemovals < 0 {
		bad("sync.guards.max_removals", "must not be negative")
	}
	if c.Sync.Guards.MaxRemovalPercent < 0 || c.Sync.Guards.MaxRemovalPercent > 100 {
		bad("sync.guards.max_removal_percent", "must be between 0 and 100")
	}
	if c.Sync.Guards.MinRemovals < 0 {
		bad("sync.guards.min_removals", "must not be negative")
	}
	if c.Sync.Guards.Window <= 0 {
		bad("sync.guards.window", "must be positive (e.g. 1h)")
	}
	if c.Sync.Guards.MaxRemovalsPerWindow < 0 {
		bad("sync.guards.max_removals_per_window", "must not be negative")
	}
	for i, e := range c.Sync.Protected {
		if _, err := identity.Email(e); err != nil {
			bad(fmt.Sprintf("sync.protected[%d]", i), "%q: %v (protected emails are compared by the same rule as users' emails)", e, err)
		}
	}
	return ps
}

// PlanOnly reports whether scimflare must not write to Cloudflare: by
// configuration, or because no API token is available.
func (c *Config) PlanOnly(token string) bool {
	return c.Sync.Mode == ModePlanOnly || token == ""
}

// Table is the mapping table of this config.
func (c *Config) Table() mapping.Table {
	return mapping.Table{Accounts: c.Accounts, Mappings: c.Mappings}
}

// httpURLProblem says what keeps raw from being the absolute http(s) URL
// the Cloudflare client needs, parsed exactly as the client parses it
// (url.Parse): "" when nothing does. A prefix test accepted
// http://127.0.0.1:PORT/client/v4, which serve then refused.
func httpURLProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "is not a URL: " + err.Error()
	case u.Scheme != "https" && u.Scheme != "http":
		return "must start with https:// (or http:// for a local fake)"
	case u.Host == "":
		return "names no host"
	}
	return ""
}
