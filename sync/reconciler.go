package sync

import (
	"context"
	"errors"
	"log/slog"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/plan"
)

// Cloudflare is the slice of the Cloudflare client the reconciler uses;
// *cloudflare.Client satisfies it.
type Cloudflare interface {
	ListMembersPages(ctx context.Context, accountID string, start func(total int), page func([]cloudflare.Member)) error
	CreateMember(ctx context.Context, accountID, email string, roles []string, policies []cloudflare.Policy) (cloudflare.Member, error)
	UpdateMember(ctx context.Context, accountID, memberID string, roles []string, policies []cloudflare.Policy) (cloudflare.Member, error)
	DeleteMember(ctx context.Context, accountID, memberID string) error
	GetMember(ctx context.Context, accountID, memberID string) (cloudflare.Member, error)
	ListRoles(ctx context.Context, accountID string) ([]cloudflare.Named, error)
	ListPermissionGroups(ctx context.Context, accountID string) ([]cloudflare.Named, error)
	ListResourceGroups(ctx context.Context, accountID string) ([]cloudflare.Named, error)
	BudgetLeft() int
}

// State is the store as the reconciler uses it; *store.BoltStore
// satisfies it.
type State interface {
	View(fn func(store.Reader) error) error
	store.SyncState
}

// Fencer is a State that can prove its writer still holds the term it
// writes under (several replicas, one leader): Commit is fenced already;
// Fence checks the term before a Cloudflare write that commits nothing
// first (a removal).
type Fencer interface {
	Fence() error
}

// Options configure a Reconciler.
type Options struct {
	// Settings are the accounts, mapping table and sync keys to run on.
	Settings *Settings
	State    State
	// Cloudflare nil means no token: plan-only, every name resolves to
	// itself, and Cloudflare's state is taken from the member cache.
	Cloudflare Cloudflare
	PlanOnly   bool
	Metrics    *Metrics         // nil: a private set nobody scrapes
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // nil: time.Now
}

// Actors of runs and audit records.
const (
	ActorSchedule   = "schedule"
	ActorIdPPush    = "idp-push"
	ActorExpiry     = "expiry"
	ActorApply      = "apply"
	ActorPlan       = "plan" // a dry run: it records nothing under it
	ActorApplyForce = "apply --force"
	ActorGrant      = "grant"
	ActorRevoke     = "revoke"
	ActorReload     = "reload"
)

// Outcomes of a run, as metrics and status show them.
const (
	OutcomeSuccess = "success"
	OutcomeFailed  = "failed" // the run completed but some changes failed
	OutcomeAborted = "aborted"
	// OutcomePreempted: a scheduled full run gave way to a targeted run or
	// an expiry before its first write; it runs again after it.
	OutcomePreempted = "preempted"
)

// RunOptions describe one full reconcile requested from outside.
type RunOptions struct {
	Actor string
	// Force lets a tripped guard's removals through once, audited, and
	// clears the tripped state.
	Force bool
	// DryRun reads and plans but writes nothing, to Cloudflare or the state.
	DryRun bool
}

// FailedChange is a change Cloudflare or the state refused.
type FailedChange struct {
	Change plan.Change
	Err    error
}

// Result is what one run planned and did.
type Result struct {
	Changes *plan.Changes // after policies
	Applied []plan.Change
	// Settled are changes an earlier write applied although its answer
	// never arrived (reset, timeout, restart): this run found them in
	// Cloudflare and recorded them, audit record included. No call made.
	Settled      []plan.Change
	Failed       []FailedChange
	Names        map[string]string // grant key -> name
	AccountNames map[string]string // account id -> name
	// Aborted is set when the run stopped before its first write: a failed
	// or partial read of Cloudflare or of the state, or a name that does
	// not resolve. Nothing was applied.
	Aborted error
	// Preempted: the run (a scheduled full run) stopped its reads for a
	// targeted run or an expiry that fell due; Aborted says so too.
	Preempted bool
	PlanOnly  bool
}

// Expiry is one pending end of access: the moment Email loses Role on
// Account because every grant of it is time-bound.
type Expiry struct {
	Email, Account, Role string
	At                   time.Time
	Source               string
}

// Status is the reconciler's state for `scimflare status`.
type Status struct {
	LastRun, LastSuccess                time.Time
	LastOutcome, LastTrigger, LastError string
	NextRun                             time.Time // zero unless Run is scheduling
	PendingExpiries                     []Expiry  // soonest first
	Tripped                             []string  // account names
	BudgetLeft                          int
	PlanOnly                            bool
	// IdentityProblems are users whose address gives no Cloudflare access
	// and emails several users share, as the last run found them.
	IdentityProblems []plan.IdentityProblem
	// Withheld are the removals a guard holds back, oldest first.
	Withheld []WithheldRemoval
	// GroupConflicts are user groups of scimflare's names it does not own,
	// in words ("account: why"), as the last full run found them.
	GroupConflicts []string
}

