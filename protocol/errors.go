package protocol

import (
	"fmt"
	"unicode/utf8"
)

// Error is a protocol violation by a client. It names the field, the rule
// that was broken and the offending value, and carries the close code the
// reflector answers with.
type Error struct {
	Code  int    // WebSocket close code (see codes.go)
	Field string // dotted path of the offending field, e.g. "args.ticks.tick"
	Rule  string // what the field must be, e.g. "a number in [1, 60000]"
	Value string // the offending value, shortened for display
}

func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Rule)
	}
	return fmt.Sprintf("%s: %s, got %s", e.Field, e.Rule, e.Value)
}

// CloseReason is Error() shortened to fit a WebSocket close frame.
func (e *Error) CloseReason() string {
	return TruncateReason(e.Error())
}

// TruncateReason shortens s to CloseReasonBytesMax bytes on a rune boundary.
func TruncateReason(s string) string {
	if len(s) <= CloseReasonBytesMax {
		return s
	}
	cut := CloseReasonBytesMax - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// displayValueBytesMax bounds how much of an offending value an error quotes.
const displayValueBytesMax = 40

func display(raw []byte) string {
	if len(raw) <= displayValueBytesMax {
		return string(raw)
	}
	cut := displayValueBytesMax
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return string(raw[:cut]) + fmt.Sprintf("...(%d bytes)", len(raw))
}

func malformed(field, rule string, raw []byte) *Error {
	return &Error{Code: CloseMalformed, Field: field, Rule: rule, Value: display(raw)}
}
