package scim

import "github.com/scimflare/scimflare/scim/patch"

// Limits on what one request may ask of the store.
const (
	// MaxPatchOperations bounds the operations of one PATCH request.
	MaxPatchOperations = patch.MaxOperations
	// MaxMultiValues bounds the values of one multi-valued attribute of a
	// stored user or group document (emails, phoneNumbers, roles …; group
	// members are kept by the store, not in the document, and not bound).
	MaxMultiValues = 1000
)
