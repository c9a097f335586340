package diskstore

import (
	"bytes"
	"context"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// BenchmarkCommitAppend measures the hot path of the reflector: committing
// one stamped message of about 100 bytes.
func BenchmarkCommitAppend(b *testing.B) {
	for _, test := range []struct {
		name    string
		durable bool
	}{{"Durable", true}, {"NotDurable", false}} {
		b.Run(test.name, func(b *testing.B) {
			benchmarkCommit(b, test.durable, false)
		})
	}
}

// BenchmarkCommitAppendRecord commits one message and a new record, the
// shape of a commit that also advances the session record.
func BenchmarkCommitAppendRecord(b *testing.B) {
	for _, test := range []struct {
		name    string
		durable bool
	}{{"Durable", true}, {"NotDurable", false}} {
		b.Run(test.name, func(b *testing.B) {
			benchmarkCommit(b, test.durable, true)
		})
	}
}

func benchmarkCommit(b *testing.B, durable, withRecord bool) {
	s, err := Open(b.TempDir(), Options{Durable: durable})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	data := append([]byte(`[123456,4294967290,"`), bytes.Repeat([]byte("x"), 100-23)...)
	data = append(data, `"]`...)
	record := bytes.Repeat([]byte("r"), 300)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	seq := uint32(0)
	for b.Loop() {
		seq++
		batch := store.Batch{Append: []store.Message{{Seq: seq, Data: data}}}
		if withRecord {
			batch.Record = record
		}
		if err := s.Commit(ctx, "session", batch); err != nil {
			b.Fatal(err)
		}
	}
}
