package server

// The WebSocket message reader (wsframe.go) is fed real client frames split
// at every byte boundary and fragmented at every payload boundary, through a
// synchronous net.Pipe so that each write arrives as a separate read. It
// must return exactly the original message every time.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
)

// framingEveryBoundaryBytesMax: wire frames up to this size are split at
// every byte boundary; larger ones at the boundaries around their header
// and end and at a stride, to keep the test fast.
const framingEveryBoundaryBytesMax = 8 << 10

// framingTimeout bounds each pipe read and write.
const framingTimeout = 10 * time.Second

type sampleFrame struct {
	name    string
	payload []byte
}

// sampleFrames returns the shared sample client frames of
// protocol/testdata/frames plus frames whose lengths sit on the boundaries
// of the WebSocket length encodings (7-bit, 16-bit, 64-bit) and of the
// reader's kept buffer, and multi-byte UTF-8.
func sampleFrames(t *testing.T) []sampleFrame {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "protocol", "testdata", "frames", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	var samples []sampleFrame
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, sampleFrame{name: filepath.Base(path), payload: data})
	}
	if len(samples) == 0 {
		t.Log("protocol/testdata/frames holds no samples; using built-in frames only")
		samples = append(samples,
			sampleFrame{"join", []byte(`{"id":"S","action":"JOIN","args":{"version":1,"apiKey":"none","user":"v1","ticks":{"tick":50}}}`)},
			sampleFrame{"send", []byte(`{"id":"S","action":"SEND","args":[2600,0,"cipher",12]}`)},
		)
	}
	for _, size := range []int{0, 1, 125, 126, 127, 65535, 65536, messageBufferKeepBytesMax + 1} {
		samples = append(samples, sampleFrame{name: fmt.Sprintf("%d bytes", size), payload: logFrameOfSize(size)})
	}
	samples = append(samples, sampleFrame{name: "utf-8", payload: []byte(`{"action":"LOG","args":"héllo wörld ✓ 𝄞 日本語"}`)})
	return samples
}

// logFrameOfSize returns a LOG frame of exactly size bytes (or just 'x's
// when size is too small for JSON).
func logFrameOfSize(size int) []byte {
	prefix, suffix := `{"action":"LOG","args":"`, `"}`
	if size < len(prefix)+len(suffix) {
		return bytes.Repeat([]byte{'x'}, size)
	}
	return []byte(prefix + strings.Repeat("y", size-len(prefix)-len(suffix)) + suffix)
}

// maskOf returns a deterministic, non-trivial mask for frame number n.
func maskOf(n int) [4]byte {
	return [4]byte{byte(0x9d + n), byte(0x37 ^ n), byte(n >> 8), 0xa5}
}

// clientFrame encodes one masked client frame.
func clientFrame(opCode ws.OpCode, fin bool, payload []byte, mask [4]byte) []byte {
	var buffer bytes.Buffer
	header := ws.Header{Fin: fin, OpCode: opCode, Masked: true, Mask: mask, Length: int64(len(payload))}
	if err := ws.WriteHeader(&buffer, header); err != nil {
		panic(err)
	}
	masked := append([]byte(nil), payload...)
	ws.Cipher(masked, mask, 0)
	buffer.Write(masked)
	return buffer.Bytes()
}

