package server

import (
	"math"
	runtimemetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// # Coalescing writes under overload
//
// A session writes what an event caused at once: one write per connection
// per batch. Under a light load that is what keeps latency low, and every
// input is its own write. Each write costs the kernel several microseconds
// (7.5–9.7 µs for a small loopback write on a 2-core VM, more than all of
// our own work per delivery), so when inputs arrive faster than the CPU
// can write them one by one, the server falls behind, and every session
// waits for the others.
//
// The overload monitor watches how long runnable goroutines wait for a CPU
// (the Go runtime's /sched/latencies histogram). When the median wait
// exceeds overloadEnterWait, the server is behind: every session then
// holds its frames until coalesceDelay has passed since its previous
// write, so that one write carries several frames. The first frames after
// a quiet spell still go out at once, and a session whose previous write
// answered several inputs without being held is not held either: its
// clients send together, and their inputs coalesce by themselves
// (sessionActor.holdFor). The delay doubles from coalesceDelayMin while
// the server stays behind, up to the configured maximum, and halves back
// to zero once the median wait falls below overloadLeaveWait. Under a
// normal load the median wait is a few microseconds and nothing is held.
//
// Saturation at 100 × 10 (docs/benchmarks.md, 3 ramps each), clients at
// their own phases: 156,000–305,000 deliveries/s with holding (median
// 244,000), about 115,000 without; the baseline broadcast server
// 100,000–125,000. With a session's clients sending together (--burst):
// 226,000–273,000. Two simpler rules were measured first: holding every
// session cut the burst ramps to 170,000–226,000 (the tail of a burst
// waited up to the delay: p50 13 ms instead of 1 ms), and exempting
// frames within 0.5 ms of the previous write did not reliably tell bursts
// apart under load.

const (
	// overloadSampleInterval is how often the monitor reads the runtime's
	// scheduling latencies.
	overloadSampleInterval = 50 * time.Millisecond
	// overloadEnterWait and overloadLeaveWait bound the median time a
	// runnable goroutine waited for a CPU in the last interval: above the
	// first the server is behind; below the second it has caught up.
	// Measured at 100 × 10 clients: 3 µs at 5 msg/s per client (no
	// backlog), 1–4 ms at 10 msg/s (saturated, latency p50 18 ms).
	overloadEnterWait = 500 * time.Microsecond
	overloadLeaveWait = 100 * time.Microsecond
	// overloadSamplesMin is the fewest scheduling samples an interval
	// needs to count; a nearly idle server has fewer, and is not behind.
	overloadSamplesMin = 16
	// coalesceDelayMin is the first delay once overloaded.
	coalesceDelayMin = time.Millisecond
)

// nextCoalesceDelay is the delay after an interval whose median scheduling
// wait was wait (ok false: too few samples to tell).
func nextCoalesceDelay(current, wait time.Duration, ok bool, limit time.Duration) time.Duration {
	switch {
	case ok && wait > overloadEnterWait:
		return min(max(2*current, coalesceDelayMin), limit)
	case !ok || wait < overloadLeaveWait:
		if current/2 < coalesceDelayMin {
			return 0
		}
		return current / 2
	default:
		return current
	}
}

// overloadMonitor sets the coalescing delay from the scheduling latencies.
type overloadMonitor struct {
	delay     atomic.Int64 // time.Duration: how long sessions hold frames; 0 normally
	limit     time.Duration
	samples   []runtimemetrics.Sample
	previous  []uint64
	entered   atomic.Uint64 // times the delay went from 0 to > 0
	onChange  func(delay, wait time.Duration)
	lastDelay time.Duration
}

const schedLatencies = "/sched/latencies:seconds"

func newOverloadMonitor(limit time.Duration, onChange func(delay, wait time.Duration)) *overloadMonitor {
	return &overloadMonitor{limit: limit, samples: []runtimemetrics.Sample{{Name: schedLatencies}}, onChange: onChange}
}

// coalesceDelay is the current delay (0: write at once).
func (m *overloadMonitor) coalesceDelay() time.Duration {
	if m == nil {
		return 0
	}
	return time.Duration(m.delay.Load())
}

// run samples every overloadSampleInterval until stop is closed.
func (m *overloadMonitor) run(stop <-chan struct{}) {
	ticker := time.NewTicker(overloadSampleInterval)
	defer ticker.Stop()
	m.sample() // the baseline counts
	for {
		select {
		case <-stop:
			m.delay.Store(0)
			return
		case <-ticker.C:
			wait, ok := m.sample()
			delay := nextCoalesceDelay(m.lastDelay, wait, ok, m.limit)
			if delay > 0 && m.lastDelay == 0 {
				m.entered.Add(1)
			}
			if (delay == 0) != (m.lastDelay == 0) && m.onChange != nil {
				m.onChange(delay, wait)
			}
			m.lastDelay = delay
			m.delay.Store(int64(delay))
		}
	}
}

// sample returns the median scheduling wait since the previous sample.
func (m *overloadMonitor) sample() (time.Duration, bool) {
	runtimemetrics.Read(m.samples)
	if m.samples[0].Value.Kind() != runtimemetrics.KindFloat64Histogram {
		return 0, false
	}
	histogram := m.samples[0].Value.Float64Histogram()
	if len(m.previous) != len(histogram.Counts) {
		m.previous = append(m.previous[:0], histogram.Counts...)
		return 0, false
	}
	var total uint64
	for i, count := range histogram.Counts {
		total += count - m.previous[i]
	}
	median, ok := time.Duration(0), total >= overloadSamplesMin
	if ok {
		var seen uint64
		for i, count := range histogram.Counts {
			seen += count - m.previous[i]
			if 2*seen >= total {
				// The bucket's upper bound (Buckets has one more entry).
				bound := histogram.Buckets[i+1]
				if math.IsInf(bound, 1) {
					bound = histogram.Buckets[i]
				}
				median = time.Duration(bound * float64(time.Second))
				break
			}
		}
	}
	copy(m.previous, histogram.Counts)
	return median, ok
}
