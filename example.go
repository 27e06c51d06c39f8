// Package scimflare holds what the binary embeds from the repository root:
// config.example.yaml, which `scimflare serve --dev` runs on, so the
// example a reader studies is the one the dev daemon shows working.
package scimflare

import _ "embed"

// ExampleConfig is config.example.yaml as committed.
//
//go:embed config.example.yaml
var ExampleConfig []byte
