// Command ceiling is the fastest SCIM server github.com/elimity-com/scim
// allows without persistence: users and groups in maps under one mutex,
// `userName eq` and `displayName eq` answered from a map, its own trivial
// PATCH for attributes and members. scimload runs against it and against
// scimflare, and the ratio of the two says how much of scimflare's cost is
// its own (durable writes, IdP quirks, indexes) rather than HTTP, JSON and
// the library's validation.
//
// It is a benchmark fixture: it must never be imported by the product, never
// persist anything and never listen beyond loopback by default. Its token is
// "ceiling".
package main
