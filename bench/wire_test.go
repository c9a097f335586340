package bench

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

func TestCountSyncMessages(t *testing.T) {
	for _, tc := range []struct {
		frame string
		want  int
		bad   bool
	}{
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[],"time":1}}`, 0, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[ ],"time":1}}`, 0, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"a,b]"]],"time":1}}`, 1, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"q\"],["],[3,4,{"what":"users","joined":["x","y"]}],[5,6,"\\"]],"time":1}}`, 3, false},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"a"}],"time":1}}`, 0, true},
		{`{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"a"]`, 0, true},
		{`{"id":"s","action":"SYNC","args":{}}`, 0, true},
	} {
		got, err := countSyncMessages([]byte(tc.frame))
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("countSyncMessages(%s) = %d, %v; want %d, error %v", tc.frame, got, err, tc.want, tc.bad)
		}
	}
}

// TestAppendClientFrame checks the one-write client frames against the
// WebSocket library's reader at the three length encodings.
func TestAppendClientFrame(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		encoded := appendClientFrame([]byte("prefix"), ws.OpText, payload)
		if string(encoded[:6]) != "prefix" {
			t.Fatalf("size %d: the prefix was overwritten", size)
		}
		frame, err := ws.ReadFrame(bytes.NewReader(encoded[6:]))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !frame.Header.Fin || !frame.Header.Masked || frame.Header.OpCode != ws.OpText {
			t.Fatalf("size %d: header %+v, want a final masked text frame", size, frame.Header)
		}
		ws.Cipher(frame.Payload, frame.Header.Mask, 0)
		if !bytes.Equal(frame.Payload, payload) {
			t.Fatalf("size %d: the unmasked payload differs from the original", size)
		}
	}
}

// TestFrameParser feeds a stream of frames (masked and not, control frames,
// a fragmented message, all three length encodings) to the parser in
// pieces of every size from 1 byte up and expects the same messages.
func TestFrameParser(t *testing.T) {
	var stream []byte
	var want []string
	for i, size := range []int{0, 5, 125, 126, 300, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{byte('a' + i)}, size)
		if i%2 == 0 {
			stream = appendClientFrame(stream, ws.OpText, payload)
		} else {
			var frame bytes.Buffer
			if err := ws.WriteFrame(&frame, ws.NewTextFrame(payload)); err != nil {
				t.Fatal(err)
			}
			stream = append(stream, frame.Bytes()...)
		}
		want = append(want, string(payload))
	}
	var frame bytes.Buffer
	ws.WriteFrame(&frame, ws.NewPingFrame([]byte("ping")))
	ws.WriteFrame(&frame, ws.NewFrame(ws.OpText, false, []byte("frag-")))
	ws.WriteFrame(&frame, ws.NewFrame(ws.OpContinuation, false, []byte("ment-")))
	ws.WriteFrame(&frame, ws.NewFrame(ws.OpContinuation, true, []byte("ed")))
	ws.WriteFrame(&frame, ws.NewCloseFrame(nil))
	stream = append(stream, frame.Bytes()...)
	want = append(want, "frag-ment-ed")

	for _, piece := range []int{1, 2, 3, 7, 100, 4096, len(stream)} {
		var parser frameParser
		var got []string
		pings := 0
		var err error
		for rest := stream; len(rest) > 0 && err == nil; {
			n := min(piece, len(rest))
			chunk := append([]byte(nil), rest[:n]...) // the parser may modify what it is fed
			rest = rest[n:]
			err = parser.feed(chunk, func(message []byte) error {
				got = append(got, string(message))
				return nil
			}, func(header ws.Header, payload []byte) error {
				if header.OpCode == ws.OpPing && string(payload) == "ping" {
					pings++
				}
				return nil
			})
		}
		if err != io.EOF {
			t.Fatalf("pieces of %d: feed ended with %v, want io.EOF at the close frame", piece, err)
		}
		if pings != 1 || len(got) != len(want) {
			t.Fatalf("pieces of %d: %d pings and %d messages, want 1 and %d", piece, pings, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("pieces of %d: message %d has %d bytes, want %d (%.20q)", piece, i, len(got[i]), len(want[i]), want[i])
			}
		}
	}
}

func TestClusterURL(t *testing.T) {
	urls := []string{"ws://a/r", "ws://b/r", "ws://c/r"}
	for session := range 3 {
		if got := clusterURL(urls, session, 0); got != urls[0] {
			t.Errorf("session %d member 0 joins through %s, want the first URL", session, got)
		}
		seen := map[string]int{}
		for member := 1; member <= 4; member++ {
			seen[clusterURL(urls, session, member)]++
		}
		if seen[urls[0]] != 0 || seen[urls[1]] != 2 || seen[urls[2]] != 2 {
			t.Errorf("session %d: members 1-4 spread %v, want 2 each over the other URLs", session, seen)
		}
	}
	if got := clusterURL(urls[:1], 2, 5); got != urls[0] {
		t.Errorf("one URL: got %s", got)
	}
	if !validURLs("ws://a/r,wss://b/r") || validURLs("ws://a/r,http://b/r") {
		t.Error("validURLs")
	}
}
