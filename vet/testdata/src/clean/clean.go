// Package clean is a deterministic model: the analyzer reports nothing.
package clean

import (
	"maps"
	"slices"
	"time"
)

// Model is a counter per user, advanced by messages in session time.
type Model struct {
	Counts   map[string]int
	Interval time.Duration
	NowMs    int64
}

// Step handles one message stamped with session time.
func (m *Model) Step(nowMs int64, user string) []string {
	m.NowMs = nowMs
	m.Counts[user]++
	var lines []string
	for _, name := range slices.Sorted(maps.Keys(m.Counts)) {
		lines = append(lines, name)
	}
	return lines
}

// Elapsed converts session milliseconds to a duration.
func (m *Model) Elapsed(startMs int64) time.Duration {
	return time.Duration(m.NowMs-startMs) * time.Millisecond
}
