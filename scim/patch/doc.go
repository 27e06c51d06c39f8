// Package patch implements SCIM PATCH (RFC 7644 §3.5.2) as pure functions on
// JSON documents: Parse decodes a PatchOp body, Apply applies its operations
// to a copy of a resource, SplitMembers pulls group membership changes out so
// that a large group's member list is never loaded into a document.
//
// Besides every RFC form it accepts the request shapes real identity
// providers send (Microsoft Entra ID, Okta, OneLogin, authentik); apply.go
// lists them where they are handled.
//
// It must never do I/O, read the clock, or modify the document or operations
// it is given: Apply is atomic, it returns a new document or an error and
// nothing. Errors are github.com/elimity-com/scim/errors.ScimError values
// with status 400, a scimType, and a one-sentence Detail that names the
// operation (Operations[i]) and path at fault.
package patch
