package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

func testLoadUnknownSession(t *testing.T, s store.Store) {
	checkNotFound(t, s, "unknown")
	checkSessions(t, s)
}

func testCommitRecord(t *testing.T, s store.Store) {
	commit(t, s, "s1", store.Batch{Record: []byte(`{"time":1}`)})
	checkSession(t, s, "s1", []byte(`{"time":1}`), nil)
	commit(t, s, "s1", store.Batch{Record: []byte(`{"time":2,"seq":7}`)})
	checkSession(t, s, "s1", []byte(`{"time":2,"seq":7}`), nil)
	// An empty record is a record.
	commit(t, s, "s1", store.Batch{Record: []byte{}})
	checkSession(t, s, "s1", []byte{}, nil)
	checkNotFound(t, s, "s2")
}

func testAppendPreservesOrderAndBytes(t *testing.T, s store.Store) {
	binary := make([]byte, 256)
	for index := range binary {
		binary[index] = byte(index)
	}
	large := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	// Sequence numbers wrap around like the reflector's.
	want := []store.Message{
		message(4294967294),
		{Seq: 4294967295, Data: binary},
		{Seq: 0, Data: []byte{}},
		{Seq: 1, Data: large},
		message(2),
		message(3),
	}
	commit(t, s, "s", store.Batch{Append: want[:1]})
	checkSession(t, s, "s", nil, want[:1])
	commit(t, s, "s", store.Batch{Append: want[1:4]})
	commit(t, s, "s", store.Batch{Append: want[4:5]})
	commit(t, s, "s", store.Batch{Append: want[5:]})
	checkSession(t, s, "s", nil, want)
}

func testDropFront(t *testing.T, s store.Store) {
	commit(t, s, "s", store.Batch{Append: messages(1, 2, 3)})
	commit(t, s, "s", store.Batch{DropFront: 1})
	checkSession(t, s, "s", nil, messages(2, 3))

	// Log [2,3]: append [4,5], drop 3 (counted after the append), replace the record.
	commit(t, s, "s", store.Batch{Append: messages(4, 5), DropFront: 3, Record: []byte("r1")})
	checkSession(t, s, "s", []byte("r1"), messages(5))

	// The example of the store documentation: [1,2,3] + Append[4,5] DropFront 4 → [5].
	commit(t, s, "t", store.Batch{Append: messages(1, 2, 3)})
	commit(t, s, "t", store.Batch{Append: messages(4, 5), DropFront: 4, Record: []byte("r")})
	checkSession(t, s, "t", []byte("r"), messages(5))

	// Appending after a drop continues at the back.
	commit(t, s, "t", store.Batch{Append: messages(6)})
	commit(t, s, "t", store.Batch{Append: messages(7, 8)})
	checkSession(t, s, "t", []byte("r"), messages(5, 6, 7, 8))
	commit(t, s, "t", store.Batch{DropFront: 2})
	checkSession(t, s, "t", []byte("r"), messages(7, 8))
}

func testDropFrontEverything(t *testing.T, s store.Store) {
	commit(t, s, "s", store.Batch{Append: messages(1, 2, 3), Record: []byte("r1")})
	commit(t, s, "s", store.Batch{DropFront: 3, Record: []byte("r2")})
	checkSession(t, s, "s", []byte("r2"), nil)

	// Drop everything including what the same batch appends.
	commit(t, s, "s", store.Batch{Append: messages(4)})
	commit(t, s, "s", store.Batch{Append: messages(5, 6), DropFront: 3})
	checkSession(t, s, "s", []byte("r2"), nil)

	// A session without record and without messages still exists.
	commit(t, s, "n", store.Batch{Append: messages(1)})
	commit(t, s, "n", store.Batch{DropFront: 1})
	checkSession(t, s, "n", nil, nil)
	checkSessions(t, s, "n", "s")

	commit(t, s, "s", store.Batch{Append: messages(7)})
	checkSession(t, s, "s", []byte("r2"), messages(7))
}

func testDropFrontTooMany(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Commit(ctx, "new", store.Batch{DropFront: 1}); err == nil {
		t.Errorf("Commit(DropFront 1) on an unknown session succeeded")
	}
	if err := s.Commit(ctx, "new", store.Batch{Append: messages(1), DropFront: 2, Record: []byte("r")}); err == nil {
		t.Errorf("Commit(1 appended, DropFront 2) on an unknown session succeeded")
	}
	checkNotFound(t, s, "new")
	checkSessions(t, s)

	commit(t, s, "s", store.Batch{Append: messages(1, 2), Record: []byte("r1")})
	for _, batch := range []store.Batch{
		{DropFront: 3, Record: []byte("r2")},
		{Append: messages(3), DropFront: 4, Record: []byte("r2")},
		{Append: messages(3), DropFront: -1, Record: []byte("r2")},
	} {
		if err := s.Commit(ctx, "s", batch); err == nil {
			t.Errorf("Commit(%d appended, DropFront %d) on 2 messages succeeded", len(batch.Append), batch.DropFront)
		}
		// A failed batch changes nothing.
		checkSession(t, s, "s", []byte("r1"), messages(1, 2))
	}
}

