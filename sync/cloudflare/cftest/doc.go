// Package cftest is a stateful fake of the slice of Cloudflare's API that
// scimflare uses — account members, roles, IAM permission and resource
// groups, token verification — served over real HTTP on loopback.
//
// It answers as Cloudflare really does (testdata/BEHAVIOURS.md, each
// behaviour with its public source): a member granted roles reads back with
// the policies derived from them, POST answers without the grants it was
// given, listings carry no total_pages, a duplicate invite is 400, a body
// with roles and policies takes the policies, a malformed token is 400
// 6003/6111.
//
// Every request is validated against Cloudflare's OpenAPI schema
// (testdata/openapi-iam.json, amended as listed in testdata/AMENDMENTS.md);
// a request that does not conform is answered 400 and recorded, and by
// default fails the test at cleanup. Every answer the fake gives is
// validated too (injected faults aside) and fails the test at cleanup when
// it does not conform. Time is a Clock the test owns, so rate
// limiting and client back-off never wait for real. Faults (statuses,
// Retry-After, delays, dropped connections) are programmable per test.
//
// It is test support: it must never be imported by production code, never
// listen beyond loopback, and never mimic a behaviour of Cloudflare it cannot
// source — where it has to choose (error codes), doc comments say so.
package cftest
