// Package mapping is the ops-owned mapping table: which IdP group grants
// which Cloudflare roles or permission policies on which account.
//
// It holds the table's types (decoded from YAML by the config loader), the
// validation rules of SPEC.md, the grant keys every layer shares ("role:<id>",
// "policy:<pg ids>|<rg ids>"), and name resolution against catalogs the
// reconciler fetched from Cloudflare.
//
// It must never do I/O, read the clock, or talk to Cloudflare or the store:
// everything it needs is passed in, so that validate, plan and reconcile see
// exactly the same answers for the same inputs.
package mapping
