package diskstore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// The durable commit benchmarks (issue 16) commit batches shaped like the
// server's (1–5 messages of about 100 bytes, a record of 400 bytes in one
// commit out of ten) from many sessions at once, one goroutine per session
// as the server has one actor per session, through the journal on the disk
// benchDirectory picks. One op is one commit. They report, besides ns/op:
//
//	commits/s         commits completed per second of the run
//	p50-µs, p99-µs    latency of Commit, from call to return
//	p999-µs           (closed loop only)
//	late-p50-µs, late-p99-µs (paced only) how late a session starts a
//	                  commit after its scheduled time: timer and scheduler
//	                  delay, i.e. waiting for a P
//	skipped/op        (paced only) ticks skipped by sessions that fell
//	                  more than one interval behind
//	flushes/op        disk cache flushes per commit (whole disk, so other
//	                  I/O on the machine counts too); divided by the
//	                  flushes of one fdatasync (BenchmarkDurableWrite), it
//	                  gives syncs per commit, the inverse of the group size
//	devwrites/op      write requests the disk completed per commit
//
// GOMAXPROCS matters (a server pinned to one core runs with one P): run
// them with -cpu 1,2, and pinned with taskset -c 0; see
// docs/benchmarks.md, "Durable commit micro-benchmarks (2026-12-02)".

// BenchmarkDurableCommit commits in a closed loop: every session commits
// again as soon as its commit returns, so it measures the throughput of
// the journal and the latency at saturation.
func BenchmarkDurableCommit(b *testing.B) {
	for _, sessions := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			benchmarkDurableCommit(b, sessions, 0)
		})
	}
}

// BenchmarkDurableCommitPaced commits at a fixed rate per session, like
// the reflector at 100 sessions × 10 clients × 5 msg/s (50 commits/s per
// session when every commit holds one client message): a load that does
// not saturate the machine. A session that falls more than one interval
// behind skips the ticks it missed.
func BenchmarkDurableCommitPaced(b *testing.B) {
	for _, test := range []struct {
		sessions  int
		perSecond float64
	}{{10, 50}, {100, 50}, {1000, 5}} {
		b.Run(fmt.Sprintf("sessions=%d/rate=%g", test.sessions, test.perSecond), func(b *testing.B) {
			benchmarkDurableCommit(b, test.sessions, test.perSecond)
		})
	}
}

// batchSource makes one session's batches.
type batchSource struct {
	random   *rand.Rand
	seq      uint32
	data     []byte
	record   []byte
	messages []store.Message
}

func newBatchSource(session int) *batchSource {
	data := append([]byte(`[123456,4294967290,"`), bytes.Repeat([]byte("x"), 100-23)...)
	return &batchSource{
		random: rand.New(rand.NewPCG(uint64(session), 16)),
		data:   append(data, `"]`...),
		record: bytes.Repeat([]byte("r"), 400),
	}
}

// next returns the next batch, valid until the following call.
func (source *batchSource) next() store.Batch {
	source.messages = source.messages[:0]
	for range 1 + source.random.IntN(5) {
		source.seq++
		source.messages = append(source.messages, store.Message{Seq: source.seq, Data: source.data})
	}
	batch := store.Batch{Append: source.messages}
	if source.random.IntN(10) == 0 {
		batch.Record = source.record
	}
	return batch
}

// benchmarkDurableCommit runs b.N commits from sessions goroutines, in a
// closed loop when perSecond is 0, else each session paced at perSecond.
func benchmarkDurableCommit(b *testing.B, sessions int, perSecond float64) {
	directory := benchDirectory(b)
	s, err := Open(directory, Options{Durable: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if s.journal == nil {
		b.Skip("no journal on this system")
	}
	ctx := context.Background()
	ids := make([]string, sessions)
	sources := make([]*batchSource, sessions)
	// Every session exists (directory, open log) before the timer starts,
	// as in a server that has been running.
	var warm sync.WaitGroup
	for session := range sessions {
		ids[session] = fmt.Sprintf("session-%04d", session)
		sources[session] = newBatchSource(session)
		warm.Go(func() {
			if err := s.Commit(ctx, ids[session], sources[session].next()); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()
	if b.Failed() {
		return
	}

	latencies := make([][]time.Duration, sessions)
	lateness := make([][]time.Duration, sessions)
	var skipped atomic.Int64
	var next atomic.Int64
	var wait sync.WaitGroup
	before := readDeviceCounters(directory)
	b.ResetTimer()
	started := time.Now()
	for session := range sessions {
		wait.Go(func() {
			id, source := ids[session], sources[session]
			mine := make([]time.Duration, 0, b.N/sessions+1)
			var late []time.Duration
			var interval time.Duration
			var scheduled time.Time
			if perSecond > 0 {
				interval = time.Duration(float64(time.Second) / perSecond)
				late = make([]time.Duration, 0, b.N/sessions+1)
				// Sessions start spread over one interval.
				scheduled = started.Add(time.Duration(source.random.Int64N(int64(interval))))
			}
			for next.Add(1) <= int64(b.N) {
				if perSecond > 0 {
					time.Sleep(time.Until(scheduled))
					now := time.Now()
					late = append(late, now.Sub(scheduled))
					scheduled = scheduled.Add(interval)
					if behind := now.Sub(scheduled); behind > 0 {
						missed := behind/interval + 1
						skipped.Add(int64(missed))
						scheduled = scheduled.Add(missed * interval)
					}
				}
				begin := time.Now()
				if err := s.Commit(ctx, id, source.next()); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(begin))
			}
			latencies[session], lateness[session] = mine, late
		})
	}
	wait.Wait()
	elapsed := time.Since(started)
	b.StopTimer()
	reportDevice(b, directory, before, b.N)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	all := slices.Concat(latencies...)
	slices.Sort(all)
	reportPercentiles(b, all, "", perSecond == 0)
	if perSecond > 0 {
		late := slices.Concat(lateness...)
		slices.Sort(late)
		reportPercentiles(b, late, "late-", false)
		b.ReportMetric(float64(skipped.Load())/float64(b.N), "skipped/op")
	}
}

// percentile returns quantile q of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// reportPercentiles reports p50 and p99 (and p99.9 with tail) of sorted
// durations in µs, as metrics named with prefix.
func reportPercentiles(b *testing.B, sorted []time.Duration, prefix string, tail bool) {
	if len(sorted) == 0 {
		return
	}
	micro := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(micro(percentile(sorted, 0.50)), prefix+"p50-µs")
	b.ReportMetric(micro(percentile(sorted, 0.99)), prefix+"p99-µs")
	if tail {
		b.ReportMetric(micro(percentile(sorted, 0.999)), prefix+"p999-µs")
	}
}
