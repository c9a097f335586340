// Package storetest is the conformance suite that every store.Store passes.
//
// Run checks the behaviour any store must have: sessions, message logs and
// their batches, pointers, files, validation of names, concurrency and
// aliasing. RunReopen checks what a persistent store must keep across Close
// and a new Open of the same directory.
//
// Beyond the store.Store documentation the suite pins these choices, so that
// all stores agree:
//   - A Batch whose DropFront is negative or larger than the number of
//     messages after Append fails and changes nothing.
//   - An empty Batch succeeds and does not create the session.
//   - A session exists once any non-empty Batch was committed for it, even if
//     it has no record and no messages left.
//   - DeleteSession of an unknown session succeeds.
//   - Invalid session ids fail with store.ErrBadSessionID; invalid pointer
//     keys and file paths with store.ErrBadPath (see store.ValidatePath).
//   - Calls after Close fail with store.ErrClosed; calls with a context that
//     is already done fail with the context's error.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// Run runs the conformance suite. newStore returns a new, empty store for
// each subtest; the suite closes it when the subtest ends.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	open := func(t *testing.T) store.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	for _, test := range []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"LoadUnknownSession", testLoadUnknownSession},
		{"CommitRecord", testCommitRecord},
		{"AppendPreservesOrderAndBytes", testAppendPreservesOrderAndBytes},
		{"DropFront", testDropFront},
		{"DropFrontEverything", testDropFrontEverything},
		{"DropFrontTooMany", testDropFrontTooMany},
		{"RecordOnlyKeepsMessages", testRecordOnlyKeepsMessages},
		{"EmptyBatch", testEmptyBatch},
		{"DeleteSession", testDeleteSession},
		{"SessionsSorted", testSessionsSorted},
		{"BadSessionID", testBadSessionID},
		{"Pointers", testPointers},
		{"BadPointerKey", testBadPointerKey},
		{"Files", testFiles},
		{"FileTooLarge", testFileTooLarge},
		{"FileFailedUpload", testFileFailedUpload},
		{"BadFilePath", testBadFilePath},
		{"FileCatalog", testFileCatalog},
		{"SessionRecord", testSessionRecord},
		{"StorageUsage", testStorageUsage},
		{"ConcurrentSessions", testConcurrentSessions},
		{"NoAliasing", testNoAliasing},
		{"ManySessions", testManySessions},
		{"DoneContext", testDoneContext},
		{"Closed", testClosed},
	} {
		t.Run(test.name, func(t *testing.T) { test.run(t, open(t)) })
	}
}

// message returns a message whose data is a small JSON array like the ones
// a reflector stores.
func message(seq uint32) store.Message {
	return store.Message{Seq: seq, Data: fmt.Appendf(nil, `[%d,%d,"payload-%d"]`, seq*10, seq, seq)}
}

// messages returns message(seq) for every seq given.
func messages(seqs ...uint32) []store.Message {
	result := make([]store.Message, len(seqs))
	for index, seq := range seqs {
		result[index] = message(seq)
	}
	return result
}

func commit(t *testing.T, s store.Store, sessionID string, batch store.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), sessionID, batch); err != nil {
		t.Fatalf("Commit(%q): %v", sessionID, err)
	}
}

func load(t *testing.T, s store.Store, sessionID string) store.Session {
	t.Helper()
	session, err := s.LoadSession(context.Background(), sessionID)
	if err != nil {
		t.Fatalf("LoadSession(%q): %v", sessionID, err)
	}
	return session
}

// checkSession loads the session and compares it with the expected record
// and messages.
func checkSession(t *testing.T, s store.Store, sessionID string, record []byte, want []store.Message) {
	t.Helper()
	got := load(t, s, sessionID)
	if !bytes.Equal(got.Record, record) || (got.Record == nil) != (record == nil) {
		t.Errorf("session %q: record = %q, want %q", sessionID, got.Record, record)
	}
	checkMessages(t, sessionID, got.Messages, want)
}

func checkMessages(t *testing.T, sessionID string, got, want []store.Message) {
	t.Helper()
	equal := slices.EqualFunc(got, want, func(a, b store.Message) bool {
		return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data)
	})
	if !equal {
		t.Errorf("session %q: messages =\n%s\nwant\n%s", sessionID, describe(got), describe(want))
	}
}

func describe(messages []store.Message) string {
	var text bytes.Buffer
	fmt.Fprintf(&text, "  %d messages", len(messages))
	for _, message := range messages {
		data := message.Data
		if len(data) > 40 {
			data = append(data[:40:40], "..."...)
		}
		fmt.Fprintf(&text, "\n  seq %d: %q", message.Seq, data)
	}
	return text.String()
}

func checkNotFound(t *testing.T, s store.Store, sessionID string) {
	t.Helper()
	_, err := s.LoadSession(context.Background(), sessionID)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LoadSession(%q) error = %v, want ErrNotFound", sessionID, err)
	}
}

func checkSessions(t *testing.T, s store.Store, want ...string) {
	t.Helper()
	got, err := s.Sessions(context.Background())
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("Sessions() = %q, want %q", got, want)
	}
}

func putPointer(t *testing.T, s store.Store, key string, value []byte) {
	t.Helper()
	if err := s.PutPointer(context.Background(), key, value); err != nil {
		t.Fatalf("PutPointer(%q): %v", key, err)
	}
}

func checkPointer(t *testing.T, s store.Store, key string, want []byte) {
	t.Helper()
	got, err := s.GetPointer(context.Background(), key)
	if err != nil {
		t.Errorf("GetPointer(%q): %v", key, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("GetPointer(%q) = %q, want %q", key, got, want)
	}
}

func putFile(t *testing.T, s store.Store, path string, content []byte) {
	t.Helper()
	if err := s.PutFile(context.Background(), path, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatalf("PutFile(%q): %v", path, err)
	}
}

func checkFile(t *testing.T, s store.Store, path string, want []byte) {
	t.Helper()
	reader, size, err := s.OpenFile(context.Background(), path)
	if err != nil {
		t.Errorf("OpenFile(%q): %v", path, err)
		return
	}
	defer reader.Close()
	got, err := io.ReadAll(reader)
	if err != nil {
		t.Errorf("reading %q: %v", path, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file %q = %q, want %q", path, shorten(got), shorten(want))
	}
	if size != int64(len(want)) {
		t.Errorf("OpenFile(%q) size = %d, want %d", path, size, len(want))
	}
}

func checkFileNotFound(t *testing.T, s store.Store, path string) {
	t.Helper()
	reader, _, err := s.OpenFile(context.Background(), path)
	if err == nil {
		reader.Close()
	}
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenFile(%q) error = %v, want ErrNotFound", path, err)
	}
}

func shorten(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "..."...)
	}
	return b
}
