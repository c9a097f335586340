// Package reflector is the pure core of Metronome: the state machine of one
// session ("island" in Croquet's terms). It decides everything the protocol
// decides — who is a member, when a SYNC is sent and what it holds, how a
// SEND is stamped with session time and sequence number, when a TICK is due,
// how TUTTI votes are tallied, which snapshot is current, when a client is
// dropped — and nothing else.
//
// It does no I/O and reads no clock. The caller (the server shell, or the
// simulator) feeds it events with the current monotonic time in integer
// milliseconds:
//
//	var out reflector.Effects
//	session.Step(now, reflector.Receive{Conn: c, Frame: frame}, &out)
//	// ... more events may be stepped into the same Effects (group commit) ...
//	// 1. make out.Storage durable;  2. then execute out.Outbound in order.
//	wake := session.NextWake() // call Step(Wake{}) at that time
//
// A Session is not safe for concurrent use: one goroutine owns it. Given the
// same sequence of (now, event) pairs it produces the same effects, byte for
// byte, which is what makes the simulator possible.
package reflector
