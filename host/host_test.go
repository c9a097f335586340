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
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// journal records, in order, what the host did to the store and the
// connections, so a test can check the order of the effects.
type journal struct {
	lines []string
}

func (j *journal) add(format string, args ...any) {
	j.lines = append(j.lines, fmt.Sprintf(format, args...))
}

// recordingStore is a memstore whose commits are journaled and can be made
// to fail.
type recordingStore struct {
	store.Store
	journal    *journal
	failCommit error
	failLoad   error
}

func (s *recordingStore) LoadSession(ctx context.Context, id string) (store.Session, error) {
	if s.failLoad != nil {
		return store.Session{}, s.failLoad
	}
	return s.Store.LoadSession(ctx, id)
}

func (s *recordingStore) Commit(ctx context.Context, id string, batch store.Batch) error {
	if s.failCommit != nil {
		s.journal.add("commit failed")
		return s.failCommit
	}
	s.journal.add("commit %d messages", len(batch.Append))
	return s.Store.Commit(ctx, id, batch)
}

type recordingConns struct{ journal *journal }

func (c recordingConns) Send(o *reflector.Outbound) {
	action := "?"
	if frame, err := protocol.DecodeServerFrame(o.Bytes()); err == nil {
		action = frame.Action
	}
	c.journal.add("send %s to %v", action, o.To)
}
func (c recordingConns) Close(id reflector.ConnID, code int, _ string) {
	c.journal.add("close %d with %d", id, code)
}
func (c recordingConns) CloseAll(code int, _ string) { c.journal.add("close all with %d", code) }
func (c recordingConns) Flush()                      { c.journal.add("flush") }

type recordingObserver struct{ journal *journal }

func (o recordingObserver) Opened(_ string, _ reflector.Record, messages int, resumed bool) {
	o.journal.add("opened resumed=%v messages=%d", resumed, messages)
}
func (o recordingObserver) StorageFailed(_ string, err error) {
	o.journal.add("storage failed: %v", err)
}
func (o recordingObserver) Quarantined(_ string, err error) {
	o.journal.add("quarantined: %v", err)
}
func (o recordingObserver) PointerFailed(_, key string, err error) {
	o.journal.add("pointer %s failed: %v", key, err)
}
func (o recordingObserver) Flushed(_ string, out *reflector.Effects) {
	o.journal.add("flushed %d notes", len(out.Notes))
}

func open(t *testing.T, st *recordingStore, j *journal) *host.Session {
	t.Helper()
	return host.Open(context.Background(), "S", 0, host.Options{Config: reflector.DefaultConfig(), Timeline: "T1",
		Store: st, Conns: recordingConns{j}, Observer: recordingObserver{j}})
}

