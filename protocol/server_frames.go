package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// This file is the client's side of the wire: decoding what a reflector
// sends (SYNC, RECV, TICK, INFO, REQU, PONG) and encoding what a client
// sends. The Go client (client/link) and the simulator use it; the
// reflector never does.

// StampedMessage is a message array as the reflector delivers it:
// [time, seq, payload, ...extra].
type StampedMessage struct {
	Time int64
	Seq  uint32
	// Payload is element 2 verbatim: a JSON string for client messages, an
	// object for messages the reflector generates (users, tally).
	Payload json.RawMessage
	// Extra holds elements 3.. verbatim.
	Extra []json.RawMessage
}

// ServerFrame is one decoded reflector frame. Which fields are set depends
// on Action.
type ServerFrame struct {
	Action string
	// Sync is set for SYNC.
	Sync *ServerSync
	// Message is set for RECV.
	Message StampedMessage
	// Time is set for TICK.
	Time int64
	// Info is set for INFO.
	Info Info
	// Ephemeral is set for EPHM (only sent to clients that asked for the
	// ephemeral channel, docs/protocol.md §22).
	Ephemeral ServerEphemeral
}

// ServerSync is a decoded SYNC (docs/protocol.md §8.1).
type ServerSync struct {
	URL          string
	Messages     []StampedMessage
	Time         int64
	Seq          uint32
	Tove         string
	Timeline     string
	HasSnapshot  bool
	SnapshotTime int64
	SnapshotSeq  uint32
	Persisted    bool
}

// Info is a decoded INFO (docs/protocol.md §6B).
type Info struct {
	Code    string `json:"code"`
	Message string `json:"msg"`
}

// UsersChange is a decoded users payload (docs/protocol.md §7.3). Joined and Left hold
// the raw JSON user values.
// UsersChange is the payload of a users message: how many synced members
// are announced (active) and connected (total), and the raw JSON "user"
// values of the JOINs of the members that joined and left (docs/protocol.md
// §10.1): whatever each client sent, unparsed.
type UsersChange struct {
	Active int               `json:"active"`
	Total  int               `json:"total"`
	Joined []json.RawMessage `json:"joined"`
	Left   []json.RawMessage `json:"left"`
}

// serverFrameError builds the error a client reports for a reflector frame
// it cannot use. The close code is the client-side error code (docs/protocol.md §5.2).
func serverFrameError(field, rule string, value []byte) error {
	return &Error{Code: CloseClientError, Field: field, Rule: rule, Value: display(value)}
}

// DecodeServerFrame decodes one frame sent by a reflector.
func DecodeServerFrame(data []byte) (ServerFrame, error) {
	var envelope struct {
		Action string          `json:"action"`
		Args   json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(data, &envelope); err != nil {
		return ServerFrame{}, serverFrameError("frame", "a JSON object with a string action", data)
	}
	frame := ServerFrame{Action: envelope.Action}
	switch envelope.Action {
	case ActionRecv:
		message, err := DecodeStampedMessage("args", envelope.Args)
		if err != nil {
			return ServerFrame{}, err
		}
		frame.Message = message
	case ActionTick:
		t, err := strconv.ParseInt(string(envelope.Args), 10, 64)
		if err != nil {
			return ServerFrame{}, serverFrameError("args", "an integer session time", envelope.Args)
		}
		frame.Time = t
	case ActionSync:
		sync, err := decodeServerSync(envelope.Args)
		if err != nil {
			return ServerFrame{}, err
		}
		frame.Sync = sync
	case ActionInfo:
		if err := json.Unmarshal(envelope.Args, &frame.Info); err != nil {
			return ServerFrame{}, serverFrameError("args", "an INFO object", envelope.Args)
		}
	case ActionEphemeral:
		ephemeral, err := decodeServerEphemeral(envelope.Args)
		if err != nil {
			return ServerFrame{}, err
		}
		frame.Ephemeral = ephemeral
	case ActionRequ, ActionPong:
	default:
		return ServerFrame{}, serverFrameError("action", "SYNC, RECV, TICK, INFO, REQU, PONG or EPHM", []byte(envelope.Action))
	}
	return frame, nil
}

// DecodeStampedMessage decodes a delivered message array.
func DecodeStampedMessage(field string, raw json.RawMessage) (StampedMessage, error) {
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil || len(elements) < 3 {
		return StampedMessage{}, serverFrameError(field, "a message array [time, seq, payload, ...]", raw)
	}
	t, err := strconv.ParseInt(string(elements[0]), 10, 64)
	if err != nil {
		return StampedMessage{}, serverFrameError(field+"[0]", "an integer time", elements[0])
	}
	seq, err := strconv.ParseUint(string(elements[1]), 10, 32)
	if err != nil {
		return StampedMessage{}, serverFrameError(field+"[1]", "a uint32 seq", elements[1])
	}
	message := StampedMessage{Time: t, Seq: uint32(seq), Payload: elements[2]}
	if len(elements) > 3 {
		message.Extra = elements[3:]
	}
	return message, nil
}

func decodeServerSync(raw json.RawMessage) (*ServerSync, error) {
	var args struct {
		URL          string            `json:"url"`
		Messages     []json.RawMessage `json:"messages"`
		Time         *int64            `json:"time"`
		Seq          *uint32           `json:"seq"`
		Tove         string            `json:"tove"`
		Timeline     string            `json:"timeline"`
		SnapshotTime *int64            `json:"snapshotTime"`
		SnapshotSeq  *uint32           `json:"snapshotSeq"`
		Persisted    bool              `json:"persisted"`
	}
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, serverFrameError("args", "a SYNC object", raw)
	}
	if args.Time == nil || args.Seq == nil {
		return nil, serverFrameError("args", "a SYNC with time and seq", raw)
	}
	sync := &ServerSync{URL: args.URL, Time: *args.Time, Seq: *args.Seq, Tove: args.Tove,
		Timeline: args.Timeline, Persisted: args.Persisted}
	if args.SnapshotTime != nil && args.SnapshotSeq != nil {
		sync.HasSnapshot = true
		sync.SnapshotTime = *args.SnapshotTime
		sync.SnapshotSeq = *args.SnapshotSeq
	}
	sync.Messages = make([]StampedMessage, len(args.Messages))
	for i, element := range args.Messages {
		message, err := DecodeStampedMessage(fmt.Sprintf("args.messages[%d]", i), element)
		if err != nil {
			return nil, err
		}
		sync.Messages[i] = message
	}
	return sync, nil
}

