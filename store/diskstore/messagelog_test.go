package diskstore

import (
	"bytes"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// FuzzDecodeLog feeds arbitrary bytes after the header to the decoder: it
// must not panic, its valid prefix must decode to the same messages, and
// appending a new commit after that prefix must decode to one more commit.
func FuzzDecodeLog(f *testing.F) {
	valid, err := appendFrames(nil, []store.Message{{Seq: 1, Data: []byte("a")}, {Seq: 2, Data: []byte("bc")}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, tail []byte) {
		content := append([]byte(logHeader), tail...)
		messages, validBytes, err := decodeLog(content)
		if err != nil {
			t.Fatalf("decodeLog with a valid header: %v", err)
		}
		if validBytes < len(logHeader) || validBytes > len(content) {
			t.Fatalf("validBytes = %d outside [%d, %d]", validBytes, len(logHeader), len(content))
		}
		again, againBytes, err := decodeLog(content[:validBytes])
		if err != nil || againBytes != validBytes || len(again) != len(messages) {
			t.Fatalf("the valid prefix decodes to %d messages in %d bytes (%v), want %d in %d",
				len(again), againBytes, err, len(messages), validBytes)
		}
		if frameOffset(content, len(messages)) != validBytes {
			t.Fatalf("frameOffset of all %d messages = %d, want %d", len(messages), frameOffset(content, len(messages)), validBytes)
		}
		extra := store.Message{Seq: 7, Data: []byte("extra")}
		appended, err := appendFrames(bytes.Clone(content[:validBytes]), []store.Message{extra})
		if err != nil {
			t.Fatal(err)
		}
		withExtra, _, err := decodeLog(appended)
		if err != nil || len(withExtra) != len(messages)+1 || !bytes.Equal(withExtra[len(messages)].Data, extra.Data) {
			t.Fatalf("after appending a commit: %d messages (%v), want %d ending in %q", len(withExtra), err, len(messages)+1, extra.Data)
		}
	})
}
