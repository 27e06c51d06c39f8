// Package cloudflare is the only code in scimflare that speaks Cloudflare's
// API: account members, roles, IAM permission groups and resource groups.
//
// It wraps the sub-packages of github.com/cloudflare/cloudflare-go/v7 behind
// a small, scimflare-shaped API and adds what an access-control daemon needs
// from a remote API: a request budget over a rolling five-minute window, retries
// with capped exponential backoff, Retry-After and Ratelimit header handling,
// and errors that carry Cloudflare's own code and message.
//
// It must never import the root cloudflare-go package (it drags in every
// Cloudflare service), never return a partial member list (a reconciler that
// sees half an account would remove the other half), never retry a 4xx other
// than 429, and never log or put the API token in an error.
package cloudflare
