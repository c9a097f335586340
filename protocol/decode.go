package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Client actions (docs/protocol.md §6).
const (
	ActionJoin  = "JOIN"
	ActionSend  = "SEND"
	ActionTutti = "TUTTI"
	ActionTicks = "TICKS"
	ActionSnap  = "SNAP"
	ActionSave  = "SAVE"
	ActionPing  = "PING"
	ActionPulse = "PULSE"
	ActionLog   = "LOG"
)

// ClientFrame is the envelope of one client frame:
// {"id": ..., "action": ..., "args": ..., "tags": ...}. The id is ignored
// (the session is the one from the connection URL, docs/protocol.md §3.4).
type ClientFrame struct {
	Action string
	// Args is the raw JSON of "args", nil when absent.
	Args json.RawMessage
	// Tags are the SEND tags (docs/protocol.md §6.2); zero when absent.
	Tags Tags
}

// Tags are the optional SEND tags.
type Tags struct {
	// DebounceMs and MsgID: drop this SEND if one with the same MsgID was
	// accepted less than DebounceMs ago. Zero DebounceMs means no debounce.
	DebounceMs int64
	MsgID      string
}

type rawEnvelope struct {
	Action json.RawMessage `json:"action"`
	Args   json.RawMessage `json:"args"`
	Tags   json.RawMessage `json:"tags"`
}

// DecodeClientFrame parses one client frame. It checks the frame size, UTF-8
// validity (the frame's bytes are relayed to other clients verbatim), that
// the frame is a JSON object and that "action" is a string. The returned
// frame does not share memory with data.
func DecodeClientFrame(data []byte) (ClientFrame, error) {
	return decodeClientFrame(data, true)
}

// decodeClientFrame is DecodeClientFrame; with fast false it uses only
// encoding/json (the reference the fast path is tested against).
func decodeClientFrame(data []byte, fast bool) (ClientFrame, error) {
	if len(data) > FrameBytesMax {
		return ClientFrame{}, &Error{Code: CloseMalformed, Field: "frame",
			Rule: fmt.Sprintf("at most %d bytes (FrameBytesMax)", FrameBytesMax), Value: strconv.Itoa(len(data)) + " bytes"}
	}
	if !utf8.Valid(data) {
		return ClientFrame{}, &Error{Code: CloseMalformed, Field: "frame", Rule: "valid UTF-8"}
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ClientFrame{}, malformed("frame", "a JSON object", data)
	}
	if fast {
		if envelope, ok := scanEnvelope(trimmed); ok {
			return clientFrameFromEnvelope(envelope, true)
		}
	}
	var envelope rawEnvelope
	if err := json.Unmarshal(data, &envelope); err != nil {
		return ClientFrame{}, &Error{Code: CloseMalformed, Field: "frame", Rule: "valid JSON", Value: jsonErrorText(err)}
	}
	return clientFrameFromEnvelope(envelope, false)
}

// clientFrameFromEnvelope checks and converts the envelope's raw values;
// aliased is true when they share memory with the frame's bytes.
func clientFrameFromEnvelope(envelope rawEnvelope, aliased bool) (ClientFrame, error) {
	var frame ClientFrame
	if action, known := knownAction(envelope.Action); known {
		frame.Action = action
	} else {
		action, err := decodeStringValue("action", envelope.Action, actionBytesMax, "actionBytesMax")
		if err != nil {
			return ClientFrame{}, err
		}
		frame.Action = action
	}
	switch {
	case isNull(envelope.Args):
		frame.Args = nil
	case aliased:
		frame.Args = append(json.RawMessage(nil), envelope.Args...)
	default:
		frame.Args = envelope.Args
	}
	if !isNull(envelope.Tags) {
		tags, err := decodeTags(envelope.Tags)
		if err != nil {
			return ClientFrame{}, err
		}
		frame.Tags = tags
	}
	return frame, nil
}

