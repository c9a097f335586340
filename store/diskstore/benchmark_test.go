package diskstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// openBenchStore opens a store for a benchmark, closed at its end, and
// returns a stamped message of 100 bytes.
func openBenchStore(b *testing.B, durable bool) (*Store, []byte) {
	s, err := Open(b.TempDir(), Options{Durable: durable})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	data := append([]byte(`[123456,4294967290,"`), bytes.Repeat([]byte("x"), 100-23)...)
	return s, append(data, `"]`...)
}

func benchmarkCommit(b *testing.B, durable, withRecord bool) {
	s, data := openBenchStore(b, durable)
	ctx := context.Background()
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

// BenchmarkCommitConcurrent commits one message at a time from 100
// sessions at once (the reflector under load: one actor per session),
// durably: the group commit shares the syncs. One op is one commit; the
// commit latency percentiles are reported.
func BenchmarkCommitConcurrent(b *testing.B) {
	const sessions = 100
	s, data := openBenchStore(b, true)
	ctx := context.Background()
	var next atomic.Int64
	latencies := make([][]time.Duration, sessions)
	var wait sync.WaitGroup
	b.ResetTimer()
	for session := range sessions {
		wait.Go(func() {
			id := fmt.Sprint("session-", session)
			for seq := uint32(1); next.Add(1) <= int64(b.N); seq++ {
				started := time.Now()
				if err := s.Commit(ctx, id, store.Batch{Append: []store.Message{{Seq: seq, Data: data}}}); err != nil {
					b.Error(err)
					return
				}
				latencies[session] = append(latencies[session], time.Since(started))
			}
		})
	}
	wait.Wait()
	b.StopTimer()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}
