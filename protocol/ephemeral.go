package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// The ephemeral channel (docs/protocol.md §22) is a Metronome extension:
// view-to-view data (pointers, drags, cursors) that the reflector relays to
// the other members of the session that asked for it, without stamping,
// storing or replaying it. A client asks for it with "ephemeral": true in
// its JOIN (Join.Ephemeral) and sends EPHM frames whose args are one
// opaque string; the reflector relays each as an EPHM frame
// {"args": [from, payload]} to the synced members that asked, except the
// sender. Clients that did not ask (every standard Croquet client) never
// see an EPHM frame.

// ActionEphemeral is the EPHM action, in both directions.
const ActionEphemeral = "EPHM"

// DecodeEphemeral parses the args of a client's EPHM: one JSON string (the
// sender's sealed payload, which the reflector relays verbatim and never
// decodes) of at most EphemeralPayloadBytesMax bytes as sent. The result
// may share memory with args.
func DecodeEphemeral(args json.RawMessage) (json.RawMessage, error) {
	if len(args) == 0 || args[0] != '"' {
		return nil, malformed("args", "an ephemeral payload string", args)
	}
	if len(args) > EphemeralPayloadBytesMax {
		return nil, &Error{Code: CloseMalformed, Field: "args",
			Rule: fmt.Sprintf("at most %d bytes (EphemeralPayloadBytesMax)", EphemeralPayloadBytesMax), Value: strconv.Itoa(len(args)) + " bytes"}
	}
	if end, _ := scanString(args, 0); end != len(args) && !validStringToken(args) {
		return nil, malformed("args", "an ephemeral payload string", args)
	}
	return args, nil
}

// validStringToken reports whether raw is exactly one JSON string token
// (the reference check behind the fast scanner).
func validStringToken(raw json.RawMessage) bool {
	_, ok := unquoteJSON(raw)
	return ok && raw[len(raw)-1] == '"'
}

// UserViewID returns the view id in a JOIN "user" value (docs/protocol.md
// §6.1): the string itself, the first element of [viewId], or the "id" of
// {"id": viewId, "data": ...}; "" for anything else.
func UserViewID(user json.RawMessage) string {
	if len(user) == 0 {
		return ""
	}
	var id string
	switch user[0] {
	case '"':
		if value, ok := unquoteJSON(user); ok {
			id = value
		}
	case '[':
		var list []json.RawMessage
		if json.Unmarshal(user, &list) == nil && len(list) > 0 && len(list[0]) > 0 && list[0][0] == '"' {
			id, _ = unquoteJSON(list[0])
		}
	case '{':
		var object struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(user, &object) == nil && len(object.ID) > 0 && object.ID[0] == '"' {
			id, _ = unquoteJSON(object.ID)
		}
	}
	return id
}

// AppendEphemeral appends the EPHM frame a reflector relays:
// {"id":sid,"action":"EPHM","args":[from,payload]}, where from is the
// sender's view id (null when it announced none) and payload the sender's
// string as it sent it.
func AppendEphemeral(dst []byte, sessionID, from string, payload json.RawMessage) []byte {
	dst = appendHeader(dst, sessionID, ActionEphemeral)
	dst = append(dst, `,"args":[`...)
	if from == "" {
		dst = append(dst, "null"...)
	} else {
		dst = AppendJSString(dst, from)
	}
	dst = append(dst, ',')
	dst = append(dst, payload...)
	return append(dst, "]}"...)
}

// AppendEphemeralFrame appends a client's EPHM frame
// {"id":sid,"action":"EPHM","args":payload}; payload must be a JSON string
// token.
func AppendEphemeralFrame(dst []byte, sessionID string, payload json.RawMessage) []byte {
	dst = appendHeader(dst, sessionID, ActionEphemeral)
	dst = append(dst, `,"args":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// ServerEphemeral is a decoded EPHM from a reflector.
type ServerEphemeral struct {
	// From is the sender's view id ("" when it announced none).
	From string
	// Payload is the sender's string token, verbatim.
	Payload json.RawMessage
}

func decodeServerEphemeral(raw json.RawMessage) (ServerEphemeral, error) {
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil || len(elements) != 2 {
		return ServerEphemeral{}, serverFrameError("args", "an EPHM array [from, payload]", raw)
	}
	var ephemeral ServerEphemeral
	switch from := elements[0]; {
	case string(from) == "null":
	case len(from) > 0 && from[0] == '"':
		ephemeral.From, _ = unquoteJSON(from)
	default:
		return ServerEphemeral{}, serverFrameError("args[0]", "the sender's view id or null", from)
	}
	if len(elements[1]) == 0 || elements[1][0] != '"' {
		return ServerEphemeral{}, serverFrameError("args[1]", "an ephemeral payload string", elements[1])
	}
	ephemeral.Payload = elements[1]
	return ephemeral, nil
}
