package jsstore

import (
	"errors"
	"slices"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

func TestCodecRoundTrip(t *testing.T) {
	var state sessionState
	batches := []store.Batch{
		{Append: []store.Message{message(1), message(2), {Seq: 3, Data: []byte{}}}, Record: []byte{}},
		{Append: []store.Message{message(4)}, DropFront: 2},
		{Record: []byte("r")},
	}
	for _, batch := range batches {
		if err := state.apply(encodeBatch(&batch)); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	check := func(state *sessionState) {
		t.Helper()
		got := seqs(store.Session{Messages: state.messages})
		if string(state.record) != "r" || !slices.Equal(got, []uint32{3, 4}) {
			t.Fatalf("state: record %q, seqs %v; want r, [3 4]", state.record, got)
		}
		if want := int64(len("r") + len(message(4).Data)); state.liveBytes != want {
			t.Fatalf("liveBytes = %d, want %d", state.liveBytes, want)
		}
	}
	check(&state)
	// A checkpoint replaces whatever came before it.
	restored := sessionState{record: []byte("old"), messages: []store.Message{message(9)}}
	if err := restored.apply(encodeCheckpoint(&state)); err != nil {
		t.Fatalf("apply checkpoint: %v", err)
	}
	check(&restored)
}

func TestCodecMalformed(t *testing.T) {
	good := encodeBatch(&store.Batch{Append: []store.Message{message(1)}, Record: []byte("record")})
	for length := range len(good) {
		var state sessionState
		if err := state.apply(good[:length]); !errors.Is(err, errMalformed) {
			t.Errorf("apply of %d of %d bytes: error = %v, want errMalformed", length, len(good), err)
		}
	}
	var state sessionState
	if err := state.apply(encode(kindBatch, nil, 2, []store.Message{message(1)})); !errors.Is(err, errMalformed) {
		t.Errorf("apply of a batch dropping more than it has: error = %v, want errMalformed", err)
	}
}
