// Package broken does not type-check; metronome vet exits 2 on it.
package broken

var count int = "three"
