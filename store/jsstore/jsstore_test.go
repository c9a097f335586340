package jsstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/storetest"
)

func TestConformance(t *testing.T) {
	srv := startServer(t)
	js := connect(t, srv)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, js, Options{Namespace: newNamespace()})
	})
}

// TestReopen opens a new Store, on a new connection, for each reopen: what
// another node sees after this one went away.
func TestReopen(t *testing.T) {
	srv := startServer(t)
	namespace := newNamespace()
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		s, err := Open(context.Background(), connect(t, srv), Options{Namespace: namespace})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func message(seq uint32) store.Message {
	return store.Message{Seq: seq, Data: fmt.Appendf(nil, `[%d,%d,"payload-%d"]`, seq*10, seq, seq)}
}

func mustCommit(t *testing.T, s *Store, sessionID string, batch store.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), sessionID, batch); err != nil {
		t.Fatalf("Commit(%q): %v", sessionID, err)
	}
}

func mustLoad(t *testing.T, s *Store, sessionID string) store.Session {
	t.Helper()
	session, err := s.LoadSession(context.Background(), sessionID)
	if err != nil {
		t.Fatalf("LoadSession(%q): %v", sessionID, err)
	}
	return session
}

func seqs(session store.Session) []uint32 {
	var result []uint32
	for _, message := range session.Messages {
		result = append(result, message.Seq)
	}
	return result
}

func checkFenced(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("%s: error = %v, want ErrFenced", what, err)
	}
}

// TestFencing: two nodes load the same session; the first to commit wins,
// the other's commit fails with ErrFenced and stores nothing; after
// reloading it sees the winner's batch and can commit on top of it.
func TestFencing(t *testing.T) {
	srv := startServer(t)
	namespace := newNamespace()
	a := open(t, connect(t, srv), Options{Namespace: namespace})
	b := open(t, connect(t, srv), Options{Namespace: namespace})
	ctx := context.Background()

	mustCommit(t, a, "s", store.Batch{Append: []store.Message{message(1)}, Record: []byte("r1")})
	mustLoad(t, a, "s")
	mustLoad(t, b, "s")

	mustCommit(t, a, "s", store.Batch{Append: []store.Message{message(2)}, Record: []byte("a2")})
	err := b.Commit(ctx, "s", store.Batch{Append: []store.Message{message(2)}, Record: []byte("b2")})
	checkFenced(t, err, "commit by the node that did not see the other's batch")
	// Fenced again until it reloads.
	checkFenced(t, b.Commit(ctx, "s", store.Batch{Record: []byte("b3")}), "second commit after being fenced")

	got := mustLoad(t, b, "s")
	if string(got.Record) != "a2" || !slices.Equal(seqs(got), []uint32{1, 2}) {
		t.Fatalf("after reload: record %q, seqs %v; want a2, [1 2]", got.Record, seqs(got))
	}
	mustCommit(t, b, "s", store.Batch{Append: []store.Message{message(3)}, DropFront: 1, Record: []byte("b3")})
	checkFenced(t, a.Commit(ctx, "s", store.Batch{Append: []store.Message{message(3)}}), "commit by the deposed first node")

	got = mustLoad(t, a, "s")
	if string(got.Record) != "b3" || !slices.Equal(seqs(got), []uint32{2, 3}) {
		t.Fatalf("first node after reload: record %q, seqs %v; want b3, [2 3]", got.Record, seqs(got))
	}
}

// TestFencingUnseenSession: a node that never loaded a session expects it
// not to exist.
func TestFencingUnseenSession(t *testing.T) {
	srv := startServer(t)
	namespace := newNamespace()
	a := open(t, connect(t, srv), Options{Namespace: namespace})
	b := open(t, connect(t, srv), Options{Namespace: namespace})
	mustCommit(t, a, "new", store.Batch{Record: []byte("a")})
	checkFenced(t, b.Commit(context.Background(), "new", store.Batch{Record: []byte("b")}), "commit to a session created meanwhile")
	if got := mustLoad(t, b, "new"); string(got.Record) != "a" {
		t.Fatalf("record = %q, want a", got.Record)
	}
}

// TestFencingAfterDelete: a node that still serves a session deleted by
// another is fenced; a node that then creates it anew is not.
func TestFencingAfterDelete(t *testing.T) {
	srv := startServer(t)
	namespace := newNamespace()
	a := open(t, connect(t, srv), Options{Namespace: namespace})
	b := open(t, connect(t, srv), Options{Namespace: namespace})
	ctx := context.Background()
	mustCommit(t, a, "s", store.Batch{Append: []store.Message{message(1)}})
	if err := b.DeleteSession(ctx, "s"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	checkFenced(t, a.Commit(ctx, "s", store.Batch{Append: []store.Message{message(2)}}), "commit to a deleted session")
	mustCommit(t, b, "s", store.Batch{Append: []store.Message{message(7)}})
	if got := mustLoad(t, a, "s"); !slices.Equal(seqs(got), []uint32{7}) {
		t.Fatalf("seqs = %v, want [7]", seqs(got))
	}
}

// TestCompaction commits many batches with drops and checks that the
// subject is compacted and that every node reads the same state.
func TestCompaction(t *testing.T) {
	srv := startServer(t)
	namespace := newNamespace()
	const compactBytesMin = 2048
	a := open(t, connect(t, srv), Options{Namespace: namespace, CompactBytesMin: compactBytesMin})
	ctx := context.Background()
	var want []uint32
	for seq := range uint32(500) {
		batch := store.Batch{Append: []store.Message{message(seq)}, Record: fmt.Appendf(nil, "r%d", seq)}
		want = append(want, seq)
		if seq%10 == 9 {
			batch.DropFront = 7
			want = want[7:]
		}
		mustCommit(t, a, "s", batch)
	}
	info, err := a.stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	// 500 batches of about 40 bytes each, compacted whenever dead bytes
	// pass 2048 and the live bytes: far fewer than 500 messages remain.
	if info.State.Msgs > 100 {
		t.Errorf("subject holds %d messages after 500 commits, want compaction to at most 100", info.State.Msgs)
	}
	b := open(t, connect(t, srv), Options{Namespace: namespace})
	for _, s := range []*Store{a, b} {
		got := mustLoad(t, s, "s")
		if string(got.Record) != "r499" || !slices.Equal(seqs(got), want) {
			t.Fatalf("loaded record %q, seqs %v; want r499, %v", got.Record, seqs(got), want)
		}
	}
	mustCommit(t, b, "s", store.Batch{Append: []store.Message{message(500)}})
	checkFenced(t, a.Commit(ctx, "s", store.Batch{Record: []byte("x")}), "commit after another node's")
	t.Logf("500 commits left %d stream messages (%d bytes)", info.State.Msgs, info.State.Bytes)
}

func TestOptionsValidate(t *testing.T) {
	for _, options := range []Options{
		{Namespace: "a.b"}, {Namespace: "a b"}, {Replicas: 7}, {CompactBytesMin: -1},
	} {
		options.applyDefaults()
		if err := options.Validate(); err == nil {
			t.Errorf("Validate(%+v) succeeded", options)
		}
	}
	var zero Options
	zero.applyDefaults()
	if err := zero.Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
}
