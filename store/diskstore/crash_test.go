package diskstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

func testMessages(seqs ...uint32) []store.Message {
	result := make([]store.Message, len(seqs))
	for index, seq := range seqs {
		result[index] = store.Message{Seq: seq, Data: fmt.Appendf(nil, `[%d,%d,"m%d"]`, seq*10, seq, seq)}
	}
	return result
}

func mustCommit(t *testing.T, s *Store, sessionID string, batch store.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), sessionID, batch); err != nil {
		t.Fatalf("Commit(%q): %v", sessionID, err)
	}
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func checkLoad(t *testing.T, s *Store, sessionID string, record []byte, want []store.Message) {
	t.Helper()
	got, err := s.LoadSession(context.Background(), sessionID)
	if err != nil {
		t.Fatalf("LoadSession(%q): %v", sessionID, err)
	}
	if !bytes.Equal(got.Record, record) {
		t.Errorf("record = %q, want %q", got.Record, record)
	}
	equal := slices.EqualFunc(got.Messages, want, func(a, b store.Message) bool {
		return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data)
	})
	if !equal {
		t.Errorf("messages = %s, want %s", describe(got.Messages), describe(want))
	}
}

func describe(messages []store.Message) string {
	parts := make([]string, len(messages))
	for index, message := range messages {
		parts[index] = fmt.Sprintf("%d:%s", message.Seq, message.Data)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func appendToFile(t *testing.T, path string, data []byte) {
	t.Helper()
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// TestTornTail simulates crashes in the middle of an append: every prefix of
// the frames of a two-message commit, and other garbage, follows the valid
// log. Reopening keeps the complete commits, cuts the rest off and appends
// after them. With the journal, a log that was closed cleanly was synced:
// the same bytes are damage, and the session is quarantined whole.
func TestTornTail(t *testing.T) {
	commitFrames, err := appendFrames(nil, testMessages(4, 5))
	if err != nil {
		t.Fatal(err)
	}
	corrupted := slices.Clone(commitFrames)
	corrupted[len(corrupted)-1] ^= 0x01
	unknownFlags, err := appendFrames(nil, testMessages(4))
	if err != nil {
		t.Fatal(err)
	}
	unknownFlags[8] |= 0x80
	tails := map[string][]byte{
		"garbage":                   []byte("this is not a frame at all, but it is long enough"),
		"zeros":                     make([]byte, 4096),
		"huge length":               {0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 1, 'x', 0, 0, 0, 0},
		"bad checksum":              corrupted,
		"unknown flag":              unknownFlags,
		"half a commit, then zeros": append(slices.Clone(commitFrames[:len(commitFrames)/2]), make([]byte, 100)...),
	}
	for cut := 1; cut < len(commitFrames); cut++ {
		tails[fmt.Sprintf("cut at %d of %d", cut, len(commitFrames))] = commitFrames[:cut]
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			// Syncing is slow on some disks: only a few cuts run durably.
			durability := []bool{false}
			if !strings.HasPrefix(name, "cut") || len(tail)%16 == 0 {
				durability = append(durability, true)
			}
			for _, durable := range durability {
				directory := t.TempDir()
				s := openForTest(t, directory, Options{Durable: durable})
				mustCommit(t, s, "s", store.Batch{Append: testMessages(1, 2), Record: []byte("r")})
				mustCommit(t, s, "s", store.Batch{Append: testMessages(3)})
				mustClose(t, s)

				logPath := filepath.Join(directory, "sessions", "s", "messages.log")
				validSize := fileSize(t, logPath)
				appendToFile(t, logPath, tail)

				s = openForTest(t, directory, Options{Durable: durable})
				if durable && fileSystemSyncAvailable {
					checkQuarantined(t, s, "s", validSize+int64(len(tail)))
					mustClose(t, s)
					continue
				}
				checkLoad(t, s, "s", []byte("r"), testMessages(1, 2, 3))
				if size := fileSize(t, logPath); size != validSize {
					t.Errorf("log is %d bytes after loading, want the %d valid bytes", size, validSize)
				}
				mustCommit(t, s, "s", store.Batch{Append: testMessages(6, 7)})
				checkLoad(t, s, "s", []byte("r"), testMessages(1, 2, 3, 6, 7))
				mustClose(t, s)

				s = openForTest(t, directory, Options{Durable: durable})
				checkLoad(t, s, "s", []byte("r"), testMessages(1, 2, 3, 6, 7))
				mustClose(t, s)
			}
		})
	}
}

// TestTornTailBeforeFirstUse checks that a commit that is the first use of a
// log after Open also cuts off a torn tail before it appends.
func TestTornTailBeforeFirstUse(t *testing.T) {
	directory := t.TempDir()
	s := openForTest(t, directory, Options{})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(1)})
	mustClose(t, s)
	logPath := filepath.Join(directory, "sessions", "s", "messages.log")
	appendToFile(t, logPath, []byte{9, 0, 0})

	s = openForTest(t, directory, Options{})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(2), DropFront: 0})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(3), DropFront: 1})
	mustClose(t, s)
	s = openForTest(t, directory, Options{})
	defer mustClose(t, s)
	checkLoad(t, s, "s", nil, testMessages(2, 3))
}

