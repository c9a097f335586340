// Package tagged has a file that only a build tag brings in: metronome vet
// finds nothing in it without -tags metronome_vet_example and a map range
// with it.
package tagged

// Counts is what the tagged file ranges over.
var Counts = map[string]int{}
