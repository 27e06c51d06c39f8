// Package cftest is a stateful fake of the slice of Cloudflare's API that
// scimflare uses — account members, roles, IAM permission and resource
// groups, token verification — served over real HTTP on loopback.
//
// Every request is validated against Cloudflare's OpenAPI schema
// (testdata/openapi-iam.json, amended as listed in testdata/AMENDMENTS.md);
// a request that does not conform is answered 400 and recorded, and by
// default fails the test at cleanup. Time is a Clock the test owns, so rate
// limiting and client back-off never wait for real. Faults (statuses,
// Retry-After, delays, dropped connections) are programmable per test.
//
// It is test support: it must never be imported by production code, never
// listen beyond loopback, and never mimic a behaviour of Cloudflare it cannot
// source — where it has to choose (error codes), doc comments say so.
package cftest