func decodeTags(raw json.RawMessage) (Tags, error) {
	var fields struct {
		Debounce json.RawMessage `json:"debounce"`
		MsgID    json.RawMessage `json:"msgID"`
	}
	if err := decodeObject("tags", raw, &fields); err != nil {
		return Tags{}, err
	}
	var tags Tags
	if !isNull(fields.Debounce) {
		debounce, err := decodeNumber("tags.debounce", fields.Debounce, 0, DebounceMsMax)
		if err != nil {
			return Tags{}, err
		}
		tags.DebounceMs = int64(debounce)
	}
	if !isNull(fields.MsgID) {
		if err := decodeString("tags.msgID", fields.MsgID, &tags.MsgID, MsgIDBytesMax, "MsgIDBytesMax"); err != nil {
			return Tags{}, err
		}
	}
	return tags, nil
}

// Join is the decoded JOIN args (docs/protocol.md §6.1).
type Join struct {
	Name, AppID, PersistentID, URL, SDK, DeveloperID, CodeHash string
	// Tove is the password-check token, stored from the session-creating JOIN.
	Tove string
	// User is the raw JSON identity echoed in users messages; nil when the
	// client sent none or a falsy value.
	User json.RawMessage
	// TickMs and DelayMs are from args.ticks; HasTicks is false without it.
	HasTicks bool
	TickMs   float64
	DelayMs  float64
	// LeaveDelayMs is args.leaveDelay (0 when absent).
	LeaveDelayMs int64
	Location     bool
	// Flags holds the known flags the client asked for.
	Flags Flags
	// Ephemeral: the client asks for the ephemeral channel (a truthy
	// "ephemeral", a Metronome extension, docs/protocol.md §22). The
	// Croquet client sends no such field.
	Ephemeral bool
}

// Flags are the JOIN feature flags Metronome knows (docs/protocol.md §6.1).
type Flags struct {
	Microverse bool
}

type rawJoin struct {
	Version      json.RawMessage `json:"version"`
	APIKey       json.RawMessage `json:"apiKey"`
	Name         json.RawMessage `json:"name"`
	AppID        json.RawMessage `json:"appId"`
	PersistentID json.RawMessage `json:"persistentId"`
	URL          json.RawMessage `json:"url"`
	SDK          json.RawMessage `json:"sdk"`
	DeveloperID  json.RawMessage `json:"developerId"`
	CodeHash     json.RawMessage `json:"codeHash"`
	Tove         json.RawMessage `json:"tove"`
	User         json.RawMessage `json:"user"`
	Ticks        json.RawMessage `json:"ticks"`
	LeaveDelay   json.RawMessage `json:"leaveDelay"`
	Location     json.RawMessage `json:"location"`
	Flags        json.RawMessage `json:"flags"`
	Ephemeral    json.RawMessage `json:"ephemeral"`
}

