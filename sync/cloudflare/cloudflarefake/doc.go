// Package cloudflarefake is a stateful fake of the slice of Cloudflare's API
// that scimflare uses — account members, roles, IAM permission and resource
// groups, user groups and their members, token verification — served over
// real HTTP on loopback.
//
// It answers as Cloudflare really does (sync/cloudflare/cftest/testdata/
// BEHAVIOURS.md, each behaviour with its public source): a member granted
// roles reads back with the policies derived from them, POST answers without
// the grants it was given, listings carry no total_pages, a duplicate invite
// is 400, a body with roles and policies takes the policies, a malformed
// token is 400 6003/6111, groups made by Cloudflare's SCIM refuse renames,
// member changes and deletion. Where Cloudflare's answer is not public (may a
// pending member join a group?) both answers are options. EffectiveAccess
// says what a member holds by every path. Time is a Clock its owner moves;
// faults are programmable.
//
// It is the fake's core, safe to link into a program: `scimflare serve
// --dev` and bench/fakecloudflare run it. It imports neither `testing` nor
// the OpenAPI validator; package cftest wraps it for tests and validates
// every request and answer against Cloudflare's schema. It never listens
// beyond loopback and never mimics a behaviour of Cloudflare it cannot
// source — where it has to choose (error codes), doc comments say so.
package cloudflarefake