// pipeReader returns a message reader over one end of a net.Pipe and a
// function that writes chunks, in order, into the other end from another
// goroutine. Each chunk is one Write, so the reader sees exactly these
// boundaries (net.Pipe has no buffer).
func pipeReader(t *testing.T, limit int64) (*messageReader, func(chunks [][]byte) <-chan error) {
	t.Helper()
	readEnd, writeEnd := net.Pipe()
	t.Cleanup(func() {
		readEnd.Close()
		writeEnd.Close()
	})
	deadline := time.Now().Add(framingTimeout)
	readEnd.SetDeadline(deadline)
	writeEnd.SetDeadline(deadline)
	reader := newMessageReader(bufio.NewReader(readEnd), limit)
	write := func(chunks [][]byte) <-chan error {
		done := make(chan error, 1)
		go func() {
			for _, chunk := range chunks {
				if len(chunk) == 0 {
					continue // an empty Write on a pipe would be an empty Read
				}
				if _, err := writeEnd.Write(chunk); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		return done
	}
	return reader, write
}

// splitPoints returns the byte boundaries at which a wire frame of n bytes
// is split: all of them for small frames.
func splitPoints(n int) []int {
	if n <= framingEveryBoundaryBytesMax {
		points := make([]int, n+1)
		for i := range points {
			points[i] = i
		}
		return points
	}
	var points []int
	for i := 0; i <= n; i++ {
		if i <= 32 || i >= n-32 || i%997 == 0 {
			points = append(points, i)
		}
	}
	return points
}

// expectMessage reads the next message and checks it.
func expectMessage(t *testing.T, reader *messageReader, wantOpCode ws.OpCode, want []byte, context string) bool {
	t.Helper()
	opCode, payload, err := reader.next()
	if err != nil {
		t.Errorf("%s: next: %v", context, err)
		return false
	}
	if opCode != wantOpCode || !bytes.Equal(payload, want) {
		t.Errorf("%s: got opcode %v with %d bytes %s, want opcode %v with %d bytes %s",
			context, opCode, len(payload), shorten(payload), wantOpCode, len(want), shorten(want))
		return false
	}
	return true
}

func waitWriter(t *testing.T, done <-chan error) {
	t.Helper()
	if err := <-done; err != nil {
		t.Fatalf("writing to the pipe: %v", err)
	}
}

func TestMessageReaderSplitAtEveryByte(t *testing.T) {
	for _, sample := range sampleFrames(t) {
		t.Run(sample.name, func(t *testing.T) {
			wire := clientFrame(ws.OpText, true, sample.payload, maskOf(len(sample.payload)))
			points := splitPoints(len(wire))
			chunks := make([][]byte, 0, 2*len(points))
			for _, split := range points {
				chunks = append(chunks, wire[:split], wire[split:])
			}
			reader, write := pipeReader(t, protocol.FrameBytesMax)
			done := write(chunks)
			for _, split := range points {
				if !expectMessage(t, reader, ws.OpText, sample.payload, fmt.Sprintf("split at byte %d of %d", split, len(wire))) {
					t.FailNow()
				}
			}
			waitWriter(t, done)
		})
	}
}

func TestMessageReaderOneByteAtATime(t *testing.T) {
	for _, sample := range sampleFrames(t) {
		if len(sample.payload) > framingEveryBoundaryBytesMax {
			continue
		}
		t.Run(sample.name, func(t *testing.T) {
			wire := clientFrame(ws.OpText, true, sample.payload, maskOf(1))
			chunks := make([][]byte, len(wire))
			for i := range wire {
				chunks[i] = wire[i : i+1]
			}
			reader, write := pipeReader(t, protocol.FrameBytesMax)
			done := write(chunks)
			expectMessage(t, reader, ws.OpText, sample.payload, "byte by byte")
			waitWriter(t, done)
		})
	}
}

func TestMessageReaderFragmentedAtEveryBoundary(t *testing.T) {
	for _, sample := range sampleFrames(t) {
		t.Run(sample.name, func(t *testing.T) {
			payload := sample.payload
			points := splitPoints(len(payload))
			var chunks [][]byte
			for i, split := range points {
				first := clientFrame(ws.OpText, false, payload[:split], maskOf(i))
				second := clientFrame(ws.OpContinuation, true, payload[split:], maskOf(i+1))
				// The fragments arrive in one write for even points and in
				// two for odd ones, the second split inside its header.
				if i%2 == 0 {
					chunks = append(chunks, append(first, second...))
				} else {
					chunks = append(chunks, first, second[:1], second[1:])
				}
			}
			reader, write := pipeReader(t, protocol.FrameBytesMax)
			done := write(chunks)
			for _, split := range points {
				if !expectMessage(t, reader, ws.OpText, payload, fmt.Sprintf("fragmented at payload byte %d of %d", split, len(payload))) {
					t.FailNow()
				}
			}
			waitWriter(t, done)
		})
	}
}

func TestMessageReaderThreeFragmentsWithControlFrames(t *testing.T) {
	// Control frames may come between the fragments of a message (RFC 6455
	// §5.4); the reader returns them as they come, then the whole message.
	for _, sample := range sampleFrames(t) {
		if len(sample.payload) < 3 {
			continue
		}
		t.Run(sample.name, func(t *testing.T) {
			payload := sample.payload
			a, b := len(payload)/3, 2*len(payload)/3
			closeBody := ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")
			chunks := [][]byte{
				clientFrame(ws.OpText, false, payload[:a], maskOf(1)),
				clientFrame(ws.OpPing, true, []byte("ping-1"), maskOf(2)),
				clientFrame(ws.OpContinuation, false, payload[a:b], maskOf(3)),
				clientFrame(ws.OpPong, true, nil, maskOf(4)),
				clientFrame(ws.OpClose, true, closeBody, maskOf(5)),
				clientFrame(ws.OpContinuation, true, payload[b:], maskOf(6)),
				// A second message, unfragmented: the reader's state is clean.
				clientFrame(ws.OpBinary, true, []byte("after"), maskOf(7)),
			}
			reader, write := pipeReader(t, protocol.FrameBytesMax)
			done := write(chunks)
			expectMessage(t, reader, ws.OpPing, []byte("ping-1"), "ping between fragments")
			expectMessage(t, reader, ws.OpPong, []byte{}, "pong between fragments")
			expectMessage(t, reader, ws.OpClose, closeBody, "close between fragments")
			expectMessage(t, reader, ws.OpText, payload, "the fragmented message")
			expectMessage(t, reader, ws.OpBinary, []byte("after"), "the next message")
			waitWriter(t, done)
		})
	}
}

func TestMessageReaderSizeLimit(t *testing.T) {
	const limit = 100
	cases := []struct {
		name   string
		chunks [][]byte
		// ok: the message of exactly limit bytes is returned.
		ok   bool
		size int64
	}{
		{name: "at the limit", chunks: [][]byte{clientFrame(ws.OpText, true, logFrameOfSize(limit), maskOf(1))}, ok: true},
		{name: "one byte over", chunks: [][]byte{clientFrame(ws.OpText, true, logFrameOfSize(limit+1), maskOf(1))}, size: limit + 1},
		{name: "fragments at the limit", chunks: [][]byte{
			clientFrame(ws.OpText, false, logFrameOfSize(limit)[:60], maskOf(1)),
			clientFrame(ws.OpContinuation, true, logFrameOfSize(limit)[60:], maskOf(2)),
		}, ok: true},
		{name: "fragments one byte over", chunks: [][]byte{
			clientFrame(ws.OpText, false, logFrameOfSize(limit + 1)[:60], maskOf(1)),
			clientFrame(ws.OpContinuation, true, logFrameOfSize(limit + 1)[60:], maskOf(2)),
		}, size: limit + 1},
		{name: "header announcing 2^62 bytes", chunks: [][]byte{headerOnly(ws.OpText, 1<<62)}, size: 1 << 62},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reader, write := pipeReader(t, limit)
			write(tc.chunks)
			opCode, payload, err := reader.next()
			if tc.ok {
				if err != nil || opCode != ws.OpText || len(payload) != limit {
					t.Fatalf("next: opcode %v, %d bytes, error %v; want the %d-byte message", opCode, len(payload), err, limit)
				}
				return
			}
			var tooLarge *frameTooLargeError
			if !errors.As(err, &tooLarge) {
				t.Fatalf("next: opcode %v, %d bytes, error %v; want a *frameTooLargeError", opCode, len(payload), err)
			}
			if tooLarge.size != tc.size || tooLarge.limit != limit {
				t.Errorf("frameTooLargeError{size: %d, limit: %d}, want {%d, %d}", tooLarge.size, tooLarge.limit, tc.size, limit)
			}
			if !strings.Contains(err.Error(), "FrameBytesMax") {
				t.Errorf("error %q does not name the limit", err)
			}
		})
	}
}