// DecodeJoin parses JOIN args. A missing or falsy version closes with 4100
// and a missing apiKey with 4103, as the reference does; every other
// violation closes with 4102 naming the field.
func DecodeJoin(args json.RawMessage) (Join, error) {
	if len(args) == 0 || args[0] != '{' {
		return Join{}, &Error{Code: CloseOutdatedProtocol, Field: "args", Rule: "an object with a truthy version", Value: display(args)}
	}
	var raw rawJoin
	if err := json.Unmarshal(args, &raw); err != nil {
		return Join{}, &Error{Code: CloseOutdatedProtocol, Field: "args", Rule: "an object", Value: jsonErrorText(err)}
	}
	if !truthy(raw.Version) {
		return Join{}, &Error{Code: CloseOutdatedProtocol, Field: "args.version", Rule: "present and truthy", Value: display(raw.Version)}
	}
	if raw.APIKey == nil {
		return Join{}, &Error{Code: CloseBadAPIKey, Field: "args.apiKey", Rule: "present (\"none\" for self-hosted clients)"}
	}
	var join Join
	strings := []struct {
		field string
		raw   json.RawMessage
		dst   *string
	}{
		{"args.name", raw.Name, &join.Name},
		{"args.appId", raw.AppID, &join.AppID},
		{"args.persistentId", raw.PersistentID, &join.PersistentID},
		{"args.url", raw.URL, &join.URL},
		{"args.sdk", raw.SDK, &join.SDK},
		{"args.developerId", raw.DeveloperID, &join.DeveloperID},
		{"args.codeHash", raw.CodeHash, &join.CodeHash},
		{"args.tove", raw.Tove, &join.Tove},
	}
	for _, s := range strings {
		if isNull(s.raw) {
			continue
		}
		if err := decodeString(s.field, s.raw, s.dst, StringFieldBytesMax, "StringFieldBytesMax"); err != nil {
			return Join{}, err
		}
	}
	if truthy(raw.User) {
		if len(raw.User) > UserBytesMax {
			return Join{}, &Error{Code: CloseMalformed, Field: "args.user",
				Rule: fmt.Sprintf("at most %d bytes of JSON (UserBytesMax)", UserBytesMax), Value: strconv.Itoa(len(raw.User)) + " bytes"}
		}
		join.User = compactJSON(raw.User)
	}
	if !isNull(raw.Ticks) {
		if err := decodeJoinTicks(raw.Ticks, &join); err != nil {
			return Join{}, err
		}
	}
	if !isNull(raw.LeaveDelay) {
		leaveDelay, err := decodeNumber("args.leaveDelay", raw.LeaveDelay, 0, LeaveDelayMsMax)
		if err != nil {
			return Join{}, err
		}
		join.LeaveDelayMs = int64(leaveDelay)
	}
	join.Location = truthy(raw.Location)
	join.Ephemeral = truthy(raw.Ephemeral)
	if !isNull(raw.Flags) {
		var flags map[string]json.RawMessage
		if err := decodeObject("args.flags", raw.Flags, &flags); err != nil {
			return Join{}, err
		}
		join.Flags.Microverse = truthy(flags["microverse"])
	}
	return join, nil
}

func decodeJoinTicks(raw json.RawMessage, join *Join) error {
	var ticks struct {
		Tick  json.RawMessage `json:"tick"`
		Delay json.RawMessage `json:"delay"`
	}
	if err := decodeObject("args.ticks", raw, &ticks); err != nil {
		return err
	}
	join.HasTicks = true
	join.TickMs = TickMsDefault
	if !isNull(ticks.Tick) {
		tick, err := decodeNumber("args.ticks.tick", ticks.Tick, TickMsMin, TickMsMax)
		if err != nil {
			return err
		}
		join.TickMs = tick
	}
	if !isNull(ticks.Delay) {
		delay, err := decodeNumber("args.ticks.delay", ticks.Delay, 0, DelayMsMax)
		if err != nil {
			return err
		}
		join.DelayMs = delay
	}
	return nil
}

// Message is a client message array [time, seq, payload, ...extra]
// (docs/protocol.md §4.4). Time and seq are overwritten by the reflector.
type Message struct {
	// Payload is the raw JSON string token of element 2 (quotes included),
	// relayed verbatim.
	Payload json.RawMessage
	// Extra holds elements 3.. verbatim (standard clients send their
	// latency in ms as element 3).
	Extra []json.RawMessage
}

// LatencyMs returns the sender's measured latency (the last element, docs/protocol.md
// §6.2) if it is a number in (0, 60000).
func (m *Message) LatencyMs() (float64, bool) {
	if len(m.Extra) == 0 {
		return 0, false
	}
	value, err := strconv.ParseFloat(string(m.Extra[len(m.Extra)-1]), 64)
	if err != nil || !(value > 0 && value < 60000) {
		return 0, false
	}
	return value, true
}

// DecodeMessage parses a message array. The payload must be a string: object
// payloads are reserved for messages the reflector generates (users, tally),
// so a client cannot forge them. The message may share memory with raw.
func DecodeMessage(field string, raw json.RawMessage) (Message, error) {
	return decodeMessage(field, raw, true)
}

