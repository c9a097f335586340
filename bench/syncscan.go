package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// The join scenario reads the frames a reflector sends before and with
// SYNC (docs/protocol.md §8.1) with a single-pass scanner instead of
// encoding/json: a SYNC can hold megabytes of messages, and decoding it
// would leave the generator collecting garbage while the next join is
// timed. The scanner validates the whole frame as JSON (strings with
// their escapes, numbers, literals, nesting, commas and colons) and
// allocates nothing for the messages, so that any Croquet 2.x reflector's
// SYNC is understood: keys in any order, whitespace anywhere JSON allows
// it, any payloads. Malformed or truncated input is an error, never a
// count.

// envelope is what the bench reads of a reflector frame (docs/protocol.md
// §3.4): the action and, when args is an object, the SYNC fields.
type envelope struct {
	action string
	// hasMessages: args.messages is an array of messages elements.
	hasMessages bool
	messages    int
	// notArrays counts the elements of args.messages that are not arrays
	// (every message is one, docs/protocol.md §4.4).
	notArrays int
	// hasSeq: args.seq is an integer in [0, 2^32).
	hasSeq bool
	seq    uint32
}

// errTruncated reports input that ends inside a value.
var errTruncated = errors.New("not terminated: the frame ends early")

// scanDepthMax bounds the nesting of arrays and objects.
const scanDepthMax = 1000

// scanEnvelope scans one frame, which must be exactly one JSON object.
// The last of duplicate keys counts, as with encoding/json.
func scanEnvelope(frame []byte) (envelope, error) {
	s := jsonScanner{data: frame}
	var e envelope
	s.skipSpace()
	if s.pos >= len(s.data) {
		return e, errors.New("empty frame")
	}
	if s.data[s.pos] != '{' {
		return e, s.errorf("want a JSON object, got %q", s.data[s.pos])
	}
	err := s.object(1, func(key []byte) error {
		switch string(key) {
		case "action":
			if s.data[s.pos] != '"' {
				e.action = ""
				return s.value(1)
			}
			raw, escaped, err := s.str()
			e.action = string(unescapeJSON(raw, escaped))
			return err
		case "args":
			e.hasMessages, e.messages, e.notArrays, e.hasSeq, e.seq = false, 0, 0, false, 0
			if s.data[s.pos] != '{' {
				return s.value(1)
			}
			return s.object(2, func(key []byte) error {
				switch string(key) {
				case "messages":
					return s.messages(&e)
				case "seq":
					e.hasSeq, e.seq = false, 0
					if c := s.data[s.pos]; c != '-' && (c < '0' || c > '9') {
						return s.value(2)
					}
					raw, err := s.number()
					if err != nil {
						return fmt.Errorf("args.seq: %w", err)
					}
					e.seq, e.hasSeq = parseUint32(raw)
					return nil
				}
				return s.value(2)
			})
		}
		return s.value(1)
	})
	if err != nil {
		return envelope{}, err
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		return envelope{}, s.errorf("%q after the object", excerpt(s.data[s.pos:]))
	}
	return e, nil
}

// countSyncMessages returns the number of messages of a SYNC frame.
func countSyncMessages(frame []byte) (int, error) {
	e, err := scanEnvelope(frame)
	if err != nil {
		return 0, err
	}
	return e.syncMessages()
}

// syncMessages checks a SYNC's envelope and returns its number of
// messages.
func (e *envelope) syncMessages() (int, error) {
	switch {
	case e.action != "SYNC":
		return 0, fmt.Errorf("action %q, want SYNC", e.action)
	case !e.hasMessages:
		return 0, errors.New("no args.messages array")
	case e.notArrays > 0:
		return 0, fmt.Errorf("%d of the %d elements of args.messages are not message arrays", e.notArrays, e.messages)
	}
	return e.messages, nil
}

