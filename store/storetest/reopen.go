package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// RunReopen checks that a persistent store keeps everything across Close and
// a new open of the same directory: records, messages after DropFront,
// deletions, pointers and files. open opens the store kept in dir; the suite
// closes every store it opens.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	ctx := context.Background()
	reopen := func(previous store.Store) store.Store {
		t.Helper()
		if previous != nil {
			if err := previous.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		s := open(t, dir)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}

	s := reopen(nil)
	// "a": messages partly dropped in a combined batch, record replaced.
	commit(t, s, "a", store.Batch{Append: messages(1, 2, 3), Record: []byte("a1")})
	commit(t, s, "a", store.Batch{Append: messages(4, 5), DropFront: 3, Record: []byte("a2")})
	// "b": record only. "c": every message dropped, no record.
	commit(t, s, "b", store.Batch{Record: []byte("b1")})
	commit(t, s, "c", store.Batch{Append: messages(1, 2)})
	commit(t, s, "c", store.Batch{DropFront: 2})
	// "d": deleted.
	commit(t, s, "d", store.Batch{Append: messages(1), Record: []byte("d1")})
	if err := s.DeleteSession(ctx, "d"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	putPointer(t, s, "app/p1", []byte("old"))
	putPointer(t, s, "app/p1", []byte("new"))
	putPointer(t, s, "app/p2", []byte("two"))
	putFile(t, s, "snapshots/a/1.snap", []byte("first"))
	putFile(t, s, "snapshots/a/1.snap", []byte("second"))
	putFile(t, s, "top", bytes.Repeat([]byte("t"), 10_000))
	if err := s.PutFile(ctx, "top", bytes.NewReader(make([]byte, 101)), 100); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("PutFile over the limit: error = %v, want ErrTooLarge", err)
	}

	check := func(s store.Store, wantA []store.Message) {
		t.Helper()
		checkSessions(t, s, "a", "b", "c")
		checkSession(t, s, "a", []byte("a2"), wantA)
		checkSession(t, s, "b", []byte("b1"), nil)
		checkSession(t, s, "c", nil, nil)
		checkNotFound(t, s, "d")
		checkPointer(t, s, "app/p1", []byte("new"))
		checkPointer(t, s, "app/p2", []byte("two"))
		checkFile(t, s, "snapshots/a/1.snap", []byte("second"))
		checkFile(t, s, "top", bytes.Repeat([]byte("t"), 10_000))
	}

	s = reopen(s)
	check(s, messages(4, 5))

	// Appends after a reopen continue the log.
	commit(t, s, "a", store.Batch{Append: messages(6)})
	commit(t, s, "a", store.Batch{Append: messages(7, 8), DropFront: 2})
	s = reopen(s)
	check(s, messages(6, 7, 8))

	// Reopening without any change in between keeps everything too.
	s = reopen(s)
	check(s, messages(6, 7, 8))
}