// decodeMessage is DecodeMessage; with fast false it uses only encoding/json
// (the reference the fast path is tested against).
func decodeMessage(field string, raw json.RawMessage, fast bool) (Message, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return Message{}, malformed(field, "a message array [time, seq, payload, ...]", raw)
	}
	if fast {
		if message, ok := decodeMessageFast(raw); ok {
			return message, nil
		}
	}
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil {
		return Message{}, malformed(field, "a JSON array", raw)
	}
	if len(elements) < 3 || len(elements) > MessageElementsMax {
		return Message{}, &Error{Code: CloseMalformed, Field: field,
			Rule: fmt.Sprintf("an array of 3 to %d elements (MessageElementsMax)", MessageElementsMax), Value: strconv.Itoa(len(elements)) + " elements"}
	}
	payload := elements[2]
	if len(payload) == 0 || payload[0] != '"' {
		return Message{}, malformed(field+"[2]", "a string payload (object payloads are reserved for the reflector)", payload)
	}
	if len(payload) > PayloadBytesMax {
		return Message{}, &Error{Code: CloseMalformed, Field: field + "[2]",
			Rule: fmt.Sprintf("at most %d bytes (PayloadBytesMax)", PayloadBytesMax), Value: strconv.Itoa(len(payload)) + " bytes"}
	}
	message := Message{Payload: payload}
	if len(elements) > 3 {
		message.Extra = make([]json.RawMessage, len(elements)-3)
		for i, extra := range elements[3:] {
			message.Extra[i] = compactJSON(extra)
		}
	}
	return message, nil
}

// Tutti is a decoded TUTTI vote (docs/protocol.md §6.3).
type Tutti struct {
	SendTime int64
	// Vote is the vote payload, tallied by exact string equality.
	Vote string
	// FirstMessage, when non-nil, is broadcast once by the first voter.
	FirstMessage *Message
	WantsVote    bool
	// TallyTarget is echoed verbatim in the tally message (null when absent).
	TallyTarget json.RawMessage
	Key         string
}

// DecodeTutti parses TUTTI args
// [sendTime, 0, vote, firstMsg|null, wantsVote, tallyTarget, tuttiKey].
func DecodeTutti(args json.RawMessage) (Tutti, error) {
	if len(args) == 0 || args[0] != '[' {
		return Tutti{}, malformed("args", "a TUTTI array [sendTime, 0, vote, firstMsg, wantsVote, tallyTarget, key]", args)
	}
	var elements []json.RawMessage
	if err := json.Unmarshal(args, &elements); err != nil {
		return Tutti{}, malformed("args", "a JSON array", args)
	}
	if len(elements) != 7 {
		return Tutti{}, &Error{Code: CloseMalformed, Field: "args", Rule: "an array of 7 elements", Value: strconv.Itoa(len(elements)) + " elements"}
	}
	var tutti Tutti
	sendTime, err := decodeNumber("args[0]", elements[0], 0, math.MaxInt64/2)
	if err != nil {
		return Tutti{}, err
	}
	tutti.SendTime = int64(sendTime)
	if err := decodeString("args[2]", elements[2], &tutti.Vote, VotePayloadBytesMax, "VotePayloadBytesMax"); err != nil {
		return Tutti{}, err
	}
	if !isNull(elements[3]) {
		first, err := DecodeMessage("args[3]", elements[3])
		if err != nil {
			return Tutti{}, err
		}
		tutti.FirstMessage = &first
	}
	tutti.WantsVote = truthy(elements[4])
	tutti.TallyTarget = compactJSON(elements[5])
	if len(tutti.TallyTarget) > StringFieldBytesMax {
		return Tutti{}, &Error{Code: CloseMalformed, Field: "args[5]",
			Rule: fmt.Sprintf("at most %d bytes (StringFieldBytesMax)", StringFieldBytesMax), Value: strconv.Itoa(len(tutti.TallyTarget)) + " bytes"}
	}
	if err := decodeString("args[6]", elements[6], &tutti.Key, TuttiKeyBytesMax, "TuttiKeyBytesMax"); err != nil {
		return Tutti{}, err
	}
	if tutti.Key == "" {
		return Tutti{}, malformed("args[6]", "a non-empty TUTTI key", elements[6])
	}
	return tutti, nil
}