// messages scans args.messages, which need not be an array; s.pos is at
// its first byte.
func (s *jsonScanner) messages(e *envelope) error {
	e.hasMessages, e.messages, e.notArrays = false, 0, 0
	if s.data[s.pos] != '[' {
		return s.value(2)
	}
	count, err := s.array(3, func(index int) error {
		if s.data[s.pos] != '[' {
			e.notArrays++
		}
		if err := s.value(3); err != nil {
			return fmt.Errorf("message %d: %w", index, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("args.messages: %w", err)
	}
	e.hasMessages, e.messages = true, count
	return nil
}

// parseUint32 parses a JSON number that must be a plain integer in
// [0, 2^32).
func parseUint32(raw []byte) (uint32, bool) {
	if len(raw) == 0 || len(raw) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}

// jsonScanner validates JSON text at pos without decoding it.
type jsonScanner struct {
	data []byte
	pos  int
}

// stringSpecial marks the bytes that end the plain run of a string: the
// quote, the backslash and the control characters (invalid unescaped).
var stringSpecial = func() (special [256]bool) {
	for c := range 0x20 {
		special[c] = true
	}
	special['"'], special['\\'] = true, true
	return special
}()

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d of %d: %s", s.pos, len(s.data), fmt.Sprintf(format, args...))
}

// truncated is the error for input that ends at s.pos inside a value.
func (s *jsonScanner) truncated() error {
	return fmt.Errorf("%w (%d bytes)", errTruncated, len(s.data))
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value after optional whitespace; depth is that of the
// enclosing array or object.
func (s *jsonScanner) value(depth int) error {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.truncated()
	}
	switch c := s.data[s.pos]; c {
	case '"':
		_, _, err := s.str()
		return err
	case '[':
		_, err := s.array(depth+1, nil)
		return err
	case '{':
		return s.object(depth+1, nil)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			_, err := s.number()
			return err
		}
		return s.errorf("unexpected %q", c)
	}
}

// str scans the string at s.pos (a quote) and returns its raw content
// (between the quotes) and whether it holds escapes.
func (s *jsonScanner) str() (raw []byte, escaped bool, err error) {
	start := s.pos + 1
	i := start
	for {
		for i < len(s.data) && !stringSpecial[s.data[i]] {
			i++
		}
		if i >= len(s.data) {
			s.pos = i
			return nil, false, s.truncated()
		}
		switch c := s.data[i]; c {
		case '"':
			s.pos = i + 1
			return s.data[start:i], escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(s.data) {
				s.pos = len(s.data)
				return nil, false, s.truncated()
			}
			switch s.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(s.data) {
						s.pos = len(s.data)
						return nil, false, s.truncated()
					}
					if !isHex(s.data[k]) {
						s.pos = k
						return nil, false, s.errorf("invalid \\u escape %q in a string", excerpt(s.data[i:]))
					}
				}
				i += 6
			default:
				s.pos = i
				return nil, false, s.errorf("invalid escape %q in a string", s.data[i:i+2])
			}
		default:
			s.pos = i
			return nil, false, s.errorf("control character %#x in a string", c)
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number scans the number at s.pos and returns its text.
func (s *jsonScanner) number() ([]byte, error) {
	start, i := s.pos, s.pos
	digits := func() bool {
		first := i
		for i < len(s.data) && s.data[i] >= '0' && s.data[i] <= '9' {
			i++
		}
		return i > first
	}
	bad := func(what string) ([]byte, error) {
		if i >= len(s.data) {
			s.pos = i
			return nil, s.truncated()
		}
		s.pos = i
		return nil, s.errorf("%s in number %q", what, excerpt(s.data[start:]))
	}
	if s.data[i] == '-' {
		i++
	}
	switch {
	case i < len(s.data) && s.data[i] == '0':
		i++
	case !digits():
		return bad("no digit")
	}
	if i < len(s.data) && s.data[i] == '.' {
		i++
		if !digits() {
			return bad("no digit after the point")
		}
	}
	if i < len(s.data) && (s.data[i] == 'e' || s.data[i] == 'E') {
		i++
		if i < len(s.data) && (s.data[i] == '+' || s.data[i] == '-') {
			i++
		}
		if !digits() {
			return bad("no digit in the exponent")
		}
	}
	s.pos = i
	return s.data[start:i], nil
}

func (s *jsonScanner) literal(word string) error {
	rest := s.data[s.pos:]
	if len(rest) < len(word) && bytes.HasPrefix([]byte(word), rest) {
		s.pos = len(s.data)
		return s.truncated()
	}
	if !bytes.HasPrefix(rest, []byte(word)) {
		return s.errorf("unexpected %q", excerpt(rest))
	}
	s.pos += len(word)
	return nil
}

// array scans the array at s.pos (a '[') at depth and returns its number
// of elements. element, when not nil, scans each element instead of
// value; it is called with s.pos at the element's first byte.
func (s *jsonScanner) array(depth int, element func(index int) error) (int, error) {
	if depth > scanDepthMax {
		return 0, s.errorf("nested deeper than %d levels", scanDepthMax)
	}
	s.pos++
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0, s.truncated()
	}
	if s.data[s.pos] == ']' {
		s.pos++
		return 0, nil
	}
	for count := 0; ; {
		var err error
		if element != nil {
			s.skipSpace() // done already for the first element
			if s.pos >= len(s.data) {
				return count, s.truncated()
			}
			err = element(count)
		} else {
			err = s.value(depth)
		}
		if err != nil {
			return count, err
		}
		count++
		s.skipSpace()
		if s.pos >= len(s.data) {
			return count, s.truncated()
		}
		switch c := s.data[s.pos]; c {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return count, nil
		default:
			return count, s.errorf("want ',' or ']' after element %d, got %q", count, c)
		}
	}
}

// object scans the object at s.pos (a '{') at depth. member, when not
// nil, scans each member's value instead of value; it is called with the
// unescaped key and s.pos at the value's first byte.
func (s *jsonScanner) object(depth int, member func(key []byte) error) error {
	if depth > scanDepthMax {
		return s.errorf("nested deeper than %d levels", scanDepthMax)
	}
	s.pos++
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.truncated()
	}
	if s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.truncated()
		}
		if c := s.data[s.pos]; c != '"' {
			return s.errorf("want a key, got %q", c)
		}
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		key := unescapeJSON(raw, escaped)
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.truncated()
		}
		if c := s.data[s.pos]; c != ':' {
			return s.errorf("want ':' after key %q, got %q", key, c)
		}
		s.pos++
		if member != nil {
			s.skipSpace()
			if s.pos >= len(s.data) {
				return s.truncated()
			}
			err = member(key)
		} else {
			err = s.value(depth)
		}
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.truncated()
		}
		switch c := s.data[s.pos]; c {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}' after key %q, got %q", key, c)
		}
	}
}

