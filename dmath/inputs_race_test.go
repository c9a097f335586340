//go:build race

package dmath

// accuracyInputsPerCase is how many generated inputs each accuracy case
// checks on top of the special values: fewer under the race detector,
// which slows floating-point loops down about tenfold and finds nothing
// in this single-goroutine code.
const accuracyInputsPerCase = 20_000
