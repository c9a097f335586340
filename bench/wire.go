package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"

	"github.com/gobwas/ws"
)

// frameBytesMax bounds one reassembled frame read by the bench client or
// the baseline server.
const frameBytesMax = 16 << 20

// appendClientFrame appends one complete, masked client frame (FIN set)
// to dst, so that it goes out in one write: the header and the payload as
// separate writes would be two TCP segments on a connection without
// Nagle's delay, and cost the server two wake-ups for one frame.
func appendClientFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	// The mask only has to be unpredictable to scripts in a browser
	// (RFC 6455 §10.3); any value is valid for a server.
	key := rand.Uint32()
	mask := [4]byte{byte(key >> 24), byte(key >> 16), byte(key >> 8), byte(key)}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// frameReader reads whole WebSocket messages (reassembling fragments) into
// a reused buffer and hands control frames to onControl.
type frameReader struct {
	reader    *bufio.Reader
	buffer    []byte
	onControl func(header ws.Header, payload []byte) error
}

func newFrameReader(r io.Reader, onControl func(ws.Header, []byte) error) *frameReader {
	return &frameReader{reader: bufio.NewReaderSize(r, 64<<10), onControl: onControl}
}

// next returns the next data message, its fragments (a first frame, then
// continuation frames up to one with FIN) joined; control frames may come
// between them. The slice is valid until the next call. A close frame
// ends the stream with io.EOF.
func (f *frameReader) next() ([]byte, error) {
	f.buffer = f.buffer[:0]
	fragmented := false // a first fragment came, the last not yet
	for {
		header, err := ws.ReadHeader(f.reader)
		if err != nil {
			return nil, err
		}
		if err := checkFragment(header, fragmented); err != nil {
			return nil, err
		}
		if !header.OpCode.IsControl() {
			fragmented = !header.Fin
		}
		if header.Length < 0 || int64(len(f.buffer))+header.Length > frameBytesMax {
			return nil, fmt.Errorf("frame of %d bytes exceeds frameBytesMax %d", header.Length, frameBytesMax)
		}
		start := len(f.buffer)
		if need := start + int(header.Length); need > cap(f.buffer) && need >= largeFrameBytes {
			f.buffer = append(takeLargeBuffer(need), f.buffer...)
		}
		f.buffer = append(f.buffer, make([]byte, header.Length)...)
		payload := f.buffer[start:]
		if _, err := io.ReadFull(f.reader, payload); err != nil {
			return nil, err
		}
		if header.Masked {
			ws.Cipher(payload, header.Mask, 0)
		}
		if header.OpCode.IsControl() {
			f.buffer = f.buffer[:start]
			if header.OpCode == ws.OpClose {
				return nil, io.EOF
			}
			if f.onControl != nil {
				if err := f.onControl(header, payload); err != nil {
					return nil, err
				}
			}
			continue
		}
		if header.Fin {
			return f.buffer, nil
		}
	}
}

// checkFragment reports a data frame out of its place in a fragmented
// message (RFC 6455 §5.4): a continuation frame must continue a message,
// and a new message must not start inside one. Control frames may come
// anywhere but must not be fragmented themselves.
func checkFragment(header ws.Header, fragmented bool) error {
	switch {
	case header.OpCode.IsControl():
		if !header.Fin {
			return fmt.Errorf("fragmented control frame (opcode %d)", header.OpCode)
		}
	case header.OpCode == ws.OpContinuation && !fragmented:
		return errors.New("continuation frame without a first fragment")
	case header.OpCode != ws.OpContinuation && fragmented:
		return fmt.Errorf("data frame (opcode %d) inside a fragmented message", header.OpCode)
	}
	return nil
}

// takeBuffered returns a copy of the bytes read ahead of the last message
// (the start of the next ones); the reader must not be used afterwards.
func (f *frameReader) takeBuffered() []byte {
	ahead, _ := f.reader.Peek(f.reader.Buffered())
	return append([]byte(nil), ahead...)
}

// release hands the reader's buffer, when large, to the next reader that
// needs one; the reader must not be used afterwards.
func (f *frameReader) release() {
	releaseLargeBuffer(f.buffer)
	f.buffer = nil
}

// largeFrameBytes is the size from which frame buffers are reused across
// connections: a joiner receiving a 4 MB SYNC into fresh memory spends
// milliseconds in page faults, which would be counted as join time. It is
// below the reference reflector's chunks of 1,000,000 characters
// (docs/protocol.md §3.3), so that their frames reuse buffers too.
const largeFrameBytes = 512 << 10

