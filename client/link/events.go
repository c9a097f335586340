package link

import (
	"encoding/json"
	"fmt"

	"github.com/metronome-sync/metronome/protocol"
)

// ConnID identifies one connection attempt. The link numbers its attempts
// 1, 2, 3, ...; events that carry an older ConnID than the current attempt
// are stale and ignored.
type ConnID uint64

// Event is an input to Step.
type Event interface{ isEvent() }

// Start asks the link to connect and join. Stepping Start on a running
// link does nothing.
type Start struct{}

// Opened: the connection asked for by a Dial effect is open.
type Opened struct{ Conn ConnID }

// Received: a frame arrived on a connection.
type Received struct {
	Conn ConnID
	Data []byte
}

// Closed: a connection closed, failed to open, or broke. Code is the close
// code received (1006 when the transport broke without a close frame).
type Closed struct {
	Conn   ConnID
	Code   int
	Reason string
}

// Wake: time has passed; run whatever timers are due. Any event runs due
// timers first.
type Wake struct{}

// Submit queues an input for the session. Payload must be a JSON string
// token (the encrypted, encoded input). The link numbers inputs and keeps
// each one until it sees it reflected, re-sending it after reconnects.
type Submit struct{ Payload json.RawMessage }

// Snapshot announces a snapshot the model uploaded (docs/protocol.md §6.5).
type Snapshot struct {
	Time int64
	Seq  uint32
	Hash string
	URL  string
}

// Save announces persisted data the model uploaded (SAVE): a later fresh
// session of the same application starts from it.
type Save struct {
	PersistTime int64
	URL         string
}

// Leave ends the link deliberately (close 1000, no reconnect).
type Leave struct{}

// Poll sends a snapshot poll: a SEND tagged for the reflector's debounce
// (docs/protocol.md §9.1). Polls are not inputs: they are not numbered or re-sent, and
// are dropped while the link is not synced.
type Poll struct{ Payload json.RawMessage }

// Vote sends a TUTTI vote (docs/protocol.md §6.3) with wantsVote true; dropped while
// the link is not synced.
type Vote struct {
	SendTime    int64
	Key         string
	Vote        string
	TallyTarget json.RawMessage
}

// Broadcast sends ephemeral data to the session's other views that asked
// for it (the ephemeral channel, docs/protocol.md §22): not stamped, not
// stored, never part of the session's messages. Payload must be a JSON
// string token (the sealed name and data). Name is the coalescing key:
// while a broadcast waits for the send rate (EphemeralSendRatePerSecond),
// a newer one under the same name replaces it. Broadcasts are dropped
// while the link is not joined, and those still waiting when the
// connection drops: ephemeral data is not worth sending late.
type Broadcast struct {
	Name    string
	Payload json.RawMessage
}

func (Start) isEvent()     {}
func (Opened) isEvent()    {}
func (Received) isEvent()  {}
func (Closed) isEvent()    {}
func (Wake) isEvent()      {}
func (Submit) isEvent()    {}
func (Snapshot) isEvent()  {}
func (Save) isEvent()      {}
func (Leave) isEvent()     {}
func (Poll) isEvent()      {}
func (Vote) isEvent()      {}
func (Broadcast) isEvent() {}

// DeliveryKind says what a Delivery holds.
type DeliveryKind int

// Kinds of deliveries.
const (
	// DeliverReset: discard the model and rebuild it from the snapshot (or
	// persisted data) at Sync.URL — or from nothing when the URL is empty —
	// then apply the messages that follow.
	DeliverReset DeliveryKind = iota + 1
	// DeliverMessage: apply Message, the next message in session order.
	DeliverMessage
	// DeliverTime: the session time advanced to Time (a TICK, or the time
	// of a SYNC); run future messages up to it.
	DeliverTime
)

// Delivery is one thing for the model, in order.
type Delivery struct {
	Kind DeliveryKind
	// Sync is set for DeliverReset.
	Sync *protocol.ServerSync
	// Message is set for DeliverMessage; Input is its input tag if it is an
	// input sent by a link (any view's), with ok false otherwise.
	Message protocol.StampedMessage
	Input   InputTag
	IsInput bool
	// Time is set for DeliverTime.
	Time int64
}

// InputTag identifies an input: the view that submitted it and its number
// among that view's inputs (1, 2, 3, ...). It travels as an extra element
// of the message array, so the link can recognise its own inputs without
// decrypting payloads, and models can drop a re-sent duplicate
// deterministically.
type InputTag struct {
	ViewID string
	Seq    uint64
}

// Frame is a frame to write on a connection.
type Frame struct {
	Conn ConnID
	Data []byte
}

// Close asks the shell to close a connection with a code and reason.
type Close struct {
	Conn   ConnID
	Code   int
	Reason string
}

// Effects are the results of a Step. Execute them in this order: (1)
// Close, (2) Dial, (3) write Frames in order, (4) hand Deliveries to the
// model in order, (5) hand Ephemeral to the views. Then Reset and reuse.
// Frames, Deliveries, Rejected, Ephemeral and Notes may accumulate over
// several Steps; Close and Dial may not (their
// order with the frames around them matters), so Step panics when out
// still holds one: execute every Step's effects before the next
// (client/replica does).
type Effects struct {
	// Close, when set, closes that connection (the link already treats it
	// as gone: its later events are ignored).
	Close *Close
	// Dial, when non-zero, opens a new connection to the session URL and
	// steps Opened, or Closed if it fails.
	Dial ConnID
	// Frames to write, in order.
	Frames []Frame
	// Deliveries for the model, in order.
	Deliveries []Delivery
	// Joined: the join completed during this step; inputs flow.
	Joined bool
	// SnapshotRequested: the reflector asked for a snapshot (REQU: its
	// buffer of messages since the last snapshot is filling up).
	SnapshotRequested bool
	// Failed, when set, is a fatal error: the link stopped for good.
	Failed error
	// Rejected holds submits refused (PendingInputsMax reached) and
	// broadcasts refused (a payload that is not a string,
	// EphemeralPendingNamesMax reached).
	Rejected []error
	// Ephemeral holds the other views' broadcasts that arrived (only when
	// Join.Ephemeral asked for them), in order, for the views: never for
	// the model.
	Ephemeral []Ephemeral
	// Notes describe what happened, for logs.
	Notes []string
}

// Reset empties the effects for reuse.
func (e *Effects) Reset() {
	e.Close = nil
	e.Dial = 0
	clear(e.Frames)
	e.Frames = e.Frames[:0]
	clear(e.Deliveries)
	e.Deliveries = e.Deliveries[:0]
	e.Joined = false
	e.SnapshotRequested = false
	e.Failed = nil
	e.Rejected = e.Rejected[:0]
	clear(e.Ephemeral)
	e.Ephemeral = e.Ephemeral[:0]
	e.Notes = e.Notes[:0]
}

// Ephemeral is another view's broadcast (docs/protocol.md §22).
type Ephemeral struct {
	// From is the sender's view id ("" if it announced none).
	From string
	// Payload is the sender's string token, verbatim.
	Payload json.RawMessage
}

// String shows the frame's connection and text, for logs and tests.
func (f Frame) String() string { return fmt.Sprintf("conn %d: %s", f.Conn, f.Data) }
