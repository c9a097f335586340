package storetest

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// The optional interfaces: store.FileCatalog, store.RecordReader and
// store.UsageReporter. A store that does not implement one skips its test.

func testFileCatalog(t *testing.T, s store.Store) {
	catalog, ok := s.(store.FileCatalog)
	if !ok {
		t.Skip("the store has no file catalog")
	}
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	files := map[string]string{
		"snapshots/s1/0000000010_1-aaaaaaaaaaaaaaaa.snap": "first",
		"snapshots/s1/0000000020_2-bbbbbbbbbbbbbbbb.snap": "second!",
		"snapshots/s10/x": "other session",
		"apps/a/p/save/h": "saved",
		"top":             "t",
	}
	for path, content := range files {
		putFile(t, s, path, []byte(content))
	}
	checkWalk(t, catalog, "", slices.Sorted(maps.Keys(files)), files, before)
	checkWalk(t, catalog, "snapshots/s1", []string{
		"snapshots/s1/0000000010_1-aaaaaaaaaaaaaaaa.snap", "snapshots/s1/0000000020_2-bbbbbbbbbbbbbbbb.snap",
	}, files, before)
	checkWalk(t, catalog, "snapshots/none", nil, files, before)
	checkWalk(t, catalog, "top", nil, files, before) // a file is not a directory
	if err := catalog.WalkFiles(ctx, "../x", func(store.FileInfo) error { return nil }); !errors.Is(err, store.ErrBadPath) {
		t.Errorf("WalkFiles(\"../x\") error = %v, want ErrBadPath", err)
	}
	stop := errors.New("stop")
	calls := 0
	if err := catalog.WalkFiles(ctx, "", func(store.FileInfo) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("WalkFiles whose fn fails: %d calls, error %v, want 1 call and the fn's error", calls, err)
	}

	info, err := catalog.StatFile(ctx, "snapshots/s1/0000000020_2-bbbbbbbbbbbbbbbb.snap")
	if err != nil || info.Bytes != int64(len("second!")) || info.Modified.Before(before) {
		t.Errorf("StatFile: %+v, %v; want 7 bytes, modified now", info, err)
	}
	for _, missing := range []string{"snapshots/s1/missing", "snapshots/s1", "top/below"} {
		if _, err := catalog.StatFile(ctx, missing); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("StatFile(%q) error = %v, want ErrNotFound", missing, err)
		}
	}

	// A reader opened before the deletion keeps the content.
	reader, _, err := s.OpenFile(ctx, "snapshots/s1/0000000010_1-aaaaaaaaaaaaaaaa.snap")
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for _, path := range []string{"snapshots/s1/0000000010_1-aaaaaaaaaaaaaaaa.snap", "snapshots/s1/0000000020_2-bbbbbbbbbbbbbbbb.snap"} {
		if err := catalog.DeleteFile(ctx, path); err != nil {
			t.Fatalf("DeleteFile(%q): %v", path, err)
		}
		checkFileNotFound(t, s, path)
	}
	var kept bytes.Buffer
	if _, err := kept.ReadFrom(reader); err != nil || kept.String() != "first" {
		t.Errorf("a reader opened before the deletion read %q, %v; want the content", kept.String(), err)
	}
	if err := catalog.DeleteFile(ctx, "snapshots/s1/0000000010_1-aaaaaaaaaaaaaaaa.snap"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteFile of a deleted file: %v, want ErrNotFound", err)
	}
	if err := catalog.DeleteFile(ctx, "snapshots"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteFile of a directory: %v, want ErrNotFound", err)
	}
	checkWalk(t, catalog, "snapshots/s1", nil, files, before)
	// The emptied directory is no obstacle to a new file in it, nor to a
	// file of its name.
	putFile(t, s, "snapshots/s1/again", []byte("again"))
	checkFile(t, s, "snapshots/s1/again", []byte("again"))
	if err := catalog.DeleteFile(ctx, "snapshots/s1/again"); err != nil {
		t.Fatal(err)
	}
	putFile(t, s, "snapshots/s1", []byte("a file now"))
	checkFile(t, s, "snapshots/s1", []byte("a file now"))
	checkFile(t, s, "snapshots/s10/x", []byte("other session"))
}

// checkWalk walks dir and compares the paths, sizes and times.
func checkWalk(t *testing.T, catalog store.FileCatalog, dir string, want []string, contents map[string]string, after time.Time) {
	t.Helper()
	var got []string
	err := catalog.WalkFiles(context.Background(), dir, func(info store.FileInfo) error {
		got = append(got, info.Path)
		if content, ok := contents[info.Path]; ok && info.Bytes != int64(len(content)) {
			t.Errorf("WalkFiles(%q): %s has %d bytes, want %d", dir, info.Path, info.Bytes, len(content))
		}
		if info.Modified.Before(after) {
			t.Errorf("WalkFiles(%q): %s modified %s, before it was stored", dir, info.Path, info.Modified)
		}
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("WalkFiles(%q) = %q, %v; want %q", dir, got, err, want)
	}
}

func testSessionRecord(t *testing.T, s store.Store) {
	reader, ok := s.(store.RecordReader)
	if !ok {
		t.Skip("the store cannot read records alone")
	}
	ctx := context.Background()
	if _, err := reader.SessionRecord(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionRecord of a missing session: %v, want ErrNotFound", err)
	}
	commit(t, s, "s", store.Batch{Append: messages(1, 2), Record: []byte(`{"v":1}`)})
	commit(t, s, "s", store.Batch{Record: []byte(`{"v":2}`)})
	if record, err := reader.SessionRecord(ctx, "s"); err != nil || string(record) != `{"v":2}` {
		t.Errorf("SessionRecord = %q, %v; want the last record", record, err)
	}
	if _, err := reader.SessionRecord(ctx, "a/b"); !errors.Is(err, store.ErrBadSessionID) {
		t.Errorf("SessionRecord of a bad id: %v, want ErrBadSessionID", err)
	}
	if err := s.DeleteSession(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.SessionRecord(ctx, "s"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionRecord of a deleted session: %v, want ErrNotFound", err)
	}
}

func testStorageUsage(t *testing.T, s store.Store) {
	reporter, ok := s.(store.UsageReporter)
	if !ok {
		t.Skip("the store cannot measure what it holds")
	}
	ctx := context.Background()
	empty, err := reporter.StorageUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	record := []byte(strings.Repeat("r", 1000))
	batch := store.Batch{Append: messages(1, 2, 3), Record: record}
	commit(t, s, "s", batch)
	putFile(t, s, "snapshots/s/big", bytes.Repeat([]byte("f"), 100_000)) // files are not counted here
	used, err := reporter.StorageUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A store may count a record only once it is written to its own
	// file (store/diskstore with the journal: at checkpoints).
	var least int64
	for _, message := range batch.Append {
		least += int64(len(message.Data))
	}
	if grown := used.Sessions - empty.Sessions; grown < least || grown >= 100_000 {
		t.Errorf("Sessions grew by %d bytes with messages of %d bytes, want at least that (and no files)", grown, least)
	}
	commit(t, s, "s", store.Batch{DropFront: 3})
	if err := s.DeleteSession(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if after, err := reporter.StorageUsage(ctx); err != nil || after.Sessions > empty.Sessions {
		t.Errorf("after deleting the session: %+v, %v; want Sessions back to %d", after, err, empty.Sessions)
	}
}