func testRecordOnlyKeepsMessages(t *testing.T, s store.Store) {
	commit(t, s, "s", store.Batch{Append: messages(1, 2), Record: []byte("r1")})
	commit(t, s, "s", store.Batch{Record: []byte("r2")})
	checkSession(t, s, "s", []byte("r2"), messages(1, 2))
	// Messages-only commits keep the record.
	commit(t, s, "s", store.Batch{Append: messages(3)})
	checkSession(t, s, "s", []byte("r2"), messages(1, 2, 3))
}

func testEmptyBatch(t *testing.T, s store.Store) {
	commit(t, s, "s", store.Batch{})
	commit(t, s, "s", store.Batch{Append: []store.Message{}})
	checkNotFound(t, s, "s")
	checkSessions(t, s)
	commit(t, s, "s", store.Batch{Append: messages(1), Record: []byte("r")})
	commit(t, s, "s", store.Batch{})
	checkSession(t, s, "s", []byte("r"), messages(1))
}

func testDeleteSession(t *testing.T, s store.Store) {
	ctx := context.Background()
	commit(t, s, "a", store.Batch{Append: messages(1, 2), Record: []byte("ra")})
	commit(t, s, "b", store.Batch{Append: messages(1), Record: []byte("rb")})
	if err := s.DeleteSession(ctx, "a"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	checkNotFound(t, s, "a")
	checkSessions(t, s, "b")
	checkSession(t, s, "b", []byte("rb"), messages(1))

	if err := s.DeleteSession(ctx, "a"); err != nil {
		t.Errorf("DeleteSession of a deleted session: %v", err)
	}
	if err := s.DeleteSession(ctx, "never"); err != nil {
		t.Errorf("DeleteSession of an unknown session: %v", err)
	}

	// A session created again starts empty.
	commit(t, s, "a", store.Batch{Append: messages(9)})
	checkSession(t, s, "a", nil, messages(9))
	checkSessions(t, s, "a", "b")
}

func testSessionsSorted(t *testing.T, s store.Store) {
	ids := []string{"m", "B", "a", "kzR8-_x", "A", "z.z", "0", "b"}
	for index, id := range ids {
		if index%2 == 0 {
			commit(t, s, id, store.Batch{Record: []byte(id)})
		} else {
			commit(t, s, id, store.Batch{Append: messages(uint32(index))})
		}
	}
	want := slices.Clone(ids)
	slices.Sort(want)
	checkSessions(t, s, want...)
}

func testBadSessionID(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []string{"", ".", "..", "a/b", "../x", `a\b`, "a\x00b", string(bytes.Repeat([]byte("s"), store.SessionIDBytesMax+1))} {
		_, err := s.LoadSession(ctx, id)
		if !errors.Is(err, store.ErrBadSessionID) {
			t.Errorf("LoadSession(%q) error = %v, want ErrBadSessionID", id, err)
		}
		err = s.Commit(ctx, id, store.Batch{Append: messages(1), Record: []byte("r")})
		if !errors.Is(err, store.ErrBadSessionID) {
			t.Errorf("Commit(%q) error = %v, want ErrBadSessionID", id, err)
		}
		err = s.DeleteSession(ctx, id)
		if !errors.Is(err, store.ErrBadSessionID) {
			t.Errorf("DeleteSession(%q) error = %v, want ErrBadSessionID", id, err)
		}
	}
	checkSessions(t, s)
}

// testConcurrentSessions commits to many sessions from many goroutines at
// once (run it with -race).
func testConcurrentSessions(t *testing.T, s store.Store) {
	const (
		sessions          = 16
		commitsPerSession = 40
	)
	ctx := context.Background()
	var wait sync.WaitGroup
	errs := make(chan error, sessions)
	for session := range sessions {
		wait.Add(1)
		go func() {
			defer wait.Done()
			id := fmt.Sprintf("session-%02d", session)
			for seq := range uint32(commitsPerSession) {
				batch := store.Batch{Append: messages(seq), Record: fmt.Appendf(nil, `{"seq":%d}`, seq)}
				if seq%10 == 9 {
					batch.DropFront = 5
				}
				if err := s.Commit(ctx, id, batch); err != nil {
					errs <- fmt.Errorf("Commit(%q, seq %d): %w", id, seq, err)
					return
				}
				if _, err := s.LoadSession(ctx, id); err != nil {
					errs <- fmt.Errorf("LoadSession(%q): %w", id, err)
					return
				}
			}
			key := "app/" + id
			if err := s.PutPointer(ctx, key, []byte(id)); err != nil {
				errs <- fmt.Errorf("PutPointer(%q): %w", key, err)
				return
			}
			path := "snapshots/" + id + "/snap"
			if err := s.PutFile(ctx, path, bytes.NewReader([]byte(id)), 100); err != nil {
				errs <- fmt.Errorf("PutFile(%q): %w", path, err)
			}
		}()
	}
	// Readers of other data race with the writers.
	wait.Add(1)
	go func() {
		defer wait.Done()
		for range commitsPerSession {
			if _, err := s.Sessions(ctx); err != nil {
				errs <- fmt.Errorf("Sessions: %w", err)
				return
			}
		}
	}()
	wait.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	var want []store.Message
	for seq := range uint32(commitsPerSession) {
		want = append(want, message(seq))
		if seq%10 == 9 {
			want = want[5:]
		}
	}
	var ids []string
	for session := range sessions {
		id := fmt.Sprintf("session-%02d", session)
		ids = append(ids, id)
		checkSession(t, s, id, fmt.Appendf(nil, `{"seq":%d}`, commitsPerSession-1), want)
		checkPointer(t, s, "app/"+id, []byte(id))
		checkFile(t, s, "snapshots/"+id+"/snap", []byte(id))
	}
	checkSessions(t, s, ids...)
}

// testNoAliasing modifies every slice given to (but message data, which
// the caller must not modify, see store.Store.Commit) and returned by the
// store and checks that the stored content does not change.
func testNoAliasing(t *testing.T, s store.Store) {
	ctx := context.Background()
	record := []byte("record")
	batch := store.Batch{Append: messages(1, 2), Record: record}
	commit(t, s, "s", batch)
	record[0] = 'X'
	batch.Append[1] = message(99)
	checkSession(t, s, "s", []byte("record"), messages(1, 2))

	loaded := load(t, s, "s")
	loaded.Record[0] = 'Y'
	loaded.Messages[0].Data[0] = 'Y'
	// Appending to one message's data must not overwrite the next one.
	grown := append(loaded.Messages[0].Data, "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"...)
	if !bytes.Equal(loaded.Messages[1].Data, message(2).Data) {
		t.Errorf("appending to a loaded message's data (now %q) changed the next message to %q", grown, loaded.Messages[1].Data)
	}
	loaded.Messages[1].Seq = 77
	checkSession(t, s, "s", []byte("record"), messages(1, 2))

	value := []byte("pointer")
	putPointer(t, s, "k", value)
	value[0] = 'X'
	checkPointer(t, s, "k", []byte("pointer"))
	got, err := s.GetPointer(ctx, "k")
	if err != nil {
		t.Fatalf("GetPointer: %v", err)
	}
	got[0] = 'Y'
	checkPointer(t, s, "k", []byte("pointer"))

	content := []byte("file content")
	putFile(t, s, "f", content)
	content[0] = 'X'
	checkFile(t, s, "f", []byte("file content"))
}

// testManySessions checks that the store keeps working with more sessions
// than a store might keep open at once.
func testManySessions(t *testing.T, s store.Store) {
	const sessions = 300
	ids := make([]string, sessions)
	for index := range ids {
		ids[index] = fmt.Sprintf("many-%04d", index)
		commit(t, s, ids[index], store.Batch{Append: messages(1), Record: []byte(ids[index])})
	}
	for _, id := range ids {
		commit(t, s, id, store.Batch{Append: messages(2)})
	}
	for index, id := range ids {
		if index%3 == 0 {
			commit(t, s, id, store.Batch{Append: messages(3), DropFront: 1})
		}
	}
	for index, id := range ids {
		want := messages(1, 2)
		if index%3 == 0 {
			want = messages(2, 3)
		}
		checkSession(t, s, id, []byte(id), want)
	}
	checkSessions(t, s, ids...)
}

func testDoneContext(t *testing.T, s store.Store) {
	commit(t, s, "s", store.Batch{Append: messages(1), Record: []byte("r")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.LoadSession(ctx, "s"); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadSession with a canceled context: error = %v, want context.Canceled", err)
	}
	if err := s.Commit(ctx, "s", store.Batch{Append: messages(2)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with a canceled context: error = %v, want context.Canceled", err)
	}
	if err := s.PutFile(ctx, "f", bytes.NewReader([]byte("x")), 10); !errors.Is(err, context.Canceled) {
		t.Errorf("PutFile with a canceled context: error = %v, want context.Canceled", err)
	}
	checkSession(t, s, "s", []byte("r"), messages(1))
	checkFileNotFound(t, s, "f")
}

func testClosed(t *testing.T, s store.Store) {
	ctx := context.Background()
	commit(t, s, "s", store.Batch{Append: messages(1), Record: []byte("r")})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(operation string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", operation, err)
		}
	}
	_, err := s.LoadSession(ctx, "s")
	check("LoadSession", err)
	check("Commit", s.Commit(ctx, "s", store.Batch{Append: messages(2)}))
	check("DeleteSession", s.DeleteSession(ctx, "s"))
	_, err = s.Sessions(ctx)
	check("Sessions", err)
	check("PutPointer", s.PutPointer(ctx, "k", []byte("v")))
	_, err = s.GetPointer(ctx, "k")
	check("GetPointer", err)
	check("PutFile", s.PutFile(ctx, "f", bytes.NewReader(nil), 10))
	_, _, err = s.OpenFile(ctx, "f")
	check("OpenFile", err)
}
