//go:build race

package scim_test

const raceEnabled = true
