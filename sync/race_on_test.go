//go:build race

package sync

// raceEnabled lets tests too slow under the race detector skip themselves
// there; .ci/run runs them separately without it.
const raceEnabled = true
