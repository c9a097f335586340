//go:build !race

package dmath

// accuracyInputsPerCase is how many generated inputs each accuracy case
// checks on top of the special values.
const accuracyInputsPerCase = 200_000
