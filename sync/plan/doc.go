// Package plan is scimflare's pure reconcile core: it computes the desired
// Cloudflare membership from the directory, the resolved mapping table and
// temporary grants (Build), diffs it against what Cloudflare holds under the
// ownership ledger (Plan), holds back what must not happen (policies:
// protected emails, the last Super Administrator, removal guards), and
// renders the result for people and scripts.
//
// Like external-dns's plan package, it must never do I/O of its own, read the
// clock (now is an argument), call Cloudflare or write the store: the
// reconciler reads, calls this, and applies. Directory is the one read it
// makes, through a snapshot the caller owns.
package plan
