package protocol

// Limits on client input. Every limit is enforced by the decoders in this
// package or by the reflector core, and every violation produces an *Error
// naming the limit.
const (
	// FrameBytesMax is the largest client frame accepted (docs/protocol.md §13.2:
	// 1 MiB; legitimate frames are below ~40 KB except JOINs with large
	// viewData).
	FrameBytesMax = 1 << 20

	// SessionIDBytesMax bounds the session id taken from the URL path.
	SessionIDBytesMax = 128

	// MessageElementsMax bounds the length of a SEND message array
	// [time, seq, payload, ...extra]. Standard clients send 4 elements.
	MessageElementsMax = 16

	// PayloadBytesMax bounds the encoded payload string of one SEND or TUTTI
	// first-message. The standard client refuses payloads over 16,384
	// characters before encryption, which is about 22 KB after it.
	PayloadBytesMax = 256 << 10

	// UserBytesMax bounds the JSON of a JOIN's `user` value (viewId or
	// {id, data} with encrypted viewData).
	UserBytesMax = 64 << 10

	// StringFieldBytesMax bounds the plain string fields of JOIN, SNAP and
	// SAVE (names, ids, URLs, tove, hashes).
	StringFieldBytesMax = 4096

	// VotePayloadBytesMax bounds a TUTTI vote payload (a stable-stringified
	// JSON object the reflector tallies by string equality).
	VotePayloadBytesMax = 64 << 10

	// TuttiKeyBytesMax bounds a TUTTI key ("<topic>@<sendTime>").
	TuttiKeyBytesMax = 256

	// TickMsMin and TickMsMax bound the tick interval a JOIN or TICKS may
	// ask for. The standard client asks for 1000/tps with tps in [1/30, 60],
	// i.e. 16.7 ms to 30,000 ms.
	TickMsMin = 1
	TickMsMax = 60_000

	// DelayMsMax bounds the "cheat beat" delay of JOIN ticks.delay and TICKS.
	DelayMsMax = 60_000

	// LeaveDelayMsMax bounds JOIN leaveDelay (the standard client sends
	// rejoinLimit + 250 with rejoinLimit in [0, 60000]).
	LeaveDelayMsMax = 60_250

	// DebounceMsMax bounds SEND tags.debounce.
	DebounceMsMax = 3_600_000

	// MsgIDBytesMax bounds SEND tags.msgID.
	MsgIDBytesMax = 256

	// EphemeralPayloadBytesMax bounds the payload string of one EPHM frame,
	// as sent (quotes and escapes included): the ephemeral channel
	// (docs/protocol.md §22) is for small, frequent view-to-view data such
	// as pointers, not for bulk transfers. A larger one closes the
	// connection with 4102.
	EphemeralPayloadBytesMax = 16 << 10

	// CloseReasonBytesMax is the longest close reason a WebSocket close frame
	// can carry (125 bytes of control payload minus the 2-byte code).
	CloseReasonBytesMax = 123
)

// Protocol constants that are not limits.
const (
	// SeqInitial is the "last assigned" sequence number of a new session;
	// the first stamped message gets SeqInitial+1 (docs/protocol.md §4.5).
	SeqInitial uint32 = 0xFFFFFFF0

	// TickMsDefault is the tick interval when the first JOIN has none
	// (docs/protocol.md §4.2; the reference crashes instead, quirk Q1).
	TickMsDefault = 200

	// ScaleMin and ScaleMax clamp the time scale (docs/protocol.md §4.1).
	ScaleMin = 1.0 / 64
	ScaleMax = 64.0
)