var largeBuffers = make(chan []byte, 4)

// takeLargeBuffer returns an empty buffer of at least size bytes, reused
// (its pages already mapped) when one is free. New buffers have a quarter
// of headroom, so that the next, slightly larger SYNC fits too.
func takeLargeBuffer(size int) []byte {
	for range cap(largeBuffers) {
		select {
		case buffer := <-largeBuffers:
			if cap(buffer) >= size {
				return buffer
			}
		default:
			return make([]byte, 0, size+size/4)
		}
	}
	return make([]byte, 0, size+size/4)
}

// releaseLargeBuffer hands buffer, when large, to the next reader that
// needs one; its owner must not use it afterwards.
func releaseLargeBuffer(buffer []byte) {
	if cap(buffer) >= largeFrameBytes {
		select {
		case largeBuffers <- buffer[:0]:
		default:
		}
	}
}

// primeLargeBuffer makes a reusable buffer of size bytes with every page
// touched, so that the first large frame read into it does not fault.
func primeLargeBuffer(size int) {
	size = min(size, frameBytesMax) // no message is longer
	if size < largeFrameBytes {
		return
	}
	buffer := make([]byte, size)
	for i := 0; i < len(buffer); i += 4096 {
		buffer[i] = 1
	}
	select {
	case largeBuffers <- buffer[:0]:
	default:
	}
}

// inbound is the part of a reflector frame the bench looks at.
type inbound struct {
	action string
	// For RECV: the stamped seq, and the payload when it is a string
	// (empty for object payloads such as users messages).
	seq           uint32
	stringPayload []byte
	objectPayload bool
}

var (
	actionKey = []byte(`"action":"`)
	argsKey   = []byte(`"args":`)
)

// parseInbound decodes a reflector frame. It takes a fast path for the
// shapes protocol.AppendRecv and the baseline write (string payloads
// without escapes) and falls back to encoding/json otherwise.
func parseInbound(frame []byte) (inbound, error) {
	if message, ok := parseInboundFast(frame); ok {
		return message, nil
	}
	var envelope struct {
		Action string          `json:"action"`
		Args   json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(frame, &envelope); err != nil {
		return inbound{}, fmt.Errorf("frame %.80q is not JSON: %w", frame, err)
	}
	message := inbound{action: envelope.Action}
	if envelope.Action != "RECV" {
		return message, nil
	}
	var elements []json.RawMessage
	if err := json.Unmarshal(envelope.Args, &elements); err != nil || len(elements) < 3 {
		return inbound{}, fmt.Errorf("RECV args %.80q are not a message array", envelope.Args)
	}
	seq, err := strconv.ParseUint(string(elements[1]), 10, 32)
	if err != nil {
		return inbound{}, fmt.Errorf("RECV seq %q: %w", elements[1], err)
	}
	message.seq = uint32(seq)
	var text string
	if json.Unmarshal(elements[2], &text) == nil {
		message.stringPayload = []byte(text)
	} else {
		message.objectPayload = true
	}
	return message, nil
}

func parseInboundFast(frame []byte) (inbound, bool) {
	at := bytes.Index(frame, actionKey)
	if at < 0 {
		return inbound{}, false
	}
	rest := frame[at+len(actionKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return inbound{}, false
	}
	message := inbound{action: string(rest[:end])}
	if message.action != "RECV" {
		return message, true
	}
	at = bytes.Index(rest, argsKey)
	if at < 0 || at+len(argsKey) >= len(rest) || rest[at+len(argsKey)] != '[' {
		return inbound{}, false
	}
	rest = rest[at+len(argsKey)+1:]
	comma := bytes.IndexByte(rest, ',') // after the time
	if comma < 0 {
		return inbound{}, false
	}
	rest = rest[comma+1:]
	comma = bytes.IndexByte(rest, ',') // after the seq
	if comma < 0 {
		return inbound{}, false
	}
	seq, err := strconv.ParseUint(string(rest[:comma]), 10, 32)
	if err != nil {
		return inbound{}, false
	}
	message.seq = uint32(seq)
	rest = rest[comma+1:]
	switch {
	case len(rest) > 0 && rest[0] == '{':
		message.objectPayload = true
		return message, true
	case len(rest) > 0 && rest[0] == '"':
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 || bytes.IndexByte(rest[1:1+end], '\\') >= 0 {
			return inbound{}, false
		}
		message.stringPayload = rest[1 : 1+end]
		return message, true
	}
	return inbound{}, false
}
