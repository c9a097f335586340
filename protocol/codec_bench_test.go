package protocol_test

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
)

// Micro-benchmarks of the JSON codec. They report time and allocations
// only; nothing is asserted about speed.

const benchSessionID = "Oq7ScyMxXY7c-vcBSAA8rxHz3IXvH8f7KaGtOR4aQx8"

func readBenchFrame(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile("testdata/frames/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkDecodeSend decodes a typical SEND frame as the server does:
// the envelope (conn reader goroutine) and then the message array (Step).
func BenchmarkDecodeSend(b *testing.B) {
	data := readBenchFrame(b, "send.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		frame, err := protocol.DecodeClientFrame(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := protocol.DecodeMessage("args", frame.Args); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeClientFrameSend is the envelope part alone.
func BenchmarkDecodeClientFrameSend(b *testing.B) {
	data := readBenchFrame(b, "send.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.DecodeClientFrame(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJoin decodes a standard 2.0.4 JOIN (envelope + args).
func BenchmarkDecodeJoin(b *testing.B) {
	data := readBenchFrame(b, "join.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		frame, err := protocol.DecodeClientFrame(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := protocol.DecodeJoin(frame.Args); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeRecv stamps a message and wraps it in a RECV, into
// buffers reused across iterations.
func BenchmarkEncodeRecv(b *testing.B) {
	frame, err := protocol.DecodeClientFrame(readBenchFrame(b, "send.json"))
	if err != nil {
		b.Fatal(err)
	}
	message, err := protocol.DecodeMessage("args", frame.Args)
	if err != nil {
		b.Fatal(err)
	}
	var messageBuf, recvBuf []byte
	seq := uint32(0)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		messageBuf = protocol.AppendMessage(messageBuf[:0], 123456, seq, message.Payload, message.Extra)
		recvBuf = protocol.AppendRecv(recvBuf[:0], benchSessionID, messageBuf)
	}
	b.SetBytes(int64(len(recvBuf)))
}

// BenchmarkEncodeSync encodes a SYNC holding n buffered small messages
// (the payload of send.json) into a reused buffer.
func BenchmarkEncodeSync(b *testing.B) {
	payload := json.RawMessage(`"D/9l+ZYNPJzLtjQ5lHCkKTiVtqO/wZchLUdJfKRUz66FSe4hLp2cTix7t8aYaNEho1/81yDkDmFssrIcwax8WT1023uvFZHbA/+8I00xEHE="`)
	extra := []json.RawMessage{json.RawMessage("42")}
	for _, n := range []int{0, 10_000, 50_000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			sync := protocol.Sync{
				URL:       "http://127.0.0.1:8888/files/apps/io.croquet.hello/snapshots/abc.json",
				Time:      int64(n) * 10,
				Seq:       uint32(n),
				Tove:      "8tZVLtKybalcHfGKFNzgZw==Ghn2JVSugSM1TKqkpZhRWsat6mFBFhX1jjN25SCbJR8=",
				Reflector: "metronome",
				Timeline:  "timeline-0123456789",
				Messages:  make([][]byte, n),
			}
			for i := range sync.Messages {
				sync.Messages[i] = protocol.AppendMessage(nil, int64(i)*10, uint32(i+1), payload, extra)
			}
			var buf []byte
			buf = protocol.AppendSync(buf, benchSessionID, &sync)
			b.Run("reused-buffer", func(b *testing.B) {
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				for b.Loop() {
					buf = protocol.AppendSync(buf[:0], benchSessionID, &sync)
				}
			})
			// As reflector.sendSync calls it: AppendSync(nil, ...).
			b.Run("fresh-buffer", func(b *testing.B) {
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				for b.Loop() {
					_ = protocol.AppendSync(nil, benchSessionID, &sync)
				}
			})
		})
	}
}
