// Package scim is scimflare's SCIM 2.0 endpoint (RFC 7643/7644): bearer
// authentication, body limits, the request shapes real identity providers
// send, PATCH application and filter answers, on top of
// github.com/elimity-com/scim for routing and schema validation, with the
// state in the store. The hot user answers (lists, GET by id, POST) are
// written by scimflare itself, byte for byte as the library writes them
// (userjson.go); the one-member Group PATCHes IdPs send are read without
// the generic PATCH reader, to the same effect (grouppatch.go).
//
// It writes users, groups and memberships to the store and tells a Notifier
// which users a write affected. It must never know that Cloudflare exists,
// never store or return a password, and never log a token.
package scim