// unescapeJSON returns the text of a validated string's raw content. Keys
// and actions are short and seldom escaped, so encoding/json does it.
func unescapeJSON(raw []byte, escaped bool) []byte {
	if !escaped {
		return raw
	}
	var text string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &text) != nil {
		return raw
	}
	return []byte(text)
}

// excerpt shortens b for an error message.
func excerpt(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}

// chunkPrefix starts every frame of a message that the reference
// reflector split because it is longer than 1,000,000 characters
// (docs/protocol.md §3.3): "_CHUNK", then '1' or '0' (first chunk or
// not), then '1' or '0' (last chunk or not), then the next slice of the
// JSON text. A large SYNC is such a message.
var chunkPrefix = []byte("_CHUNK")

const chunkHeaderBytes = len("_CHUNK") + 2

// chunkAssembler glues the chunks of one message back together.
type chunkAssembler struct {
	buffer []byte
	open   bool // a first chunk came, the last not yet
	chunks int
}

// add takes the next frame. It returns the complete message: the frame
// itself when it is not a chunk, the joined slices after a last chunk;
// complete is false while chunks are missing. The message is valid until
// the next call.
func (a *chunkAssembler) add(frame []byte) (message []byte, complete bool, err error) {
	if !bytes.HasPrefix(frame, chunkPrefix) {
		if a.open {
			return nil, false, fmt.Errorf("a frame that is not a chunk (%q) after %d chunks of a message", excerpt(frame), a.chunks)
		}
		return frame, true, nil
	}
	if len(frame) < chunkHeaderBytes {
		return nil, false, fmt.Errorf("chunk header %q is incomplete", frame)
	}
	first, last := frame[len(chunkPrefix)], frame[len(chunkPrefix)+1]
	if (first != '0' && first != '1') || (last != '0' && last != '1') {
		return nil, false, fmt.Errorf("chunk header %q: want _CHUNK, then 0 or 1 twice", frame[:chunkHeaderBytes])
	}
	switch {
	case first == '1' && a.open:
		return nil, false, fmt.Errorf("a first chunk after %d chunks of an unfinished message", a.chunks)
	case first == '0' && !a.open:
		return nil, false, errors.New("a chunk that continues no message")
	case first == '1':
		a.buffer, a.open, a.chunks = a.buffer[:0], true, 0
		if cap(a.buffer) < largeFrameBytes {
			// A chunked message is over 1,000,000 characters: take a
			// buffer whose pages are mapped, as frameReader does.
			a.buffer = takeLargeBuffer(largeFrameBytes)
		}
	}
	slice := frame[chunkHeaderBytes:]
	need := len(a.buffer) + len(slice)
	if need > frameBytesMax {
		a.open = false
		return nil, false, fmt.Errorf("chunked message of more than %d bytes exceeds frameBytesMax %d", need, frameBytesMax)
	}
	if need > cap(a.buffer) {
		old := a.buffer
		a.buffer = append(takeLargeBuffer(need), old...)
		releaseLargeBuffer(old)
	}
	a.buffer = append(a.buffer, slice...)
	a.chunks++
	if last == '0' {
		return nil, false, nil
	}
	a.open = false
	return a.buffer, true, nil
}

// release hands the assembler's buffer to the next reader that needs a
// large one; the assembler must not be used afterwards.
func (a *chunkAssembler) release() {
	releaseLargeBuffer(a.buffer)
	a.buffer = nil
}
