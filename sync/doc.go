// Package sync is scimflare's reconciler: the loop that reads one store
// snapshot and the mapping table, reads Cloudflare, plans with sync/plan,
// applies the plan through sync/cloudflare, and writes the ownership
// ledger, member cache, audit trail and run status back to the store.
//
// It decides when to run (a full run at start-up and on sync.schedule, a
// targeted run sync.debounce after the last SCIM change, an expiry run at
// the next grant expiry), makes sure runs never overlap, and keeps the
// temporary grants of `scimflare grant` / `revoke`. Full runs read the
// role and group names from Cloudflare; the other runs reuse what the
// last one read (kept in memory, dropped on reload, after two schedule
// intervals, or when Cloudflare refuses an id from it), so that one SCIM
// change costs one write. Explain answers, for
// one email, which roles it has and should have and why, from the same
// reads and plan a run makes, writing nothing.
//
// Before each create or update it commits an intent to the ownership
// ledger (intent.go), so that a write whose answer is lost is settled as
// scimflare's by the next listing, never adopted as found.
//
// It must never apply anything after a failed or partial read (of
// Cloudflare, of the state, or of a role name): such a run is aborted
// before its first write. It must never write to Cloudflare in plan-only
// mode, touch a protected email, remove the last Super Administrator,
// let a tripped guard's removals through without `apply --force`, parse
// HTTP, or log a token.
package sync
