package protocol

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Reflector actions (docs/protocol.md §6B).
const (
	ActionSync = "SYNC"
	ActionRecv = "RECV"
	ActionTick = "TICK"
	ActionInfo = "INFO"
	ActionRequ = "REQU"
	ActionPong = "PONG"
)

// AppendMessage appends a stamped message array
// [time, seq, payload, ...extra] to dst.
func AppendMessage(dst []byte, time int64, seq uint32, payload json.RawMessage, extra []json.RawMessage) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, time, 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, ',')
	dst = append(dst, payload...)
	for _, element := range extra {
		dst = append(dst, ',')
		dst = append(dst, element...)
	}
	return append(dst, ']')
}

func appendHeader(dst []byte, sessionID, action string) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendJSString(dst, sessionID)
	dst = append(dst, `,"action":"`...)
	dst = append(dst, action...)
	return append(dst, '"')
}

// AppendRecv appends {"id":sid,"action":"RECV","args":message}.
func AppendRecv(dst []byte, sessionID string, message []byte) []byte {
	dst = appendHeader(dst, sessionID, ActionRecv)
	dst = append(dst, `,"args":`...)
	dst = append(dst, message...)
	return append(dst, '}')
}

// RecvSize is the length of the RECV frame AppendRecv writes for a session
// id that needs no escaping; use it to size the buffer.
func RecvSize(sessionID string, message []byte) int {
	return len(`{"id":"","action":"RECV","args":}`) + len(sessionID) + len(message)
}

// AppendTick appends {"id":sid,"action":"TICK","args":time}.
func AppendTick(dst []byte, sessionID string, time int64) []byte {
	dst = appendHeader(dst, sessionID, ActionTick)
	dst = append(dst, `,"args":`...)
	dst = strconv.AppendInt(dst, time, 10)
	return append(dst, '}')
}

// AppendRequ appends {"id":sid,"action":"REQU"}.
func AppendRequ(dst []byte, sessionID string) []byte {
	return append(appendHeader(dst, sessionID, ActionRequ), '}')
}

// Info levels.
const (
	LevelWarning = "warning"
	LevelError   = "error"
)

// AppendInfo appends an INFO frame {code, msg, options: {level}}.
func AppendInfo(dst []byte, sessionID, code, message, level string) []byte {
	dst = appendHeader(dst, sessionID, ActionInfo)
	dst = append(dst, `,"args":{"code":`...)
	dst = AppendJSString(dst, code)
	dst = append(dst, `,"msg":`...)
	dst = AppendJSString(dst, message)
	dst = append(dst, `,"options":{"level":`...)
	dst = AppendJSString(dst, level)
	return append(dst, "}}}"...)
}

// AppendPong appends {"action":"PONG","args":args} (no id, docs/protocol.md §3.4).
func AppendPong(dst []byte, args json.RawMessage) []byte {
	dst = append(dst, `{"action":"PONG"`...)
	if len(args) > 0 {
		dst = append(dst, `,"args":`...)
		dst = append(dst, args...)
	}
	return append(dst, '}')
}

// Sync is the content of a SYNC frame (docs/protocol.md §8.1).
type Sync struct {
	URL string
	// Messages are encoded message arrays, in seq order.
	Messages  [][]byte
	Time      int64
	Seq       uint32
	Tove      string // omitted when empty
	Reflector string
	Timeline  string
	Flags     Flags
	// HasSnapshot adds snapshotTime and snapshotSeq.
	HasSnapshot  bool
	SnapshotTime int64
	SnapshotSeq  uint32
	// Persisted marks URL as persisted data rather than a snapshot.
	Persisted bool
}

// AppendSync appends a SYNC frame.
func AppendSync(dst []byte, sessionID string, sync *Sync) []byte {
	dst = AppendSyncHead(dst, sessionID, sync)
	for i, message := range sync.Messages {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, message...)
	}
	return AppendSyncTail(dst, sync)
}

// AppendSyncHead appends the part of a SYNC frame before its messages. A
// SYNC is AppendSyncHead, the messages joined by commas, AppendSyncTail;
// a server can write the messages from where they are stored (writev)
// instead of copying megabytes into one frame.
func AppendSyncHead(dst []byte, sessionID string, sync *Sync) []byte {
	dst = appendHeader(dst, sessionID, ActionSync)
	dst = append(dst, `,"args":{"url":`...)
	dst = AppendJSString(dst, sync.URL)
	return append(dst, `,"messages":[`...)
}