// TestTemporaryFilesLeftBehind simulates a crash while the record was being
// replaced: its new version is still a temporary file under tmp/. The
// store ignores and removes it.
func TestTemporaryFilesLeftBehind(t *testing.T) {
	directory := t.TempDir()
	s := openForTest(t, directory, Options{Durable: true})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(1), Record: []byte(`{"version":1}`)})
	mustClose(t, s)

	temporary := filepath.Join(directory, "tmp")
	if err := os.WriteFile(filepath.Join(temporary, "new-123456"), []byte(`{"vers`), 0o600); err != nil {
		t.Fatal(err)
	}
	// A deletion that moved a session away but did not remove it.
	if err := os.MkdirAll(filepath.Join(temporary, "deleted-42", "session"), 0o755); err != nil {
		t.Fatal(err)
	}

	s = openForTest(t, directory, Options{Durable: true})
	defer mustClose(t, s)
	checkLoad(t, s, "s", []byte(`{"version":1}`), testMessages(1))
	entries, err := os.ReadDir(temporary)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("tmp/ holds %d entries after Open, want none", len(entries))
	}
	sessions, err := s.Sessions(context.Background())
	if err != nil || !slices.Equal(sessions, []string{"s"}) {
		t.Errorf("Sessions() = %q, %v; want [s]", sessions, err)
	}
}

// TestCorruptHeader checks that a log that is not a message log is an error,
// not an empty log.
func TestCorruptHeader(t *testing.T) {
	directory := t.TempDir()
	s := openForTest(t, directory, Options{})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(1)})
	mustClose(t, s)
	logPath := filepath.Join(directory, "sessions", "s", "messages.log")
	if err := os.WriteFile(logPath, []byte("something else entirely"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openForTest(t, directory, Options{})
	defer mustClose(t, s)
	quarantined := checkQuarantined(t, s, "s", int64(len("something else entirely")))
	content, err := os.ReadFile(filepath.Join(quarantined, "messages.log"))
	if err != nil || string(content) != "something else entirely" {
		t.Errorf("the quarantined log holds %q (%v)", content, err)
	}
	// The session starts again from nothing.
	mustCommit(t, s, "s", store.Batch{Append: testMessages(2)})
	checkLoad(t, s, "s", nil, testMessages(2))
}

// checkQuarantined checks that loading a damaged session fails with
// store.ErrCorrupt naming the quarantine directory, that the log was moved
// there whole (logSize bytes), and that the session is gone; it returns
// the directory.
func checkQuarantined(t *testing.T, s *Store, id string, logSize int64) string {
	t.Helper()
	_, err := s.LoadSession(context.Background(), id)
	var corrupt *CorruptError
	if !errors.Is(err, store.ErrCorrupt) || !errors.As(err, &corrupt) {
		t.Fatalf("LoadSession of a damaged session: %v, want store.ErrCorrupt", err)
	}
	if size := fileSize(t, filepath.Join(corrupt.Quarantine, "messages.log")); size != logSize {
		t.Errorf("the quarantined log is %d bytes, want all %d", size, logSize)
	}
	if _, err := s.LoadSession(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LoadSession after the quarantine: %v, want store.ErrNotFound", err)
	}
	return corrupt.Quarantine
}
