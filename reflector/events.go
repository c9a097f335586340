package reflector

import (
	"math"

	"github.com/metronome-sync/metronome/protocol"
)

// ConnID identifies one client connection. The caller assigns ids; they must
// be unique within a Session's lifetime.
type ConnID uint64

// Event is an input to Step.
type Event interface{ isEvent() }

// Connect: a WebSocket connection for this session was opened.
type Connect struct{ Conn ConnID }

// Receive: a frame arrived on a connection. Err is the decoding error when
// the frame could not be decoded (Frame is then zero); the session answers
// it with the error's close code.
type Receive struct {
	Conn  ConnID
	Frame protocol.ClientFrame
	Err   error
}

// Disconnect: a connection closed (by the peer, the network, or after a
// Close effect was executed).
type Disconnect struct{ Conn ConnID }

// Never is the wake time of a session that needs no Wake (NextWake).
const Never int64 = math.MaxInt64

// Wake: time has passed; run whatever timers are due. The caller steps a
// Wake at NextWake(), but any event runs due timers first.
type Wake struct{}

// PointerLoaded answers a LookupPointers effect: URL is the stored persisted
// data URL ("" if none, or if the lookup failed).
type PointerLoaded struct{ URL string }

// Shutdown: the server is stopping. The session persists its exact state,
// asks every client to reconnect (4003) and ends.
type Shutdown struct{}

func (Connect) isEvent()       {}
func (Receive) isEvent()       {}
func (Disconnect) isEvent()    {}
func (Wake) isEvent()          {}
func (PointerLoaded) isEvent() {}
func (Shutdown) isEvent()      {}

// StoredMessage is a stamped message as it is persisted.
type StoredMessage struct {
	Seq  uint32
	Data []byte // the encoded message array
}

// Storage is what must be made durable. Apply Append, then DropFront, then
// Record (see store.Batch, which has the same shape).
type Storage struct {
	Append    []StoredMessage
	DropFront int
	// Record, when non-nil, is the encoded session record to store.
	Record []byte
	// Pointers are persisted-data pointers written by SAVE.
	Pointers []Pointer
}

// Empty reports whether nothing needs storing.
func (s *Storage) Empty() bool {
	return len(s.Append) == 0 && s.DropFront == 0 && s.Record == nil && len(s.Pointers) == 0
}

// Pointer is a persisted-data pointer: key "appId/persistentId", value
// {"url": ...} as JSON.
type Pointer struct {
	Key   string
	Value []byte
}

// Outbound is one network effect: a frame to send to one or more
// connections, or a close.
type Outbound struct {
	// To lists the recipients. The slice may be shared between effects and
	// sessions steps; never modify it.
	To []ConnID
	// Frame is the encoded frame, shared by all recipients; never modify it.
	Frame []byte
	// Parts, when not empty, continue the frame: the frame is Frame
	// followed by every part. A large SYNC is sent this way, its messages
	// as stored, not copied. Never modify them.
	Parts [][]byte
	// Tick marks an idle heartbeat: skip recipients whose outbound queue
	// still holds unsent frames (docs/protocol.md §4.2).
	Tick bool
	// Droppable marks a frame that is worth nothing late (an EPHM of the
	// ephemeral channel, docs/protocol.md §22): skip recipients whose
	// socket is behind, i.e. that still have frames from earlier flushes
	// waiting to be written. Unlike a skipped Tick, a skipped frame is
	// lost for that recipient; nothing depends on it.
	Droppable bool
	// CloseCode, when non-zero, means: close To[0] with this code and
	// CloseReason after the frames queued before it are sent. Frame is nil.
	CloseCode   int
	CloseReason string
}

// NoteKind classifies a Note.
type NoteKind int

// Kinds of notes.
const (
	NoteClientLog       NoteKind = iota + 1 // a LOG frame from a client
	NoteRejected                            // a frame was rejected (Text says why)
	NoteSnapshot                            // a SNAP was accepted
	NoteSnapshotIgnored                     // a SNAP was ignored (Text says why)
	NoteSave                                // a SAVE was stored
	NoteBufferFull                          // a message was rejected: buffer full
	NoteSessionCreated                      // the island was created or resumed
)

// Note is something worth logging or counting. The core does not log; the
// shell decides what to do with notes.
type Note struct {
	Kind NoteKind
	Conn ConnID
	Text string
}

// Effects accumulate the results of one or more Steps. Execute them in this
// order: (1) make Storage durable; (2) send Outbound in order; (3) if Ended,
// forget the session. Then Reset and reuse.
type Effects struct {
	Storage Storage
	// LookupPointers asks the caller to read the persisted pointer of each
	// key and to step a PointerLoaded event with what it found, without
	// holding up the other effects (package host does this).
	LookupPointers []string
	Outbound       []Outbound
	Notes          []Note
	// Ended: the session is over (deleted after being idle, or shut down).
	Ended bool

	// Counters for metrics.
	MessagesStamped  int
	TicksSent        int
	LatencySamplesMs []float64
}

// Reset empties the effects for reuse, keeping allocated capacity.
func (e *Effects) Reset() {
	e.Storage.Append = e.Storage.Append[:0]
	e.Storage.DropFront = 0
	e.Storage.Record = nil
	e.Storage.Pointers = e.Storage.Pointers[:0]
	e.LookupPointers = e.LookupPointers[:0]
	clear(e.Outbound)
	e.Outbound = e.Outbound[:0]
	e.Notes = e.Notes[:0]
	e.Ended = false
	e.MessagesStamped = 0
	e.TicksSent = 0
	e.LatencySamplesMs = e.LatencySamplesMs[:0]
}

// Len is the length of the frame: Frame and its Parts.
func (o *Outbound) Len() int {
	n := len(o.Frame)
	for _, part := range o.Parts {
		n += len(part)
	}
	return n
}

// Bytes returns the whole frame (Frame, or a copy joining Frame and Parts).
func (o *Outbound) Bytes() []byte {
	if len(o.Parts) == 0 {
		return o.Frame
	}
	frame := make([]byte, 0, o.Len())
	frame = append(frame, o.Frame...)
	for _, part := range o.Parts {
		frame = append(frame, part...)
	}
	return frame
}

func (e *Effects) send(to []ConnID, frame []byte) {
	if len(to) == 0 {
		return
	}
	e.Outbound = append(e.Outbound, Outbound{To: to, Frame: frame})
}

func (e *Effects) close(conn ConnID, code int, reason string) {
	e.Outbound = append(e.Outbound, Outbound{To: []ConnID{conn}, CloseCode: code, CloseReason: protocol.TruncateReason(reason)})
}

func (e *Effects) note(kind NoteKind, conn ConnID, text string) {
	e.Notes = append(e.Notes, Note{Kind: kind, Conn: conn, Text: text})
}
