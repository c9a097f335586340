package server

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/host"
)

func TestNextCoalesceDelay(t *testing.T) {
	const limit = 20 * time.Millisecond
	us := time.Microsecond
	for _, tc := range []struct {
		current, wait time.Duration
		ok            bool
		want          time.Duration
	}{
		{0, 3 * us, true, 0},                              // normal load: write at once
		{0, 2 * time.Millisecond, true, coalesceDelayMin}, // behind: start holding
		{4 * time.Millisecond, time.Millisecond, true, 8 * time.Millisecond},
		{16 * time.Millisecond, time.Millisecond, true, limit}, // capped
		{limit, time.Millisecond, true, limit},
		{8 * time.Millisecond, 300 * us, true, 8 * time.Millisecond}, // between: keep
		{8 * time.Millisecond, 50 * us, true, 4 * time.Millisecond},  // caught up: halve
		{coalesceDelayMin, 50 * us, true, 0},                         // below the minimum: stop
		{8 * time.Millisecond, 0, false, 4 * time.Millisecond},       // too few samples: idle, not behind
		{0, 0, false, 0},
	} {
		if got := nextCoalesceDelay(tc.current, tc.wait, tc.ok, limit); got != tc.want {
			t.Errorf("nextCoalesceDelay(%v, wait %v, ok %v) = %v, want %v", tc.current, tc.wait, tc.ok, got, tc.want)
		}
	}
}

// TestOverloadMonitorSample reads the runtime's scheduling latencies: the
// first sample only sets the baseline; after many goroutines were
// scheduled there are enough samples for a median.
func TestOverloadMonitorSample(t *testing.T) {
	monitor := newOverloadMonitor(DefaultCoalesceMax, nil)
	if _, ok := monitor.sample(); ok {
		t.Fatal("the first sample reported a median; it has no baseline")
	}
	var group sync.WaitGroup
	for range 2000 {
		group.Go(runtime.Gosched)
	}
	group.Wait()
	wait, ok := monitor.sample()
	if !ok || wait <= 0 || wait > time.Second {
		t.Fatalf("after 2,000 goroutines: median wait %v, ok %v; want a positive median", wait, ok)
	}
}

// TestHeldFramesAreBatchedAndDelivered forces the overloaded state: the
// messages of a short burst reach both clients whole and in order, in a
// few writes instead of one per message and client.
func TestHeldFramesAreBatchedAndDelivered(t *testing.T) {
	server := startServer(t, Config{CoalesceMax: CoalesceOff})
	const hold = 300 * time.Millisecond
	server.overload = &overloadMonitor{limit: hold} // no sampling goroutine: the delay stays
	server.overload.delay.Store(int64(hold))
	sessionID := newSessionID(t)
	a := dialSession(t, server.Addr(), sessionID, "viewA")
	a.join()
	b := dialSession(t, server.Addr(), sessionID, "viewB")
	b.join()
	a.awaitJoined("viewB")
	b.awaitJoined("viewB")

	writesBefore := server.metrics.writes.Load()
	var payloads []string
	for i := range 10 {
		payloads = append(payloads, fmt.Sprintf("held-%d", i))
		a.sendMessage(payloads[i])
		time.Sleep(5 * time.Millisecond) // spaced: no batch forms by itself
	}
	a.awaitAll(payloads)
	b.awaitAll(payloads)
	writes := server.metrics.writes.Load() - writesBefore
	expectInOrder(t, a.messages, payloads)
	expectInOrder(t, b.messages, payloads)
	// Unheld: 20 writes (10 messages × 2 clients). Held: the first
	// message at once, the rest together (and any TICKs with them).
	if writes > 8 {
		t.Errorf("10 spaced messages to 2 clients took %d writes while holding frames for %v; want a few", writes, hold)
	}
}

// TestHoldFor checks when a session holds its effects: only while the
// server is overloaded, only frames, and not after a write that answered
// a burst of inputs unheld.
func TestHoldFor(t *testing.T) {
	const delay = 20 * time.Millisecond
	server := &Server{overload: &overloadMonitor{limit: delay}}
	server.overload.delay.Store(int64(delay))
	actor := &sessionActor{server: server}
	for _, tc := range []struct {
		name                string
		overloaded          bool
		sinceFlush          time.Duration
		lastFrames          int
		lastHeld, shutdown  bool
		ended, closes, none bool
		held                bool
	}{
		{name: "not overloaded", sinceFlush: time.Millisecond, lastFrames: 1},
		{name: "one input after the previous write", overloaded: true, sinceFlush: time.Millisecond, lastFrames: 1, held: true},
		{name: "after a quiet spell", overloaded: true, sinceFlush: 2 * delay, lastFrames: 1},
		{name: "after a burst written at once", overloaded: true, sinceFlush: time.Millisecond, lastFrames: 5},
		{name: "after a held write of several", overloaded: true, sinceFlush: time.Millisecond, lastFrames: 5, lastHeld: true, held: true},
		{name: "shutting down", overloaded: true, sinceFlush: time.Millisecond, lastFrames: 1, shutdown: true},
		{name: "session ended", overloaded: true, sinceFlush: time.Millisecond, lastFrames: 1, ended: true},
		{name: "a close among the effects", overloaded: true, sinceFlush: time.Millisecond, lastFrames: 1, closes: true},
		{name: "no frames", overloaded: true, sinceFlush: time.Millisecond, lastFrames: 1, none: true},
	} {
		server.overload.delay.Store(0)
		if tc.overloaded {
			server.overload.delay.Store(int64(delay))
		}
		// The session's pending effects: one frame, a close besides it, or
		// nothing; an ended session's effects are urgent.
		pending := host.Pending{Events: 1, Frames: 1, Urgent: tc.closes || tc.ended}
		if tc.none {
			pending.Frames = 0
		}
		actor.lastFlush = time.Now().Add(-tc.sinceFlush)
		actor.lastFlushFrames, actor.lastFlushHeld = tc.lastFrames, tc.lastHeld
		hold := actor.holdFor(pending, tc.shutdown)
		if (hold > 0) != tc.held || hold > delay {
			t.Errorf("%s: hold %v, want held %v (at most %v)", tc.name, hold, tc.held, delay)
		}
	}
}
