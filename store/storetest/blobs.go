package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/metronome-sync/metronome/store"
)

// badPaths are file paths and pointer keys every store rejects with
// store.ErrBadPath.
var badPaths = []string{
	"", "../x", "x/..", "/abs", "a//b", "a/", "a/./b", ".", `a\b`, "a/\x00b", "a\nb",
	strings.Repeat("x", store.PathSegmentBytesMax+1),
}

func testPointers(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetPointer(ctx, "app/missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPointer of a missing key: error = %v, want ErrNotFound", err)
	}
	putPointer(t, s, "com.example.app/persistent-1", []byte(`{"url":"one"}`))
	putPointer(t, s, "com.example.app/persistent-2", []byte(`{"url":"two"}`))
	putPointer(t, s, "single", []byte(`{"url":"three"}`))
	checkPointer(t, s, "com.example.app/persistent-1", []byte(`{"url":"one"}`))
	checkPointer(t, s, "com.example.app/persistent-2", []byte(`{"url":"two"}`))
	checkPointer(t, s, "single", []byte(`{"url":"three"}`))

	putPointer(t, s, "com.example.app/persistent-1", []byte(`{"url":"newer"}`))
	checkPointer(t, s, "com.example.app/persistent-1", []byte(`{"url":"newer"}`))
	putPointer(t, s, "single", []byte{})
	checkPointer(t, s, "single", []byte{})

	// A prefix of a key is not a key.
	if _, err := s.GetPointer(ctx, "com.example.app"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPointer of a key prefix: error = %v, want ErrNotFound", err)
	}
	// Pointers are not sessions.
	checkSessions(t, s)
}

func testBadPointerKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, key := range badPaths {
		if err := s.PutPointer(ctx, key, []byte("v")); !errors.Is(err, store.ErrBadPath) {
			t.Errorf("PutPointer(%q) error = %v, want ErrBadPath", key, err)
		}
		if _, err := s.GetPointer(ctx, key); !errors.Is(err, store.ErrBadPath) {
			t.Errorf("GetPointer(%q) error = %v, want ErrBadPath", key, err)
		}
	}
}

func testFiles(t *testing.T, s store.Store) {
	checkFileNotFound(t, s, "snapshots/s/missing.snap")
	snapshot := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100_000)
	putFile(t, s, "snapshots/kzR8-_x/0000006218_4294967283-kzR8.snap", snapshot)
	putFile(t, s, "apps/com.example.app/p/save/hash", []byte("saved"))
	putFile(t, s, "top", []byte("top level"))
	putFile(t, s, "empty", []byte{})
	checkFile(t, s, "snapshots/kzR8-_x/0000006218_4294967283-kzR8.snap", snapshot)
	checkFile(t, s, "apps/com.example.app/p/save/hash", []byte("saved"))
	checkFile(t, s, "top", []byte("top level"))
	checkFile(t, s, "empty", []byte{})

	putFile(t, s, "top", []byte("replaced"))
	checkFile(t, s, "top", []byte("replaced"))
	putFile(t, s, "top", []byte("short"))
	checkFile(t, s, "top", []byte("short"))

	// A body of exactly the limit is accepted.
	if err := s.PutFile(context.Background(), "limit", bytes.NewReader([]byte("12345")), 5); err != nil {
		t.Errorf("PutFile of exactly maxBytes: %v", err)
	}
	checkFile(t, s, "limit", []byte("12345"))

	// Directories that hold files are not files.
	checkFileNotFound(t, s, "apps/com.example.app")
	checkFileNotFound(t, s, "snapshots")
	// Files are not sessions or pointers.
	checkSessions(t, s)
	if _, err := s.GetPointer(context.Background(), "top"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPointer of a file path: error = %v, want ErrNotFound", err)
	}
}

func testFileTooLarge(t *testing.T, s store.Store) {
	ctx := context.Background()
	putFile(t, s, "f", []byte("old content"))
	err := s.PutFile(ctx, "f", bytes.NewReader([]byte("123456")), 5)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("PutFile of 6 bytes with limit 5: error = %v, want ErrTooLarge", err)
	}
	checkFile(t, s, "f", []byte("old content"))

	err = s.PutFile(ctx, "new", strings.NewReader("123456"), 0)
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("PutFile of 6 bytes with limit 0: error = %v, want ErrTooLarge", err)
	}
	checkFileNotFound(t, s, "new")
}

func testFileFailedUpload(t *testing.T, s store.Store) {
	putFile(t, s, "f", []byte("old content"))
	failing := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("connection reset")))
	if err := s.PutFile(context.Background(), "f", failing, 100); err == nil {
		t.Errorf("PutFile with a failing body succeeded")
	}
	checkFile(t, s, "f", []byte("old content"))
}

func testBadFilePath(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, path := range badPaths {
		if err := s.PutFile(ctx, path, strings.NewReader("x"), 10); !errors.Is(err, store.ErrBadPath) {
			t.Errorf("PutFile(%q) error = %v, want ErrBadPath", path, err)
		}
		reader, _, err := s.OpenFile(ctx, path)
		if err == nil {
			reader.Close()
		}
		if !errors.Is(err, store.ErrBadPath) {
			t.Errorf("OpenFile(%q) error = %v, want ErrBadPath", path, err)
		}
	}
}