// Snap is a decoded SNAP (docs/protocol.md §6.5).
type Snap struct {
	Time      int64
	Seq       uint32
	Hash      string
	URL       string
	Dissident bool
}

// DecodeSnap parses SNAP args {time, seq, hash, url, dissident}.
func DecodeSnap(args json.RawMessage) (Snap, error) {
	var raw struct {
		Time      json.RawMessage `json:"time"`
		Seq       json.RawMessage `json:"seq"`
		Hash      json.RawMessage `json:"hash"`
		URL       json.RawMessage `json:"url"`
		Dissident json.RawMessage `json:"dissident"`
	}
	if err := decodeObject("args", args, &raw); err != nil {
		return Snap{}, err
	}
	var snap Snap
	snapTime, err := decodeNumber("args.time", raw.Time, 0, math.MaxInt64/2)
	if err != nil {
		return Snap{}, err
	}
	snap.Time = int64(math.Ceil(snapTime))
	seq, err := decodeNumber("args.seq", raw.Seq, 0, math.MaxUint32)
	if err != nil {
		return Snap{}, err
	}
	if seq != math.Trunc(seq) {
		return Snap{}, malformed("args.seq", "an integer", raw.Seq)
	}
	snap.Seq = uint32(seq)
	if !isNull(raw.Hash) {
		if err := decodeString("args.hash", raw.Hash, &snap.Hash, StringFieldBytesMax, "StringFieldBytesMax"); err != nil {
			return Snap{}, err
		}
	}
	if err := decodeString("args.url", raw.URL, &snap.URL, StringFieldBytesMax, "StringFieldBytesMax"); err != nil {
		return Snap{}, err
	}
	if snap.URL == "" {
		return Snap{}, malformed("args.url", "a non-empty URL", raw.URL)
	}
	snap.Dissident = truthy(raw.Dissident)
	return snap, nil
}

// Save is a decoded SAVE (docs/protocol.md §6.6).
type Save struct {
	PersistTime int64
	URL         string
	Dissident   bool
}

// DecodeSave parses SAVE args {persistTime, url, dissident}.
func DecodeSave(args json.RawMessage) (Save, error) {
	var raw struct {
		PersistTime json.RawMessage `json:"persistTime"`
		URL         json.RawMessage `json:"url"`
		Dissident   json.RawMessage `json:"dissident"`
	}
	if err := decodeObject("args", args, &raw); err != nil {
		return Save{}, err
	}
	var save Save
	if !isNull(raw.PersistTime) {
		persistTime, err := decodeNumber("args.persistTime", raw.PersistTime, 0, math.MaxInt64/2)
		if err != nil {
			return Save{}, err
		}
		save.PersistTime = int64(persistTime)
	}
	if err := decodeString("args.url", raw.URL, &save.URL, StringFieldBytesMax, "StringFieldBytesMax"); err != nil {
		return Save{}, err
	}
	if save.URL == "" {
		return Save{}, malformed("args.url", "a non-empty URL", raw.URL)
	}
	save.Dissident = truthy(raw.Dissident)
	return save, nil
}

// Ticks is a decoded TICKS (docs/protocol.md §6.4). Zero fields were absent.
type Ticks struct {
	TickMs  float64
	DelayMs float64
	Scale   float64
}

