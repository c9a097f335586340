package diskstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// TestLogFormat pins the bytes of a message log, as the package
// documentation describes them.
func TestLogFormat(t *testing.T) {
	directory := t.TempDir()
	s := openForTest(t, directory, Options{})
	mustCommit(t, s, "s", store.Batch{Append: []store.Message{{Seq: 0xfffffffe, Data: []byte("ab")}}})
	mustCommit(t, s, "s", store.Batch{Append: []store.Message{{Seq: 1, Data: []byte{}}, {Seq: 2, Data: []byte("c")}}})
	mustClose(t, s)

	content, err := os.ReadFile(filepath.Join(directory, "sessions", "s", "messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString([]byte("metronome-log-1\n")) +
		// length 2, seq 0xfffffffe, commit end, "ab", CRC-32C
		"02000000" + "feffffff" + "01" + "6162" + "" +
		crcHex(t, "02000000feffffff016162") +
		// length 0, seq 1, not the end of its commit
		"00000000" + "01000000" + "00" + crcHex(t, "000000000100000000") +
		// length 1, seq 2, commit end, "c"
		"01000000" + "02000000" + "01" + "63" + crcHex(t, "01000000020000000163")
	if got := hex.EncodeToString(content); got != want {
		t.Errorf("log =\n%s\nwant\n%s", got, want)
	}
}

// crcHex returns the little-endian CRC-32C of the bytes given in hex,
// computed bit by bit, independently of hash/crc32.
func crcHex(t *testing.T, hexBytes string) string {
	data, err := hex.DecodeString(hexBytes)
	if err != nil {
		t.Fatal(err)
	}
	const reversedPolynomial = 0x82f63b78
	crc := ^uint32(0)
	for _, b := range data {
		crc ^= uint32(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ reversedPolynomial
			} else {
				crc >>= 1
			}
		}
	}
	crc = ^crc
	return hex.EncodeToString([]byte{byte(crc), byte(crc >> 8), byte(crc >> 16), byte(crc >> 24)})
}

// TestLayout checks where the store keeps what, so that operators can find
// and back up their data.
func TestLayout(t *testing.T) {
	directory := filepath.Join(t.TempDir(), "not", "yet", "there")
	s := openForTest(t, directory, Options{Durable: true})
	ctx := context.Background()
	mustCommit(t, s, "kzR8-_x", store.Batch{Append: testMessages(1), Record: []byte(`{"seq":1}`)})
	if err := s.PutPointer(ctx, "com.example.app/persistent", []byte(`{"url":"u"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFile(ctx, "snapshots/kzR8-_x/1.snap", strings.NewReader("snap"), 10); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	for path, want := range map[string]string{
		"sessions/kzR8-_x/record.json":             `{"seq":1}`,
		"pointers/com.example.app/persistent.json": `{"url":"u"}`,
		"files/snapshots/kzR8-_x/1.snap":           "snap",
	} {
		got, err := os.ReadFile(filepath.Join(directory, filepath.FromSlash(path)))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", path, got, err, want)
		}
	}
	logContent, err := os.ReadFile(filepath.Join(directory, "sessions", "kzR8-_x", "messages.log"))
	if err != nil || !bytes.HasPrefix(logContent, []byte(logHeader)) {
		t.Errorf("messages.log = %q (%v), want a message log", logContent, err)
	}
	entries, err := os.ReadDir(filepath.Join(directory, "tmp"))
	if err != nil || len(entries) != 0 {
		t.Errorf("tmp/ holds %d entries (%v), want none", len(entries), err)
	}
}

func TestPointerKeyLeavesRoomForSuffix(t *testing.T) {
	s := openForTest(t, t.TempDir(), Options{})
	defer mustClose(t, s)
	ctx := context.Background()
	longest := "app/" + strings.Repeat("p", pointerNameBytesMax)
	if err := s.PutPointer(ctx, longest, []byte("v")); err != nil {
		t.Errorf("PutPointer with a %d-byte last segment: %v", pointerNameBytesMax, err)
	}
	err := s.PutPointer(ctx, longest+"p", []byte("v"))
	if !errors.Is(err, store.ErrBadPath) || !strings.Contains(err.Error(), "limit is 250") {
		t.Errorf("PutPointer with a %d-byte last segment: error = %v, want ErrBadPath naming the limit", pointerNameBytesMax+1, err)
	}
}

// TestFileAndDirectoryConflict checks that a path cannot be both a file and
// a directory of files, and that the failed upload changes nothing.
func TestFileAndDirectoryConflict(t *testing.T) {
	s := openForTest(t, t.TempDir(), Options{})
	defer mustClose(t, s)
	ctx := context.Background()
	if err := s.PutFile(ctx, "a/b", strings.NewReader("inside"), 10); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFile(ctx, "a", strings.NewReader("file"), 10); err == nil {
		t.Errorf("PutFile over a directory of files succeeded")
	}
	if err := s.PutFile(ctx, "f", strings.NewReader("file"), 10); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFile(ctx, "f/g", strings.NewReader("below a file"), 100); err == nil {
		t.Errorf("PutFile below a file succeeded")
	}
	for path, want := range map[string]string{"a/b": "inside", "f": "file"} {
		reader, _, err := s.OpenFile(ctx, path)
		if err != nil {
			t.Fatalf("OpenFile(%q): %v", path, err)
		}
		var got bytes.Buffer
		_, err = got.ReadFrom(reader)
		reader.Close()
		if err != nil || got.String() != want {
			t.Errorf("%s = %q (%v), want %q", path, got.String(), err, want)
		}
	}
	if _, _, err := s.OpenFile(ctx, "f/g"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenFile below a file: error = %v, want ErrNotFound", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{OpenLogFilesMax: -1}); err == nil || !strings.Contains(err.Error(), "OpenLogFilesMax is -1") {
		t.Errorf("Open with OpenLogFilesMax -1: error = %v, want one naming the option and value", err)
	}
	if _, err := Open("", Options{}); err == nil {
		t.Errorf("Open of an empty directory name succeeded")
	}
}

// TestOpenLogsBounded checks that the store keeps at most OpenLogFilesMax
// logs open and forgets the sessions it no longer uses.
func TestOpenLogsBounded(t *testing.T) {
	const openLogFilesMax = 3
	s := openForTest(t, t.TempDir(), Options{OpenLogFilesMax: openLogFilesMax})
	defer mustClose(t, s)
	for index := range 10 {
		mustCommit(t, s, fmt.Sprintf("s%d", index), store.Batch{Append: testMessages(uint32(index))})
	}
	for index := range 10 {
		checkLoad(t, s, fmt.Sprintf("s%d", index), nil, testMessages(uint32(index)))
	}
	s.mu.Lock()
	openLogs, sessions := s.openLogs.Len(), len(s.sessions)
	s.mu.Unlock()
	if openLogs > openLogFilesMax || sessions > openLogFilesMax {
		t.Errorf("%d logs open and %d sessions in memory, want at most %d", openLogs, sessions, openLogFilesMax)
	}
}
