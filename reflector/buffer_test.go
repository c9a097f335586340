package reflector

import (
	"bytes"
	"fmt"
	"testing"
)

// TestMessageBuffer checks the chunked buffer against the plain list it
// replaces: after every add and drop, the runs joined by commas are the
// messages joined by commas, each stored message is its input, and seqs
// (wrapping at 2^32) index the right message.
func TestMessageBuffer(t *testing.T) {
	var b messageBuffer
	var want [][]byte
	seq := uint32(0xFFFFFF00) // wraps during the test
	check := func(step string) {
		t.Helper()
		if b.len() != len(want) {
			t.Fatalf("%s: %d messages, want %d", step, b.len(), len(want))
		}
		if got, expected := bytes.Join(b.runs(nil), []byte{','}), bytes.Join(want, []byte{','}); !bytes.Equal(got, expected) {
			t.Fatalf("%s: runs join to %d bytes that differ from the %d bytes of the messages", step, len(got), len(expected))
		}
		for i := range want {
			m := b.at(i)
			if !bytes.Equal(b.data(m), want[i]) {
				t.Fatalf("%s: message %d is %q, want %q", step, i, b.data(m), want[i])
			}
			if b.index(m.seq) != i {
				t.Fatalf("%s: index(%d) = %d, want %d", step, m.seq, b.index(m.seq), i)
			}
		}
		if len(want) > 0 && (b.index(b.at(0).seq-1) != -1 || b.index(b.last().seq+1) != -1) {
			t.Fatalf("%s: index finds seqs outside the buffer", step)
		}
	}
	for round := range 6 {
		for i := range 700 {
			size := 20 + (i*37)%300
			if i == 350 {
				size = bufferChunkBytesMax + 1000 // larger than a chunk
			}
			data := []byte(fmt.Sprintf("[%d,%d,%q]", i, seq, bytes.Repeat([]byte{'a' + byte(round)}, size)))
			stored := b.add(seq, int64(i), data)
			if !bytes.Equal(stored, data) || cap(stored) != len(stored) {
				t.Fatalf("add returned %d bytes (cap %d) for %d", len(stored), cap(stored), len(data))
			}
			data[1] = 'X' // the buffer holds a copy
			want = append(want, stored)
			seq++
		}
		check(fmt.Sprintf("round %d after adds", round))
		drop := []int{1, 349, 351, 0, 700, len(want)}[round] // the last round drops all
		if drop > len(want) {
			drop = len(want)
		}
		b.dropFront(drop)
		want = want[drop:]
		check(fmt.Sprintf("round %d after dropping %d", round, drop))
		if len(b.chunks) > 0 && len(want) > 0 && b.at(0).chunk != b.chunkBase {
			t.Fatalf("round %d: chunks before the first message's are kept", round)
		}
	}
}

// data returns the encoding of a buffered message.
func (b *messageBuffer) data(m *bufferedMessage) []byte {
	return b.chunks[m.chunk-b.chunkBase][m.offset : m.offset+m.size]
}