// DecodeTicks parses TICKS args {tick?, delay?, scale?}.
func DecodeTicks(args json.RawMessage) (Ticks, error) {
	var raw struct {
		Tick  json.RawMessage `json:"tick"`
		Delay json.RawMessage `json:"delay"`
		Scale json.RawMessage `json:"scale"`
	}
	if err := decodeObject("args", args, &raw); err != nil {
		return Ticks{}, err
	}
	var ticks Ticks
	var err error
	if !isNull(raw.Tick) {
		if ticks.TickMs, err = decodeNumber("args.tick", raw.Tick, TickMsMin, TickMsMax); err != nil {
			return Ticks{}, err
		}
	}
	if !isNull(raw.Delay) {
		if ticks.DelayMs, err = decodeNumber("args.delay", raw.Delay, 0, DelayMsMax); err != nil {
			return Ticks{}, err
		}
	}
	if !isNull(raw.Scale) {
		if ticks.Scale, err = decodeNumber("args.scale", raw.Scale, 0, math.MaxFloat64); err != nil {
			return Ticks{}, err
		}
	}
	return ticks, nil
}

// --- helpers ---

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// truthy reports whether a JSON value is truthy in JavaScript.
func truthy(raw json.RawMessage) bool {
	if isNull(raw) {
		return false
	}
	switch raw[0] {
	case 'f':
		return false
	case '"':
		return len(raw) > 2
	case '{', '[', 't':
		return true
	}
	value, err := strconv.ParseFloat(string(raw), 64)
	if errors.Is(err, strconv.ErrRange) {
		return value != 0 // ±Inf (1e400) is truthy in JavaScript; 1e-400 is 0
	}
	return err == nil && value != 0
}

func decodeObject(field string, raw json.RawMessage, dst any) error {
	if len(raw) == 0 || raw[0] != '{' {
		return malformed(field, "an object", raw)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return malformed(field, "an object with fields of the right types", raw)
	}
	return nil
}

// actionBytesMax bounds the action name (the longest real one is 5 bytes).
const actionBytesMax = 64

func decodeString(field string, raw json.RawMessage, dst *string, bytesMax int, limitName string) error {
	value, err := decodeStringValue(field, raw, bytesMax, limitName)
	if err != nil {
		return err
	}
	*dst = value
	return nil
}

func decodeStringValue(field string, raw json.RawMessage, bytesMax int, limitName string) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", malformed(field, "a string", raw)
	}
	if len(raw) > bytesMax+2 {
		return "", &Error{Code: CloseMalformed, Field: field,
			Rule: fmt.Sprintf("a string of at most %d bytes (%s)", bytesMax, limitName), Value: strconv.Itoa(len(raw)) + " bytes"}
	}
	if value, ok := unquoteFast(raw); ok {
		return value, nil
	}
	value, ok := unquoteJSON(raw)
	if !ok {
		return "", malformed(field, "a string", raw)
	}
	return value, nil
}

// unquoteJSON decodes a JSON string token with encoding/json.
func unquoteJSON(raw json.RawMessage) (string, bool) {
	var value string
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", false
	}
	return value, true
}

// decodeNumber parses a JSON number in [minimum, maximum]. JSON cannot carry
// NaN or infinities; strings such as "NaN" fail as non-numbers.
func decodeNumber(field string, raw json.RawMessage, minimum, maximum float64) (float64, error) {
	rule := fmt.Sprintf("a number in [%g, %g]", minimum, maximum)
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return 0, malformed(field, rule, raw)
	}
	value, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(value) || math.IsInf(value, 0) || value < minimum || value > maximum {
		return 0, malformed(field, rule, raw)
	}
	return value, nil
}

// compactJSON removes insignificant whitespace so relayed values are
// byte-stable; it returns raw unchanged if it is already compact.
func compactJSON(raw json.RawMessage) json.RawMessage {
	if bytes.IndexAny(raw, " \t\r\n") < 0 {
		return raw
	}
	var buffer bytes.Buffer
	if err := json.Compact(&buffer, raw); err != nil {
		return raw
	}
	return buffer.Bytes()
}

func jsonErrorText(err error) string {
	text := err.Error()
	if len(text) > displayValueBytesMax*2 {
		text = text[:displayValueBytesMax*2]
	}
	return text
}
