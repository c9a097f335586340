//go:build !race

package faults

// raceEnabled: this test binary was built with -race.
const raceEnabled = false
