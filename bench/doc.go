// Package bench is the load generator behind "metronome bench": it speaks
// the Croquet 2.x reflector protocol directly (raw JOIN and SEND, no model)
// to any reflector URL, measures the latency of every client's own messages
// (send → the RECV that carries them back), and checks that every client
// received every message of its session exactly once, in seq order, with
// no gap (docs/protocol.md §4.5). It also holds Baseline, the simplest possible
// WebSocket broadcast server with the same frame shapes, to measure what
// the machine can do with the same client and no reflector logic.
//
// Every loop is bounded in count and time; the generator dials loopback
// addresses given on the command line only.
package bench
