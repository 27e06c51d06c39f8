// Package storetest is the conformance suite for the store: every backend
// (bbolt, and PostgreSQL in store/postgres) must pass Run for store.Store,
// RunSync for store.SyncState and RunBackend for the rest of
// store.Backend, so that the SCIM layer, the reconciler and the CLI can
// rely on the behaviour and not on a particular implementation.
//
// It tests only through those interfaces; it must never reach into a
// backend's internals, and it must never need a real clock (times are fixed
// values passed in).
package storetest