func joinFrame(t *testing.T, extra string) protocol.ClientFrame {
	t.Helper()
	frame, err := protocol.DecodeClientFrame([]byte(`{"id":"S","action":"JOIN","args":{"name":"n","version":1,"apiKey":"k","user":"u","ticks":{"tick":100}` + extra + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func sendFrame(t *testing.T, payload string) protocol.ClientFrame {
	t.Helper()
	frame, err := protocol.DecodeClientFrame([]byte(`{"id":"S","action":"SEND","args":[0,0,"` + payload + `"]}`))
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// TestFlushCommitsBeforeSending: a batch's frames reach the connections
// only after its commit returned, and one Conns.Flush ends the batch.
func TestFlushCommitsBeforeSending(t *testing.T) {
	j := &journal{}
	st := &recordingStore{Store: memstore.New(), journal: j}
	h := open(t, st, j)
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h.Step(1, reflector.Receive{Conn: 1, Frame: sendFrame(t, "a")})
	h.Step(2, reflector.Receive{Conn: 1, Frame: sendFrame(t, "b")})
	if pending := h.Pending(); pending.Events != 4 || pending.Frames < 3 {
		t.Fatalf("pending %+v before the flush, want 4 events and SYNC + 2 RECVs", pending)
	}
	h.Flush(context.Background())
	got := strings.Join(j.lines, "\n")
	want := strings.Join([]string{
		"opened resumed=false messages=0",
		"commit 2 messages",
		"send SYNC to [1]",
		"send RECV to [1]",
		"send RECV to [1]",
		"flush",
		"flushed 1 notes",
	}, "\n")
	if got != want {
		t.Errorf("effects executed as\n%s\nwant\n%s", got, want)
	}
	if pending := h.Pending(); pending != (host.Pending{}) {
		t.Errorf("pending %+v after the flush, want nothing", pending)
	}
}

// TestCommitFailureSendsNothing: when the commit fails, nothing of the
// batch is sent, every connection is asked to reconnect (4003), the
// session ends, and a later Open resumes from what was stored.
func TestCommitFailureSendsNothing(t *testing.T) {
	j := &journal{}
	st := &recordingStore{Store: memstore.New(), journal: j}
	h := open(t, st, j)
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h.Flush(context.Background())
	stored := h.Core().Record()

	j.lines = nil
	st.failCommit = errors.New("disk full")
	h.Step(1, reflector.Receive{Conn: 1, Frame: sendFrame(t, "lost")})
	h.Flush(context.Background())
	want := "commit failed\nstorage failed: disk full\nclose all with 4003\nflush"
	if got := strings.Join(j.lines, "\n"); got != want {
		t.Errorf("a failed commit executed\n%s\nwant\n%s", got, want)
	}
	if !h.Ended() || h.Failed() == nil || h.Core() != nil || h.NextWake() != reflector.Never {
		t.Errorf("after a failed commit: ended %v, failed %v, core %v, wake %d", h.Ended(), h.Failed(), h.Core() != nil, h.NextWake())
	}

	st.failCommit = nil
	again := open(t, st, j)
	if record := again.Core().Record(); record.Timeline != stored.Timeline || record.Seq != stored.Seq {
		t.Errorf("reopened at %s/%d, want the stored %s/%d", record.Timeline, record.Seq, stored.Timeline, stored.Seq)
	}
}

// TestUnreadableStoreRefusesConnections: a session whose storage cannot be
// read answers every connection with 4003 and ends.
func TestUnreadableStoreRefusesConnections(t *testing.T) {
	j := &journal{}
	st := &recordingStore{Store: memstore.New(), journal: j, failLoad: errors.New("bad sector")}
	h := open(t, st, j)
	h.Step(0, reflector.Connect{Conn: 7})
	if pending := h.Pending(); !pending.Urgent {
		t.Errorf("a refused connection is not urgent: %+v", pending)
	}
	h.Flush(context.Background())
	want := "storage failed: bad sector\nclose 7 with 4003\nflush\nflushed 0 notes"
	if got := strings.Join(j.lines, "\n"); got != want {
		t.Errorf("executed\n%s\nwant\n%s", got, want)
	}
	if !h.Ended() {
		t.Error("the failed session did not end")
	}
}

// TestPointerLookupIsAnEvent: a JOIN with appId and persistentId asks for
// the pointer; the lookup decodes {"url": ...} and its event completes the
// SYNC with the persisted URL.
func TestPointerLookupIsAnEvent(t *testing.T) {
	j := &journal{}
	st := &recordingStore{Store: memstore.New(), journal: j}
	if err := st.PutPointer(context.Background(), "app/p", []byte(`{"url":"https://files/p.bin"}`)); err != nil {
		t.Fatal(err)
	}
	h := open(t, st, j)
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, `,"appId":"app","persistentId":"p"`)})
	if !h.Pending().Urgent {
		t.Error("a pending lookup is not urgent")
	}
	h.Flush(context.Background())
	keys := h.TakeLookups()
	if len(keys) != 1 || keys[0] != "app/p" {
		t.Fatalf("lookups %q, want [app/p]", keys)
	}
	if strings.Contains(strings.Join(j.lines, "\n"), "SYNC") {
		t.Fatal("SYNC sent before the pointer was loaded")
	}
	loaded, err := h.LookupPointer(context.Background(), keys[0])
	if err != nil || loaded.URL != "https://files/p.bin" {
		t.Fatalf("LookupPointer: %+v, %v", loaded, err)
	}
	j.lines = nil
	h.Step(1, loaded)
	h.Flush(context.Background())
	if got := strings.Join(j.lines, "\n"); !strings.Contains(got, "send SYNC to [1]") {
		t.Errorf("after the pointer event:\n%s\nwant a SYNC", got)
	}
	if url := h.Core().Record().PersistentURL; url != "https://files/p.bin" {
		t.Errorf("persistent URL %q", url)
	}
}

func TestPointerURL(t *testing.T) {
	for _, tc := range []struct {
		value, url string
		ok         bool
	}{
		{`{"url":"a"}`, "a", true},
		{`{"url":"a","other":1}`, "a", true},
		{`{}`, "", true},
		{`"a"`, "", false},
		{`{"url":`, "", false},
	} {
		url, err := host.PointerURL([]byte(tc.value))
		if url != tc.url || (err == nil) != tc.ok {
			t.Errorf("PointerURL(%s) = %q, %v; want %q, ok %v", tc.value, url, err, tc.url, tc.ok)
		}
	}
}

// quarantiningStore is a recordingStore that moves sessions away when asked.
type quarantiningStore struct {
	*recordingStore
	quarantined []string
}

func (s *quarantiningStore) Quarantine(ctx context.Context, id, reason string) error {
	s.quarantined = append(s.quarantined, id)
	if err := s.Store.DeleteSession(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("moved away (%s): %w", reason, store.ErrCorrupt)
}

// TestUnrestorableSessionIsQuarantined: stored data the core cannot
// restore (here a record that is not JSON) is damage: a store that can
// quarantine it does, and the session starts fresh on the new timeline
// instead of failing every connection forever.
func TestUnrestorableSessionIsQuarantined(t *testing.T) {
	j := &journal{}
	st := &quarantiningStore{recordingStore: &recordingStore{Store: memstore.New(), journal: j}}
	if err := st.Store.Commit(context.Background(), "S", store.Batch{Record: []byte("not a record")}); err != nil {
		t.Fatal(err)
	}
	h := host.Open(context.Background(), "S", 0, host.Options{Config: reflector.DefaultConfig(), Timeline: "T-new",
		Store: st, Conns: recordingConns{j}, Observer: recordingObserver{j}})
	if h.Failed() != nil || h.Core() == nil {
		t.Fatalf("after an unrestorable record: failed %v; want a fresh session\n%s", h.Failed(), strings.Join(j.lines, "\n"))
	}
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h.Flush(context.Background())
	if timeline := h.Core().Record().Timeline; timeline != "T-new" {
		t.Errorf("the session runs on timeline %q, want the new T-new", timeline)
	}
	if len(st.quarantined) != 1 || !strings.HasPrefix(strings.Join(j.lines, "\n"), "quarantined: moved away") {
		t.Errorf("quarantined %v, journal\n%s\nwant the session quarantined and reported", st.quarantined, strings.Join(j.lines, "\n"))
	}
}

// TestFenceOnOpen: in cluster mode a restored session commits its record
// before anything else, and a fenced commit fails the session without
// quarantining anything; its connections are asked to reconnect elsewhere.
func TestFenceOnOpen(t *testing.T) {
	j := &journal{}
	st := &recordingStore{Store: memstore.New(), journal: j}
	h := open(t, st, j)
	h.Step(0, reflector.Connect{Conn: 1})
	h.Step(0, reflector.Receive{Conn: 1, Frame: joinFrame(t, "")})
	h.Flush(context.Background())

	openFenced := func() *host.Session {
		return host.Open(context.Background(), "S", 0, host.Options{Config: reflector.DefaultConfig(), Timeline: "T2",
			Store: st, Conns: recordingConns{j}, Observer: recordingObserver{j}, FenceOnOpen: true})
	}
	j.lines = nil
	if again := openFenced(); again.Failed() != nil || again.Core() == nil {
		t.Fatalf("FenceOnOpen: failed %v", again.Failed())
	}
	if got := strings.Join(j.lines, "\n"); got != "commit 0 messages\nopened resumed=true messages=0" {
		t.Errorf("FenceOnOpen did\n%s\nwant a commit of the record, then the open", got)
	}

	j.lines = nil
	st.failCommit = fmt.Errorf("another node appended: %w", store.ErrFenced)
	fenced := openFenced()
	if !errors.Is(fenced.Failed(), store.ErrFenced) || fenced.Core() != nil {
		t.Fatalf("a fenced FenceOnOpen: failed %v, core %v", fenced.Failed(), fenced.Core() != nil)
	}
	fenced.Step(0, reflector.Connect{Conn: 2})
	fenced.Flush(context.Background())
	want := "commit failed\nstorage failed: another node appended: store: session was changed by another writer (fenced)\nclose 2 with 4003\nflush\nflushed 0 notes"
	if got := strings.Join(j.lines, "\n"); got != want {
		t.Errorf("a fenced FenceOnOpen did\n%s\nwant\n%s", got, want)
	}
}
