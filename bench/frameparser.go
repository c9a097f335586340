package bench

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/gobwas/ws"
)

// frameParser splits a byte stream that arrives in pieces into WebSocket
// messages (the push counterpart of frameReader, for readers that are
// handed whatever one read returned).
type frameParser struct {
	pending    []byte // the start of an incomplete frame
	message    []byte // the fragments of an incomplete message
	fragmented bool   // a first fragment came, the last not yet
}

// feed parses data after what is pending. It calls onMessage for every
// complete data message and onControl for every control frame; the slices
// are valid during the call only. A close frame ends the stream: feed
// returns io.EOF.
func (p *frameParser) feed(data []byte, onMessage func([]byte) error, onControl func(ws.Header, []byte) error) error {
	if len(p.pending) > 0 {
		p.pending = append(p.pending, data...)
		data = p.pending
	}
	for {
		header, headerBytes, ok := parseFrameHeader(data)
		if !ok {
			break
		}
		if header.Length < 0 || int64(len(p.message))+header.Length > frameBytesMax {
			return fmt.Errorf("frame of %d bytes exceeds frameBytesMax %d", header.Length, frameBytesMax)
		}
		end := headerBytes + int(header.Length)
		if len(data) < end {
			break
		}
		if err := checkFragment(header, p.fragmented); err != nil {
			return err
		}
		if !header.OpCode.IsControl() {
			p.fragmented = !header.Fin
		}
		payload := data[headerBytes:end]
		data = data[end:]
		if header.Masked {
			ws.Cipher(payload, header.Mask, 0)
		}
		switch {
		case header.OpCode == ws.OpClose:
			return io.EOF
		case header.OpCode.IsControl():
			if onControl != nil {
				if err := onControl(header, payload); err != nil {
					return err
				}
			}
		case header.Fin && len(p.message) == 0:
			if err := onMessage(payload); err != nil {
				return err
			}
		default:
			p.message = append(p.message, payload...)
			if header.Fin {
				err := onMessage(p.message)
				p.message = p.message[:0]
				if err != nil {
					return err
				}
			}
		}
	}
	// Keep the incomplete rest (copy handles the overlap when data is
	// the tail of pending).
	p.pending = append(p.pending[:0], data...)
	return nil
}

// parseFrameHeader decodes the frame header at the start of data; ok is
// false while the header is incomplete.
func parseFrameHeader(data []byte) (header ws.Header, size int, ok bool) {
	if len(data) < 2 {
		return header, 0, false
	}
	header.Fin = data[0]&0x80 != 0
	header.Rsv = (data[0] >> 4) & 0x7
	header.OpCode = ws.OpCode(data[0] & 0x0f)
	header.Masked = data[1]&0x80 != 0
	size = 2
	switch length := data[1] & 0x7f; length {
	case 126:
		if len(data) < 4 {
			return header, 0, false
		}
		header.Length = int64(binary.BigEndian.Uint16(data[2:4]))
		size = 4
	case 127:
		if len(data) < 10 {
			return header, 0, false
		}
		header.Length = int64(binary.BigEndian.Uint64(data[2:10]))
		size = 10
	default:
		header.Length = int64(length)
	}
	if header.Masked {
		if len(data) < size+4 {
			return header, 0, false
		}
		copy(header.Mask[:], data[size:size+4])
		size += 4
	}
	return header, size, true
}
