// Package protocol is the Croquet 2.x reflector wire protocol: the frames a
// client sends (JOIN, SEND, TUTTI, SNAP, SAVE, TICKS, PING, PULSE, LOG), the
// frames a reflector sends (SYNC, RECV, TICK, INFO, REQU, PONG), the close
// codes, and the limits Metronome enforces on input; and Metronome's one
// extension, the ephemeral channel (EPHM, ephemeral.go), which standard
// clients never see.
//
// Decoding works on []byte and never panics on any input (it is fuzzed).
// Every decoding failure is an *Error that names the field, the rule and the
// offending value, and carries the WebSocket close code a reflector uses for
// it. Encoding appends to caller-owned buffers so that a reflector can encode
// a RECV once and send the same bytes to every member of a session.
//
// The protocol is described in docs/protocol.md at the root of the
// repository; section numbers in comments (§6.2 etc.) refer to it.
package protocol
