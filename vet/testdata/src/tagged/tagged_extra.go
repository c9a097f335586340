//go:build metronome_vet_example

package tagged

// Total ranges over a map.
func Total() int {
	total := 0
	for _, n := range Counts {
		total += n
	}
	return total
}
