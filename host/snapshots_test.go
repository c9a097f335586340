package host_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store/memstore"
)

// snapshotObserver is a recordingObserver that also records the snapshots
// the host reports durable (host.SnapshotObserver).
type snapshotObserver struct{ recordingObserver }

func (o snapshotObserver) SnapshotStored(id string, snapshotTime int64, url string) {
	o.journal.add("snapshot of %s stored: time %d %s", id, snapshotTime, url)
}

// snapFrame announces a snapshot of the session's last message.
func snapFrame(t *testing.T, h *host.Session, url string) protocol.ClientFrame {
	t.Helper()
	record := h.Core().Record()
	frame, err := protocol.DecodeClientFrame(fmt.Appendf(nil, `{"id":"S","action":"SNAP","args":{"time":%d,"seq":%d,"hash":"h","url":%q}}`,
		record.LastMessageTime, record.Seq, url))
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// snapshotLines returns the journal's lines from the first commit or
// submit on, without the frames.
func snapshotLines(j *journal) string {
	var lines []string
	for _, line := range j.lines {
		if !strings.HasPrefix(line, "send ") && line != "flush" && !strings.HasPrefix(line, "flushed") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// TestSnapshotStoredIsReportedWhenDurable: a SNAP's snapshot is reported
// after its batch's commit returned (and not for a failed commit), and
// when the session is restored from the store.
func TestSnapshotStoredIsReportedWhenDurable(t *testing.T) {
	j := &journal{}
	st := &recordingStore{Store: memstore.New(), journal: j}
	open := func() *host.Session {
		return host.Open(context.Background(), "S", 0, host.Options{Config: reflector.DefaultConfig(), Timeline: "T1",
			Store: st, Conns: recordingConns{j}, Observer: snapshotObserver{recordingObserver{j}}})
	}
	h := open()
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h.Step(5, reflector.Receive{Conn: 1, Frame: sendFrame(t, "a")})
	h.Flush(context.Background())
	snap := snapFrame(t, h, "http://h/files/snapshots/S/one.snap")
	h.Step(10, reflector.Receive{Conn: 1, Frame: snap})
	h.Flush(context.Background())
	h.Step(15, reflector.Receive{Conn: 1, Frame: sendFrame(t, "b")}) // no SNAP: nothing reported
	h.Flush(context.Background())
	want := strings.Join([]string{
		"opened resumed=false messages=0",
		"commit 1 messages",
		"commit 0 messages",
		"snapshot of S stored: time 5 http://h/files/snapshots/S/one.snap",
		"commit 1 messages",
	}, "\n")
	if got := snapshotLines(j); got != want {
		t.Errorf("reported\n%s\nwant\n%s", got, want)
	}

	h.Step(20, reflector.Receive{Conn: 1, Frame: sendFrame(t, "c")})
	h.Flush(context.Background())
	st.failCommit = errors.New("disk full")
	h.Step(25, reflector.Receive{Conn: 1, Frame: snapFrame(t, h, "http://h/files/snapshots/S/two.snap")})
	h.Flush(context.Background())
	if got := snapshotLines(j); strings.Contains(got, "two.snap") {
		t.Errorf("a snapshot whose commit failed was reported:\n%s", got)
	}

	st.failCommit = nil
	j.lines = nil
	open()
	if got, want := snapshotLines(j), "opened resumed=true messages=2\nsnapshot of S stored: time 5 http://h/files/snapshots/S/one.snap"; got != want {
		t.Errorf("restored:\n%s\nwant\n%s", got, want)
	}
}

// TestPipelinedSnapshotIsReportedWhenDurable: with a pipelined store the
// snapshot is reported once its batch is durable, not when submitted.
func TestPipelinedSnapshotIsReportedWhenDurable(t *testing.T) {
	j := &journal{}
	st := &pipelinedStore{recordingStore: &recordingStore{Store: memstore.New(), journal: j}}
	var h *host.Session
	h = host.Open(context.Background(), "S", 0, host.Options{Config: reflector.DefaultConfig(), Timeline: "T1",
		Store: st, Conns: recordingConns{j}, Observer: snapshotObserver{recordingObserver{j}},
		Notify: func(err error) { h.Durable(err) }})
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h.Step(5, reflector.Receive{Conn: 1, Frame: sendFrame(t, "a")})
	h.Flush(context.Background())
	st.durable(nil)
	h.Step(10, reflector.Receive{Conn: 1, Frame: snapFrame(t, h, "u/one.snap")})
	h.Flush(context.Background())
	if got := snapshotLines(j); strings.Contains(got, "snapshot of") {
		t.Fatalf("reported before the batch was durable:\n%s", got)
	}
	st.durable(nil)
	if got := snapshotLines(j); !strings.HasSuffix(got, "submit 0 messages\nsnapshot of S stored: time 5 u/one.snap") {
		t.Errorf("after the batch became durable:\n%s", got)
	}
}