// DecodeUsers decodes a users payload; ok is false if payload is not one.
func DecodeUsers(payload json.RawMessage) (UsersChange, bool) {
	if len(payload) == 0 || payload[0] != '{' || !bytes.Contains(payload, []byte(`"users"`)) {
		return UsersChange{}, false
	}
	var change struct {
		What string `json:"what"`
		UsersChange
	}
	if err := json.Unmarshal(payload, &change); err != nil || change.What != "users" {
		return UsersChange{}, false
	}
	return change.UsersChange, true
}

// JoinRequest is what a client puts into its JOIN (docs/protocol.md §6.1, §17B.1).
type JoinRequest struct {
	Name, AppID, PersistentID, URL, SDK string
	// User is the raw JSON user value (a JSON string viewId, or
	// {"id": ..., "data": ...}).
	User         json.RawMessage
	TickMs       int64
	DelayMs      int64
	Tove         string
	LeaveDelayMs int64
	// Ephemeral asks for the ephemeral channel (docs/protocol.md §22):
	// the reflector then relays other members' EPHM frames to this client.
	Ephemeral bool
}

// AppendJoinFrame appends a JOIN frame.
func AppendJoinFrame(dst []byte, sessionID string, join *JoinRequest) []byte {
	dst = appendHeader(dst, sessionID, ActionJoin)
	dst = append(dst, `,"args":{"version":1,"apiKey":"none","name":`...)
	dst = AppendJSString(dst, join.Name)
	dst = append(dst, `,"appId":`...)
	dst = AppendJSString(dst, join.AppID)
	dst = append(dst, `,"persistentId":`...)
	dst = AppendJSString(dst, join.PersistentID)
	dst = append(dst, `,"url":`...)
	dst = AppendJSString(dst, join.URL)
	dst = append(dst, `,"sdk":`...)
	dst = AppendJSString(dst, join.SDK)
	if len(join.User) > 0 {
		dst = append(dst, `,"user":`...)
		dst = append(dst, join.User...)
	}
	dst = append(dst, `,"ticks":{"tick":`...)
	dst = strconv.AppendInt(dst, join.TickMs, 10)
	dst = append(dst, `,"delay":`...)
	dst = strconv.AppendInt(dst, join.DelayMs, 10)
	dst = append(dst, '}')
	if join.Tove != "" {
		dst = append(dst, `,"tove":`...)
		dst = AppendJSString(dst, join.Tove)
	}
	dst = append(dst, `,"leaveDelay":`...)
	dst = strconv.AppendInt(dst, join.LeaveDelayMs, 10)
	if join.Ephemeral {
		dst = append(dst, `,"ephemeral":true`...)
	}
	return append(dst, "}}"...)
}

