package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/gobwas/ws"
)

// Errors of the WebSocket framing layer. They end the connection with a
// WebSocket-level close (1002 or 1009), not a protocol close code.
var (
	errFrameUnmasked     = errors.New("websocket: client frame is not masked")
	errFrameReservedBits = errors.New("websocket: reserved bits set (no extension was negotiated)")
	errFrameControl      = errors.New("websocket: control frame fragmented or longer than 125 bytes")
	errFrameSequence     = errors.New("websocket: unexpected continuation or data frame in a fragmented message")
	errFrameOpCode       = errors.New("websocket: unknown opcode")
)

// frameTooLargeError reports a message above the read limit.
type frameTooLargeError struct{ size, limit int64 }

func (e *frameTooLargeError) Error() string {
	return fmt.Sprintf("websocket: message of at least %d bytes exceeds the limit of %d bytes (FrameBytesMax)", e.size, e.limit)
}

// messageBufferKeepBytesMax is the largest message buffer a connection keeps
// between messages.
const messageBufferKeepBytesMax = 64 << 10

// messageReader reads client WebSocket frames and assembles fragmented
// messages. Control frames are returned as they come (they may arrive
// between the fragments of a message). Its reader may be replaced between
// messages (the read buffer is pooled while the connection is idle).
type messageReader struct {
	reader  *bufio.Reader
	limit   int64
	message []byte    // data of the message being assembled
	opCode  ws.OpCode // opcode of the message being assembled (0: none)
	header  [ws.MaxHeaderSize - 2]byte
}

func newMessageReader(reader *bufio.Reader, limit int64) *messageReader {
	return &messageReader{reader: reader, limit: limit}
}

// release drops the message buffer between messages (an idle connection
// keeps none).
func (m *messageReader) release() {
	if m.opCode == 0 {
		m.message = nil
	}
}

// next returns the next complete data message (OpText or OpBinary) or
// control frame. The returned payload is valid until the next call.
func (m *messageReader) next() (ws.OpCode, []byte, error) {
	for {
		header, err := ws.ReadHeaderBuffer(m.reader, m.header[:])
		if err != nil {
			return 0, nil, err
		}
		if !header.Masked {
			return 0, nil, errFrameUnmasked
		}
		if header.Rsv != 0 {
			return 0, nil, errFrameReservedBits
		}
		if header.OpCode.IsControl() {
			if header.OpCode != ws.OpClose && header.OpCode != ws.OpPing && header.OpCode != ws.OpPong {
				return 0, nil, errFrameOpCode
			}
			if !header.Fin || header.Length > ws.MaxControlFramePayloadSize {
				return 0, nil, errFrameControl
			}
			payload := make([]byte, header.Length)
			if _, err := io.ReadFull(m.reader, payload); err != nil {
				return 0, nil, err
			}
			ws.Cipher(payload, header.Mask, 0)
			return header.OpCode, payload, nil
		}
		switch header.OpCode {
		case ws.OpText, ws.OpBinary:
			if m.opCode != 0 {
				return 0, nil, errFrameSequence
			}
			m.opCode = header.OpCode
			if cap(m.message) > messageBufferKeepBytesMax {
				m.message = nil // do not keep a large buffer for an idle connection
			}
			m.message = m.message[:0]
		case ws.OpContinuation:
			if m.opCode == 0 {
				return 0, nil, errFrameSequence
			}
		default:
			return 0, nil, errFrameOpCode
		}
		size := int64(len(m.message)) + header.Length
		if size > m.limit {
			return 0, nil, &frameTooLargeError{size: size, limit: m.limit}
		}
		start := len(m.message)
		m.message = append(m.message, make([]byte, header.Length)...)
		if _, err := io.ReadFull(m.reader, m.message[start:]); err != nil {
			return 0, nil, err
		}
		ws.Cipher(m.message[start:], header.Mask, 0)
		if header.Fin {
			opCode := m.opCode
			m.opCode = 0
			return opCode, m.message, nil
		}
	}
}

// appendFrameHeader appends the header of one unmasked server frame
// (RFC 6455 §5.2: FIN + opcode, then a 7-bit, 16-bit or 64-bit length;
// server frames are not masked) to buffer.
func appendFrameHeader(buffer []byte, opCode ws.OpCode, length int) []byte {
	buffer = append(buffer, 0x80|byte(opCode))
	switch {
	case length < 126:
		return append(buffer, byte(length))
	case length <= 0xFFFF:
		return append(buffer, 126, byte(length>>8), byte(length))
	default:
		buffer = append(buffer, 127)
		for shift := 56; shift >= 0; shift -= 8 {
			buffer = append(buffer, byte(uint64(length)>>shift))
		}
		return buffer
	}
}

// frameHeaderBytes is the size of the header appendFrameHeader writes.
func frameHeaderBytes(length int) int {
	switch {
	case length < 126:
		return 2
	case length <= 0xFFFF:
		return 4
	default:
		return 10
	}
}
