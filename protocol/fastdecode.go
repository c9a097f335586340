package protocol

import (
	"encoding/json"
	"unicode/utf8"
)

// The fast paths of DecodeClientFrame and DecodeMessage: SEND is by far the
// most frequent client frame, and encoding/json spent ~3 µs and 22
// allocations on one. Each fast function either produces exactly what the
// encoding/json path would, or reports false and the caller runs the
// encoding/json path (the reference), so every error is still produced by
// the reference code.

// scanEnvelope finds the raw values of the envelope's fields in data, which
// starts with '{' (no leading whitespace), like json.Unmarshal(data,
// &rawEnvelope{}) but without copying: the values alias data. It reports
// false for invalid JSON and for any key encoding/json could match to a
// field other than by exact equality (escapes, other letter case, non-ASCII
// letters that fold to ASCII ones).
func scanEnvelope(data []byte) (rawEnvelope, bool) {
	var envelope rawEnvelope
	i := skipSpace(data, 1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			if i >= len(data) || data[i] != '"' {
				return rawEnvelope{}, false
			}
			keyEnd, escaped := scanString(data, i)
			if keyEnd < 0 || escaped {
				return rawEnvelope{}, false
			}
			var field *json.RawMessage
			switch key := data[i+1 : keyEnd-1]; string(key) {
			case "action":
				field = &envelope.Action
			case "args":
				field = &envelope.Args
			case "tags":
				field = &envelope.Tags
			default:
				if !isOtherKey(key, "action", "args", "tags") {
					return rawEnvelope{}, false
				}
			}
			i = skipSpace(data, keyEnd)
			if i >= len(data) || data[i] != ':' {
				return rawEnvelope{}, false
			}
			start := skipSpace(data, i+1)
			if i = scanValue(data, start, 1); i < 0 {
				return rawEnvelope{}, false
			}
			if field != nil {
				*field = data[start:i:i] // a repeated key: the last one wins, as in encoding/json
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return rawEnvelope{}, false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return rawEnvelope{}, false
			}
			i = skipSpace(data, i+1)
		}
	}
	if skipSpace(data, i) != len(data) {
		return rawEnvelope{}, false
	}
	return envelope, true
}

// isOtherKey reports whether key is plain ASCII and matches none of fields
// case-insensitively, i.e. encoding/json would certainly ignore it.
func isOtherKey(key []byte, fields ...string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, field := range fields {
		if asciiEqualFold(key, field) {
			return false
		}
	}
	return true
}

func asciiEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// knownAction returns the action constant for a raw "action" value that is
// one of the known actions spelled without escapes, so that decoding it
// does not allocate. Any other value is decoded by decodeString.
func knownAction(raw []byte) (string, bool) {
	switch string(raw) {
	case `"SEND"`:
		return ActionSend, true
	case `"PULSE"`:
		return ActionPulse, true
	case `"TUTTI"`:
		return ActionTutti, true
	case `"JOIN"`:
		return ActionJoin, true
	case `"TICKS"`:
		return ActionTicks, true
	case `"SNAP"`:
		return ActionSnap, true
	case `"SAVE"`:
		return ActionSave, true
	case `"PING"`:
		return ActionPing, true
	case `"LOG"`:
		return ActionLog, true
	case `"EPHM"`:
		return ActionEphemeral, true
	}
	return "", false
}

// unquoteFast returns the value of a JSON string token without escapes,
// control characters or invalid UTF-8 (for which the value is the bytes
// between the quotes); false for anything else.
func unquoteFast(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	content := raw[1 : len(raw)-1]
	ascii := true
	for _, c := range content {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(content) {
		return "", false
	}
	return string(content), true
}

// decodeMessageFast decodes a message array that starts with '[' (raw[0]).
// The payload and the extra elements alias raw (capacity capped, so an
// append to them cannot overwrite raw). It reports false for
// anything DecodeMessage rejects and for invalid JSON.
func decodeMessageFast(raw []byte) (Message, bool) {
	var bounds [MessageElementsMax]struct{ start, end int }
	count := 0
	i := skipSpace(raw, 1)
	for {
		if count == MessageElementsMax {
			return Message{}, false // too many elements (or an empty array): the reference names the count
		}
		start := i
		if i = scanValue(raw, start, 1); i < 0 {
			return Message{}, false
		}
		bounds[count].start, bounds[count].end = start, i
		count++
		i = skipSpace(raw, i)
		if i >= len(raw) {
			return Message{}, false
		}
		if raw[i] == ']' {
			break
		}
		if raw[i] != ',' {
			return Message{}, false
		}
		i = skipSpace(raw, i+1)
	}
	if skipSpace(raw, i+1) != len(raw) || count < 3 {
		return Message{}, false
	}
	payload := raw[bounds[2].start:bounds[2].end:bounds[2].end]
	if payload[0] != '"' || len(payload) > PayloadBytesMax {
		return Message{}, false
	}
	message := Message{Payload: payload}
	if count > 3 {
		message.Extra = make([]json.RawMessage, count-3)
		for n := 3; n < count; n++ {
			message.Extra[n-3] = compactJSON(raw[bounds[n].start:bounds[n].end:bounds[n].end])
		}
	}
	return message, true
}
