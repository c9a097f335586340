package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/server"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// startMetronomeOn starts an in-process server on st and returns it; the
// test's cleanup shuts it down if the test did not.
func startMetronomeOn(t *testing.T, st store.Store) *server.Server {
	t.Helper()
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// signalWriter logs progress lines and closes ready at the first one that
// contains mark.
type signalWriter struct {
	t     *testing.T
	mark  string
	ready chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	if strings.Contains(string(p), w.mark) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

// TestFailoverAgainstMetronome fails sessions over from one server to
// another. Both servers share one store, as the nodes of a cluster share
// theirs: a session that the first one persisted at its shutdown is
// loaded by the second when its clients come back there (docs/protocol.md
// §11.3), with the same timeline, seqs and messages.
//
// Plain servers do not forward a session's clients to the node that
// stamps it, as a cluster's nodes do, so a session must never have
// clients on both at once: each would stamp its own messages under the
// same seqs (a split brain), which the scenario would rightly report. The
// URL list [first, first, second, second] with 2 clients per session
// puts both clients of sessions 0 and 2 on the first server and both of
// sessions 1 and 3 on the second ((i·2 + j) mod 4). Only a break moves a
// client, and the first server commits every session's state before it
// sends the 4003 of its shutdown, so the second loads sessions 0 and 2
// only after the first let go of them. The client that started on URL 0
// tries URL 1 (the stopped first server: refused) before URL 2, which
// exercises the round robin and the back-off.
func TestFailoverAgainstMetronome(t *testing.T) {
	shared := memstore.New()
	first, second := startMetronomeOn(t, shared), startMetronomeOn(t, shared)
	firstURL, secondURL := "ws://"+first.Addr()+"/reflector", "ws://"+second.Addr()+"/reflector"

	config := DefaultFailoverConfig()
	config.URLs = []string{firstURL, firstURL, secondURL, secondURL}
	config.Sessions, config.Clients, config.Rate = 4, 2, 10
	config.Duration, config.DrainTimeout = 2*time.Second, 5*time.Second
	config.SessionPrefix = testPrefix(t)
	progress := &signalWriter{t: t, mark: "joined in", ready: make(chan struct{})}
	config.Progress = progress

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The first server stops in the middle of the sending (which starts
	// sendStartDelay after every client joined), from outside the bench.
	shutdownDone := make(chan error, 1)
	go func() {
		select {
		case <-progress.ready:
		case <-ctx.Done():
			shutdownDone <- ctx.Err()
			return
		}
		time.Sleep(sendStartDelay + 500*time.Millisecond)
		shutdownCtx, cancelShutdown := context.WithTimeout(ctx, 10*time.Second)
		defer cancelShutdown()
		shutdownDone <- first.Shutdown(shutdownCtx)
	}()
	result, err := RunFailover(ctx, config)
	if shutdownErr := <-shutdownDone; shutdownErr != nil {
		t.Fatalf("shutting the first server down: %v", shutdownErr)
	}
	if err != nil {
		t.Fatalf("RunFailover: %v", err)
	}
	var table strings.Builder
	result.WriteTable(&table)
	t.Log("\n" + table.String())

	// The 4 clients of sessions 0 and 2 were asked to reconnect and did.
	if result.Breaks["4003"] < 4 || result.Reconnects < 4 {
		t.Errorf("breaks %v, reconnects %d: want at least the 4 clients of the first server closed with 4003 and back", result.Breaks, result.Reconnects)
	}
	if result.Lost != 0 || result.Missing != 0 || result.Duplicated != 0 || result.ReusedSeq != 0 ||
		result.Reordered != 0 || result.TimelineChanges != 0 || result.Unexpected != 0 {
		t.Errorf("lost %d, missing %d, duplicated %d, reused seq %d, reordered %d, timeline changes %d, unexpected %d: want none",
			result.Lost, result.Missing, result.Duplicated, result.ReusedSeq, result.Reordered, result.TimelineChanges, result.Unexpected)
	}
	if result.NeverStampedAgain != 0 || result.ClientsFailed != 0 || result.ClientsReconnecting != 0 {
		t.Errorf("%d sessions never stamped again, %d clients failed, %d still reconnecting: want none (%s)",
			result.NeverStampedAgain, result.ClientsFailed, result.ClientsReconnecting, result.FirstError)
	}
	// Every session has its longest stall; the failed-over ones waited at
	// least the reconnect delay between their last message on the first
	// server and their first on the second.
	if result.Stall.Count != 4 || result.Stall.MaxUs < reconnectDelayMin.Microseconds() {
		t.Errorf("stall summary %+v: want 4 sessions and a max ≥ %v", result.Stall, reconnectDelayMin)
	}
	if result.Sent == 0 || result.Delivered == 0 {
		t.Errorf("sent %d, delivered %d", result.Sent, result.Delivered)
	}
	if !result.OK {
		t.Errorf("result not OK: %s", result.FirstError)
	}
	var encoded bytes.Buffer
	if err := result.WriteJSON(&encoded); err != nil || !strings.Contains(encoded.String(), `"reused_seq": 0`) {
		t.Errorf("JSON %q, %v", encoded.String(), err)
	}
}

// testFailoverClient returns client 0 of a one-session run with 2 clients,
// not connected, for feeding SYNCs and RECVs directly.
func testFailoverClient() *failoverClient {
	config := DefaultFailoverConfig()
	config.Sessions, config.Clients, config.Duration = 1, 2, time.Second
	run := &failoverRun{config: config, sendsMax: 50,
		latency: &latencyRun{config: LatencyConfig{Clients: 2, IOTimeout: time.Second}, epoch: time.Now()}}
	return newFailoverClient(run, newFailoverSession("s", 2, run.sendsMax), 0, 0)
}

// seq returns the n-th seq of a new session (docs/protocol.md §4.5: the
// first is 4294967281, the 16th wraps to 0).
func seq(n int) uint32 { return 4294967280 + uint32(n) }

// stamped is the message array of seq n carrying message index of
// member 1.
func stamped(n, index int) string {
	return fmt.Sprintf(`[%d,%d,"b:1:%d:5:"]`, 100+n, seq(n), index)
}

func syncFrame(timeline string, last int, messages ...string) []byte {
	return fmt.Appendf(nil, `{"id":"s","action":"SYNC","args":{"url":"","messages":[%s],"time":500,"seq":%d,"timeline":%q,"flags":{}}}`,
		strings.Join(messages, ","), seq(last), timeline)
}

func recvFrame(message string) []byte {
	return fmt.Appendf(nil, `{"id":"s","action":"RECV","args":%s}`, message)
}

// TestFailoverContinuity feeds one client the SYNCs and RECVs of
// rejoins, good and bad, and checks what it counts.
func TestFailoverContinuity(t *testing.T) {
	type counts struct{ lost, timeline, duplicated, reused, reordered, distinct int64 }
	read := func(c *failoverClient) counts {
		return counts{c.lost.Load(), c.timelineChanges.Load(), c.seqDuplicates.Load() + c.duplicates,
			c.reusedSeq.Load(), c.seqReordered.Load() + c.outOfOrder, c.distinct.Load()}
	}
	// A client that joined a session holding seqs 1-2 and got 3-4 live;
	// what it had before (the first SYNC) is history, not received.
	joined := func(t *testing.T) *failoverClient {
		c := testFailoverClient()
		if err := c.checkSync(syncFrame("t1", 2, stamped(1, 0), stamped(2, 1)), time.Now()); err != nil {
			t.Fatal(err)
		}
		for n := 3; n <= 4; n++ {
			if err := c.handleFrame(recvFrame(stamped(n, n-1)), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if got := read(c); got != (counts{distinct: 2}) || c.lastSeq != seq(4) {
			t.Fatalf("after the join: %+v, last seq %d", got, c.lastSeq)
		}
		return c
	}
	all := []string{stamped(1, 0), stamped(2, 1), stamped(3, 2), stamped(4, 3)}
	for _, tc := range []struct {
		name string
		// sync is the SYNC after the rejoin (nil: none), then the RECVs.
		sync  []byte
		recvs []string
		want  counts
	}{
		{"seamless, with what was stamped during the break", syncFrame("t1", 6, append(all, stamped(5, 4), stamped(6, 5))...),
			[]string{stamped(7, 6)}, counts{distinct: 5}},
		{"spaces inside the replay are not a difference", syncFrame("t1", 4, stamped(1, 0), strings.ReplaceAll(stamped(2, 1), ",", ", "), stamped(3, 2), stamped(4, 3)),
			nil, counts{distinct: 2}},
		{"gap: the SYNC starts after the last seq + 1", syncFrame("t1", 7, stamped(6, 5), stamped(7, 6)),
			nil, counts{lost: 1, distinct: 4}},
		{"gap inside the SYNC's messages", syncFrame("t1", 6, append(all, stamped(6, 5))...),
			nil, counts{lost: 1, distinct: 3}},
		{"another message under a seq the client had", syncFrame("t1", 4, stamped(1, 0), stamped(2, 1), stamped(3, 9), stamped(4, 3)),
			nil, counts{reused: 1, distinct: 2}},
		{"the session went back: seq 4 is gone", syncFrame("t1", 3, all[:3]...),
			[]string{stamped(4, 7)}, counts{lost: 1, reused: 1, distinct: 3}},
		{"new timeline", syncFrame("t2", 1, stamped(1, 10)),
			nil, counts{timeline: 1, distinct: 3}},
		{"live: the same message twice", nil,
			[]string{stamped(5, 4), stamped(5, 4)}, counts{duplicated: 1, distinct: 3}},
		{"live: a different message under a seq the client had", nil,
			[]string{stamped(4, 8)}, counts{reused: 1, distinct: 2}},
		{"live: a skipped seq", nil,
			[]string{stamped(6, 5)}, counts{lost: 1, distinct: 3}},
		{"live: one message under two seqs", nil,
			[]string{stamped(5, 3)}, counts{duplicated: 1, distinct: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := joined(t)
			if tc.sync != nil {
				if err := c.checkSync(tc.sync, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			for _, message := range tc.recvs {
				if err := c.handleFrame(recvFrame(message), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if got := read(c); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestFailoverCloseCode: the reader of a joined connection answers pings
// and ends with the close frame's code, which decides whether the client
// comes back.
func TestFailoverCloseCode(t *testing.T) {
	var stream bytes.Buffer
	for _, frame := range []ws.Frame{
		ws.NewTextFrame([]byte(`{"id":"s","action":"TICK","args":1}`)),
		ws.NewPingFrame([]byte("p")),
		ws.NewCloseFrame(ws.NewCloseFrameBody(4003, "server shutting down, please reconnect")),
	} {
		if err := ws.WriteFrame(&stream, frame); err != nil {
			t.Fatal(err)
		}
	}
	var pings int
	link := linkReader{reader: bufio.NewReader(&stream), onControl: func(header ws.Header, _ []byte) error {
		if header.OpCode == ws.OpPing {
			pings++
		}
		return nil
	}}
	frame, err := link.next()
	if err != nil || !strings.Contains(string(frame), "TICK") {
		t.Fatalf("first frame %q, %v", frame, err)
	}
	_, err = link.next()
	var closed *closeError
	if !errors.As(err, &closed) || closed.code != 4003 || pings != 1 {
		t.Fatalf("got %v after %d pings, want a close with 4003 after 1 ping", err, pings)
	}
}

func TestFailoverConfig(t *testing.T) {
	if got := SplitURLs(" ws://a/r, ws://b/r ,,"); len(got) != 2 || got[0] != "ws://a/r" || got[1] != "ws://b/r" {
		t.Errorf("SplitURLs: %q", got)
	}
	config := DefaultFailoverConfig()
	if err := config.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	config.URLs = []string{"ws://a/r", "http://b/r"}
	if err := config.Validate(); err == nil || !strings.Contains(err.Error(), "http://b/r") {
		t.Errorf("a URL that is not ws:// accepted: %v", err)
	}
	config = DefaultFailoverConfig()
	config.StallBound = 0
	if err := config.Validate(); err == nil || !strings.Contains(err.Error(), "stall-bound") {
		t.Errorf("stall bound 0 accepted: %v", err)
	}
}
