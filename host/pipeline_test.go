package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// pipelinedStore is a recordingStore whose commits become durable only
// when the test says so (durable), as with the journal of store/diskstore.
type pipelinedStore struct {
	*recordingStore
	// reports are the durability callbacks of the submitted batches, in
	// order; failSubmit makes Submit itself fail.
	reports    []func(error)
	failSubmit error
}

func (s *pipelinedStore) Submit(ctx context.Context, id string, batch store.Batch, durable func(error)) (bool, error) {
	if s.failSubmit != nil {
		s.journal.add("submit failed")
		return false, s.failSubmit
	}
	s.journal.add("submit %d messages", len(batch.Append))
	if err := s.Store.Commit(ctx, id, batch); err != nil {
		return false, err
	}
	s.reports = append(s.reports, durable)
	return false, nil
}

// durable reports the oldest submitted batch durable (or failed), as the
// store's goroutine would, through the shell's Notify.
func (s *pipelinedStore) durable(err error) {
	report := s.reports[0]
	s.reports = s.reports[1:]
	report(err)
}

// openPipelined opens a session whose Notify steps each report straight
// back into it (a shell on one goroutine).
func openPipelined(t *testing.T, st *pipelinedStore, j *journal) *host.Session {
	t.Helper()
	var h *host.Session
	h = host.Open(context.Background(), "S", 0, host.Options{Config: reflector.DefaultConfig(), Timeline: "T1",
		Store: st, Conns: recordingConns{j}, Observer: recordingObserver{j},
		Notify: func(err error) { h.Durable(err) }})
	return h
}

// TestPipelinedFlushWaitsForDurability: with a pipelined store, a flush's
// frames wait until its batch is durable; a later flush's batch is
// submitted meanwhile, and its frames, and those of a flush without
// storage, go out only after the earlier ones, in order.
func TestPipelinedFlushWaitsForDurability(t *testing.T) {
	j := &journal{}
	st := &pipelinedStore{recordingStore: &recordingStore{Store: memstore.New(), journal: j}}
	h := openPipelined(t, st, j)
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h.Step(1, reflector.Receive{Conn: 1, Frame: sendFrame(t, "a")})
	h.Flush(context.Background())
	h.Step(2, reflector.Receive{Conn: 1, Frame: sendFrame(t, "b")})
	h.Flush(context.Background())
	h.Step(3, reflector.Receive{Conn: 1, Frame: pingFrame(t)})
	h.Flush(context.Background())
	if got, want := strings.Join(j.lines, "\n"), "opened resumed=false messages=0\nsubmit 1 messages\nsubmit 1 messages"; got != want {
		t.Fatalf("before any batch is durable:\n%s\nwant\n%s", got, want)
	}
	if pending := h.Pending(); pending.Waiting != 3 {
		t.Fatalf("pending %+v, want 3 flushes waiting", pending)
	}
	if released, queued := h.Released(); released != 0 || queued != 3 {
		t.Fatalf("released %d of %d flushes, want 0 of 3", released, queued)
	}

	j.lines = nil
	st.durable(nil)
	want := "send SYNC to [1]\nsend RECV to [1]\nflush\nflushed 1 notes"
	if got := strings.Join(j.lines, "\n"); got != want {
		t.Fatalf("the first batch durable:\n%s\nwant\n%s", got, want)
	}
	j.lines = nil
	st.durable(nil)
	want = "send RECV to [1]\nflush\nflushed 0 notes\nsend PONG to [1]\nflush\nflushed 0 notes"
	if got := strings.Join(j.lines, "\n"); got != want {
		t.Fatalf("the second batch durable:\n%s\nwant\n%s", got, want)
	}
	if released, queued := h.Released(); released != 3 || queued != 3 || h.Pending().Waiting != 0 {
		t.Fatalf("released %d of %d flushes, %d waiting; want all 3 out", released, queued, h.Pending().Waiting)
	}

	// Nothing waits: a flush without storage goes out at once.
	j.lines = nil
	h.Step(4, reflector.Receive{Conn: 1, Frame: pingFrame(t)})
	h.Flush(context.Background())
	if got, want := strings.Join(j.lines, "\n"), "send PONG to [1]\nflush\nflushed 0 notes"; got != want {
		t.Fatalf("a flush with nothing waiting:\n%s\nwant\n%s", got, want)
	}
}

// TestPipelinedDurabilityFailureSendsNothing: when a submitted batch
// fails to become durable, nothing that waits is sent (neither its frames
// nor those of later flushes), every client is asked to reconnect, the
// session ends, and the reports still to come are ignored. A Submit that
// fails at once does the same.
func TestPipelinedDurabilityFailureSendsNothing(t *testing.T) {
	for _, atOnce := range []bool{false, true} {
		j := &journal{}
		st := &pipelinedStore{recordingStore: &recordingStore{Store: memstore.New(), journal: j}}
		h := openPipelined(t, st, j)
		h.Step(0, reflector.Connect{Conn: 1})
		h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
		h.Step(1, reflector.Receive{Conn: 1, Frame: sendFrame(t, "a")})
		h.Flush(context.Background())
		j.lines = nil
		want := "submit 1 messages\nstorage failed: disk full\nclose all with 4003\nflush"
		if atOnce {
			st.failSubmit = errors.New("disk full")
			want = "submit failed\nstorage failed: disk full\nclose all with 4003\nflush"
		}
		h.Step(2, reflector.Receive{Conn: 1, Frame: sendFrame(t, "b")})
		h.Flush(context.Background())
		if !atOnce {
			st.durable(errors.New("disk full"))
			st.durable(nil) // the second batch's report, after the failure
		}
		if got := strings.Join(j.lines, "\n"); got != want {
			t.Errorf("atOnce=%v: a failed batch executed\n%s\nwant\n%s", atOnce, got, want)
		}
		if !h.Ended() || h.Failed() == nil || h.Pending().Waiting != 0 {
			t.Errorf("atOnce=%v: after the failure: ended %v, failed %v, waiting %d", atOnce, h.Ended(), h.Failed(), h.Pending().Waiting)
		}
	}
}

// TestPipelineNeedsNotify: a pipelined store without Notify commits
// synchronously.
func TestPipelineNeedsNotify(t *testing.T) {
	j := &journal{}
	st := &pipelinedStore{recordingStore: &recordingStore{Store: memstore.New(), journal: j}}
	h2 := host.Open(context.Background(), "S2", 0, host.Options{Config: reflector.DefaultConfig(), Timeline: "T1",
		Store: st, Conns: recordingConns{j}, Observer: recordingObserver{j}})
	h2.Step(0, reflector.Connect{Conn: 1})
	h2.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h2.Step(1, reflector.Receive{Conn: 1, Frame: sendFrame(t, "a")})
	j.lines = nil
	h2.Flush(context.Background())
	if got := strings.Join(j.lines, "\n"); !strings.HasPrefix(got, "commit 1 messages\nsend SYNC") {
		t.Errorf("without Notify a flush executed\n%s\nwant a synchronous commit, then the frames", got)
	}
}

func pingFrame(t *testing.T) protocol.ClientFrame {
	t.Helper()
	frame, err := protocol.DecodeClientFrame([]byte(`{"id":"S","action":"PING","args":1}`))
	if err != nil {
		t.Fatal(err)
	}
	return frame
}
