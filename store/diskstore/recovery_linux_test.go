package diskstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// BenchmarkRecovery measures how long Open takes after a crash of a
// durable store holding 100 sessions and 100,000 journal entries (1,000
// commits of one ~100-byte message per session, a record every tenth):
// the journal's replay onto the session files, their sync and the removal
// of the journal. It reports ms per Open and entries replayed; the data
// directory is built once (commits from 100 goroutines share the syncer's
// rounds) and copied for every Open.
func BenchmarkRecovery(b *testing.B) {
	if !fileSystemSyncAvailable {
		b.Skip("the journal is used where syncfs is available (Linux)")
	}
	const sessions, commitsPerSession = 100, 1000
	built := benchDirectory(b)
	s, err := Open(built, Options{Durable: true})
	if err != nil {
		b.Fatal(err)
	}
	var wait sync.WaitGroup
	for session := range sessions {
		wait.Go(func() {
			id := fmt.Sprintf("session-%03d", session)
			for commit := range commitsPerSession {
				seq := uint32(commit + 1)
				batch := store.Batch{Append: []store.Message{{Seq: seq, Data: fmt.Appendf(nil, `[%d,%d,"%096d"]`, seq*10, seq, seq)}}}
				if commit%10 == 0 {
					batch.Record = fmt.Appendf(nil, `{"timeline":"t","seq":%d}`, seq)
				}
				if err := s.Commit(context.Background(), id, batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wait.Wait()
	s.crashForTest()
	b.ResetTimer()
	var replayed int
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		directory := benchDirectory(b)
		copyTree(b, built, directory)
		b.StartTimer()
		started := time.Now()
		recovered, err := Open(directory, Options{Durable: true})
		total += time.Since(started)
		if err != nil {
			b.Fatal(err)
		}
		replayed = recovered.Recovery().Replayed
		b.StopTimer()
		if err := recovered.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(replayed), "entries")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/open")
}
