// Package allow holds //metronome:allow comments.
package allow

import "math"

func sum(counts map[string]int) (total int) {
	for _, count := range counts { //metronome:allow summing is order-independent
		total += count
	}
	//metronome:allow clearing is order-independent
	for key := range counts {
		delete(counts, key)
	}
	for range counts { //metronome:allow // want `//metronome:allow needs a reason` `range over map counts`
	}
	//metronome:allow	tab-separated reasons work too
	_ = math.Sin(1) + math.Cos(2) // every finding on the covered line is suppressed
	//metronome:allow nothing to allow here // want `//metronome:allow suppresses nothing: no finding on this line or the next; remove it`
	total++
	//metronome:allowed is not the directive
	return total
}
