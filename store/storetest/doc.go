// Package storetest is the conformance suite for the store: every backend
// (bbolt today, perhaps etcd for HA later) must pass Run for store.Store
// and RunSync for store.SyncState, so that the SCIM layer and the
// reconciler can rely on the behaviour and not on a particular
// implementation.
//
// It tests only through those interfaces; it must never reach into a
// backend's internals, and it must never need a real clock (times are fixed
// values passed in).
package storetest