// AppendSyncTail appends the part of a SYNC frame after its messages.
func AppendSyncTail(dst []byte, sync *Sync) []byte {
	dst = append(dst, `],"time":`...)
	dst = strconv.AppendInt(dst, sync.Time, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, uint64(sync.Seq), 10)
	if sync.Tove != "" {
		dst = append(dst, `,"tove":`...)
		dst = AppendJSString(dst, sync.Tove)
	}
	dst = append(dst, `,"reflector":`...)
	dst = AppendJSString(dst, sync.Reflector)
	dst = append(dst, `,"timeline":`...)
	dst = AppendJSString(dst, sync.Timeline)
	dst = append(dst, `,"flags":{`...)
	if sync.Flags.Microverse {
		dst = append(dst, `"microverse":true`...)
	}
	dst = append(dst, '}')
	if sync.HasSnapshot {
		dst = append(dst, `,"snapshotTime":`...)
		dst = strconv.AppendInt(dst, sync.SnapshotTime, 10)
		dst = append(dst, `,"snapshotSeq":`...)
		dst = strconv.AppendUint(dst, uint64(sync.SnapshotSeq), 10)
	}
	if sync.Persisted {
		dst = append(dst, `,"persisted":true`...)
	}
	return append(dst, "}}"...)
}

// UsersPayload encodes a users payload object (docs/protocol.md §7.3). joined and left
// hold the raw JSON user values; empty lists are omitted.
func UsersPayload(active, total int, joined, left []json.RawMessage) []byte {
	payload := make([]byte, 0, 64)
	payload = append(payload, `{"what":"users","active":`...)
	payload = strconv.AppendInt(payload, int64(active), 10)
	payload = append(payload, `,"total":`...)
	payload = strconv.AppendInt(payload, int64(total), 10)
	payload = appendRawList(payload, "joined", joined)
	payload = appendRawList(payload, "left", left)
	return appendSize(payload)
}

func appendRawList(dst []byte, name string, values []json.RawMessage) []byte {
	if len(values) == 0 {
		return dst
	}
	dst = append(dst, `,"`...)
	dst = append(dst, name...)
	dst = append(dst, `":[`...)
	for i, value := range values {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, value...)
	}
	return append(dst, ']')
}

// VoteCount is one entry of a tally, in the order votes first arrived.
type VoteCount struct {
	Vote  string
	Count int
}

// TallyPayload encodes a tally payload object (docs/protocol.md §7.4).
func TallyPayload(sendTime int64, votes []VoteCount, tallyTarget json.RawMessage, key string, missingClients int) []byte {
	payload := make([]byte, 0, 128)
	payload = append(payload, `{"what":"tally","sendTime":`...)
	payload = strconv.AppendInt(payload, sendTime, 10)
	payload = append(payload, `,"tally":{`...)
	for i, vote := range votes {
		if i > 0 {
			payload = append(payload, ',')
		}
		payload = AppendJSString(payload, vote.Vote)
		payload = append(payload, ':')
		payload = strconv.AppendInt(payload, int64(vote.Count), 10)
	}
	payload = append(payload, `},"tallyTarget":`...)
	if len(tallyTarget) == 0 {
		payload = append(payload, "null"...)
	} else {
		payload = append(payload, tallyTarget...)
	}
	payload = append(payload, `,"tuttiKey":`...)
	payload = AppendJSString(payload, key)
	payload = append(payload, `,"missingClients":`...)
	payload = strconv.AppendInt(payload, int64(missingClients), 10)
	return appendSize(payload)
}

// appendSize closes an object payload with "_size": the length, in UTF-16
// code units as JavaScript counts, of its JSON without _size (docs/protocol.md §7.2).
// payload must be an object missing its final '}'.
func appendSize(payload []byte) []byte {
	size := utf16Length(payload) + 1 // the closing brace
	payload = append(payload, `,"_size":`...)
	payload = strconv.AppendInt(payload, int64(size), 10)
	return append(payload, '}')
}

func utf16Length(text []byte) int {
	length := 0
	for len(text) > 0 {
		r, size := utf8.DecodeRune(text)
		text = text[size:]
		length++
		if r > 0xFFFF {
			length++
		}
	}
	return length
}

const hexDigits = "0123456789abcdef"

// AppendJSString appends s as a JSON string the way JavaScript's
// JSON.stringify writes it: only '"', '\\' and control characters are
// escaped; other characters, including '<', '>' and '&', are kept.
func AppendJSString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