// TestMessageReaderRejectsBeforeReadingThePayload: an oversize frame is
// refused from its header, so a client cannot make the server buffer it.
func TestMessageReaderRejectsBeforeReadingThePayload(t *testing.T) {
	reader, write := pipeReader(t, protocol.FrameBytesMax)
	write([][]byte{headerOnly(ws.OpText, protocol.FrameBytesMax+1)})
	_, _, err := reader.next()
	var tooLarge *frameTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("next: %v, want a *frameTooLargeError without the payload being sent", err)
	}
}

// headerOnly encodes just the header of a masked frame of length n.
func headerOnly(opCode ws.OpCode, n int64) []byte {
	var buffer bytes.Buffer
	if err := ws.WriteHeader(&buffer, ws.Header{Fin: true, OpCode: opCode, Masked: true, Mask: maskOf(0), Length: n}); err != nil {
		panic(err)
	}
	return buffer.Bytes()
}

func TestMessageReaderProtocolViolations(t *testing.T) {
	text := []byte(`{"action":"PULSE"}`)
	unmasked := func() []byte {
		var buffer bytes.Buffer
		ws.WriteHeader(&buffer, ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(len(text))})
		buffer.Write(text)
		return buffer.Bytes()
	}()
	reserved := clientFrame(ws.OpText, true, text, maskOf(1))
	reserved[0] |= 0x40 // RSV1 without a negotiated extension
	cases := []struct {
		name   string
		chunks [][]byte
		want   error
	}{
		{name: "unmasked", chunks: [][]byte{unmasked}, want: errFrameUnmasked},
		{name: "reserved bits", chunks: [][]byte{reserved}, want: errFrameReservedBits},
		{name: "fragmented ping", chunks: [][]byte{clientFrame(ws.OpPing, false, []byte("p"), maskOf(1))}, want: errFrameControl},
		{name: "ping of 126 bytes", chunks: [][]byte{clientFrame(ws.OpPing, true, bytes.Repeat([]byte{'p'}, 126), maskOf(1))}, want: errFrameControl},
		{name: "continuation first", chunks: [][]byte{clientFrame(ws.OpContinuation, true, text, maskOf(1))}, want: errFrameSequence},
		{name: "text inside a fragmented message", chunks: [][]byte{
			clientFrame(ws.OpText, false, text[:5], maskOf(1)),
			clientFrame(ws.OpText, true, text[5:], maskOf(2)),
		}, want: errFrameSequence},
		{name: "reserved opcode", chunks: [][]byte{clientFrame(ws.OpCode(0x3), true, text, maskOf(1))}, want: errFrameOpCode},
		{name: "reserved control opcode", chunks: [][]byte{clientFrame(ws.OpCode(0xB), true, nil, maskOf(1))}, want: errFrameOpCode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reader, write := pipeReader(t, protocol.FrameBytesMax)
			write(tc.chunks)
			opCode, payload, err := reader.next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("next: opcode %v, %q, error %v; want %v", opCode, payload, err, tc.want)
			}
			if !isProtocolViolation(err) {
				t.Errorf("isProtocolViolation(%v) is false: the connection would not be closed with 1002", err)
			}
		})
	}
}
