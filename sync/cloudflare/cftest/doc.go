// Package cftest is the test face of the fake Cloudflare
// (sync/cloudflare/cloudflarefake): New starts one for a test, stops it at
// cleanup, and validates every request against Cloudflare's OpenAPI schema
// (testdata/openapi-iam.json, amended as listed in testdata/AMENDMENTS.md).
// A request that does not conform is answered 400 and recorded, and by
// default fails the test at cleanup. Every answer the fake gives is
// validated too (injected faults aside) and fails the test at cleanup when
// it does not conform. The behaviours the fake models, each with its public
// source, are in testdata/BEHAVIOURS.md.
//
// It is test support: it must never be imported by production code (it
// links `testing` and kin-openapi). A program that needs the fake uses
// cloudflarefake directly.
package cftest