// AppendSendFrame appends a SEND frame carrying [time, 0, payload,
// ...extra]. payload must be a JSON string token.
func AppendSendFrame(dst []byte, sessionID string, time int64, payload json.RawMessage, extra []json.RawMessage) []byte {
	dst = appendHeader(dst, sessionID, ActionSend)
	dst = append(dst, `,"args":`...)
	dst = AppendMessage(dst, time, 0, payload, extra)
	return append(dst, '}')
}

// AppendSaveFrame appends a SAVE frame announcing persisted data the
// client uploaded to url, as of session time persistTime.
func AppendSaveFrame(dst []byte, sessionID string, persistTime int64, url string) []byte {
	dst = appendHeader(dst, sessionID, ActionSave)
	dst = append(dst, `,"args":{"persistTime":`...)
	dst = strconv.AppendInt(dst, persistTime, 10)
	dst = append(dst, `,"url":`...)
	dst = AppendJSString(dst, url)
	return append(dst, `,"dissident":null}}`...)
}

// AppendSnapFrame appends a SNAP frame announcing an uploaded snapshot.
func AppendSnapFrame(dst []byte, sessionID string, time int64, seq uint32, hash, url string) []byte {
	dst = appendHeader(dst, sessionID, ActionSnap)
	dst = append(dst, `,"args":{"time":`...)
	dst = strconv.AppendInt(dst, time, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, `,"hash":`...)
	dst = AppendJSString(dst, hash)
	dst = append(dst, `,"url":`...)
	dst = AppendJSString(dst, url)
	return append(dst, `,"dissident":null}}`...)
}

// AppendPulseFrame appends a PULSE frame (keep-alive, docs/protocol.md §6.8).
func AppendPulseFrame(dst []byte, sessionID string) []byte {
	dst = appendHeader(dst, sessionID, ActionPulse)
	return append(dst, '}')
}

// AppendPollFrame appends a SEND with debounce tags (docs/protocol.md §9.1: the
// snapshot poll, msgID "pollForSnapshot", debounce 5000 ms).
func AppendPollFrame(dst []byte, sessionID string, time int64, payload json.RawMessage, msgID string, debounceMs int64) []byte {
	dst = appendHeader(dst, sessionID, ActionSend)
	dst = append(dst, `,"args":`...)
	dst = AppendMessage(dst, time, 0, payload, nil)
	dst = append(dst, `,"tags":{"debounce":`...)
	dst = strconv.AppendInt(dst, debounceMs, 10)
	dst = append(dst, `,"msgID":`...)
	dst = AppendJSString(dst, msgID)
	return append(dst, "}}"...)
}

// AppendTuttiFrame appends a TUTTI vote (docs/protocol.md §6.3) without a first
// message: [sendTime, 0, vote, null, wantsVote, tallyTarget, key].
func AppendTuttiFrame(dst []byte, sessionID string, sendTime int64, vote string, wantsVote bool, tallyTarget json.RawMessage, key string) []byte {
	dst = appendHeader(dst, sessionID, ActionTutti)
	dst = append(dst, `,"args":[`...)
	dst = strconv.AppendInt(dst, sendTime, 10)
	dst = append(dst, `,0,`...)
	dst = AppendJSString(dst, vote)
	dst = append(dst, `,null,`...)
	dst = strconv.AppendBool(dst, wantsVote)
	dst = append(dst, ',')
	if len(tallyTarget) == 0 {
		tallyTarget = json.RawMessage("null")
	}
	dst = append(dst, tallyTarget...)
	dst = append(dst, ',')
	dst = AppendJSString(dst, key)
	return append(dst, "]}"...)
}

// Tally is a decoded tally payload (docs/protocol.md §7.4).
type Tally struct {
	SendTime       int64          `json:"sendTime"`
	Votes          map[string]int `json:"tally"`
	Key            string         `json:"tuttiKey"`
	MissingClients int            `json:"missingClients"`
}

// DecodeTally decodes a tally payload; ok is false if payload is not one.
func DecodeTally(payload json.RawMessage) (Tally, bool) {
	if len(payload) == 0 || payload[0] != '{' || !bytes.Contains(payload, []byte(`"tally"`)) {
		return Tally{}, false
	}
	var tally struct {
		What string `json:"what"`
		Tally
	}
	if err := json.Unmarshal(payload, &tally); err != nil || tally.What != "tally" {
		return Tally{}, false
	}
	return tally.Tally, true
}
