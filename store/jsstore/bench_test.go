package jsstore

import (
	"bytes"
	"context"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// BenchmarkCommit measures one Commit (a fenced append, acknowledged by
// the stream) of a batch of 10 messages of 100 bytes and a 200-byte
// record, to an embedded single-node (R1) server with file storage on the
// same machine. docs/cluster.md reports the result.
func BenchmarkCommit(b *testing.B) {
	srv := startServer(b)
	s := open(b, connect(b, srv), Options{Namespace: newNamespace()})
	ctx := context.Background()
	batch := store.Batch{Record: bytes.Repeat([]byte("r"), 200)}
	for index := range 10 {
		batch.Append = append(batch.Append, store.Message{Seq: uint32(index), Data: bytes.Repeat([]byte("m"), 100)})
	}
	batch.DropFront = len(batch.Append)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Commit(ctx, "bench", batch); err != nil {
			b.Fatalf("Commit: %v", err)
		}
	}
}