// Reconciler keeps Cloudflare in line with the store and the mapping table.
type Reconciler struct {
	// legacyRoles: role names members were read with (grant shapes).
	legacyRoles legacyRoles
	cfg         atomic.Pointer[Settings]
	state       State
	cf          Cloudflare
	// planOnly follows sync.mode across reloads; each run reads it once,
	// at its start, so one run never half-writes.
	planOnly atomic.Bool
	m        *Metrics
	log      *slog.Logger
	now      func() time.Time

	// saved is the run status as last recorded (nil: not read yet).
	saved atomic.Pointer[savedStatus]
	// readStatus is the status record a reconciler that does not run
	// read last, decoded (cachedStatus).
	readStatus atomic.Pointer[decodedStatus]
	// expiries is the pending-expiry index (nil: not loaded yet).
	expiries atomic.Pointer[expiryIndex]

	// names is the most recent live name resolution (nil: none yet).
	names atomic.Pointer[nameCache]
	// ugroups are the user groups of user-groups accounts as last listed.
	ugroups userGroupCache

	// sem admits one run at a time: runs never overlap.
	sem  chan struct{}
	kick chan struct{}
	// watch wakes a running full run's preemption watch (preempt.go) as
	// kick wakes the loop: the watch has a channel of its own, so it can
	// never take a wake-up the loop needs.
	watch chan struct{}
	// preemptions counts the scheduled full runs in a row that gave way
	// to an urgent run (preempt.go); only Run's goroutine touches it.
	preemptions int

	mu         gosync.Mutex // guards the fields below
	running    bool
	pending    touched
	firstTouch time.Time // real time of the first pending touch
	lastTouch  time.Time
	holdUntil  time.Time // real time before which a failed targeted run is not retried
	nextRun    time.Time
	nextExpiry time.Time
}

// New checks the options and builds a Reconciler. It makes no call.
func New(opt Options) (*Reconciler, error) {
	if opt.Settings == nil {
		return nil, errors.New("reconciler: no settings")
	}
	if opt.State == nil {
		return nil, errors.New("reconciler: no state")
	}
	r := &Reconciler{
		state:   opt.State,
		cf:      opt.Cloudflare,
		m:       opt.Metrics,
		log:     opt.Logger,
		now:     opt.Now,
		sem:     make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		watch:   make(chan struct{}, 1),
		pending: newTouched(),
	}
	if r.m == nil {
		r.m = NewMetrics(prometheus.NewRegistry())
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.cfg.Store(opt.Settings)
	r.setPlanOnly(opt.PlanOnly || opt.Cloudflare == nil)
	return r, nil
}

func (r *Reconciler) config() *Settings { return r.cfg.Load() }

// Reload makes the next runs use cfg, the settings of a reloaded
// configuration file. They resolve names afresh: the catalogs cached for
// the old settings answer for its accounts and mappings.
func (r *Reconciler) Reload(cfg *Settings) {
	if cfg == nil {
		return
	}
	r.cfg.Store(cfg)
	// The operator reads sync.mode as a promise: a reload to plan-only
	// must stop the very next run's writes, and back to enforce restarts
	// them (a client is still needed for that).
	r.setPlanOnly(cfg.Sync.Mode == ModePlanOnly || r.cf == nil)
	r.names.Store(nil)
	r.poke()
}

func (r *Reconciler) setPlanOnly(on bool) {
	r.planOnly.Store(on)
	if on {
		r.m.PlanOnly.Set(1)
	} else {
		r.m.PlanOnly.Set(0)
	}
}

func (r *Reconciler) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
	select {
	case r.watch <- struct{}{}:
	default:
	}
}

// Plan reads everything a full run reads, applies the policies, and
// changes nothing.
func (r *Reconciler) Plan(ctx context.Context) (*Result, error) {
	return r.execute(ctx, runRequest{kind: fullRun, actor: ActorPlan, dry: true})
}

// Apply runs one full reconcile now.
func (r *Reconciler) Apply(ctx context.Context, o RunOptions) (*Result, error) {
	actor := o.Actor
	if actor == "" {
		actor = ActorApply
		if o.Force {
			actor = ActorApplyForce
		}
	}
	return r.execute(ctx, runRequest{kind: fullRun, actor: actor, force: o.Force, dry: o.DryRun})
}
