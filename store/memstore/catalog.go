package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/metronome-sync/metronome/store"
)

// The file catalog, the record reader and the usage report: what the
// server needs for its upload quotas, its deletion of old snapshots and
// its metrics, so that memory mode is bounded as the disk is.

var (
	_ store.FileCatalog   = (*Store)(nil)
	_ store.RecordReader  = (*Store)(nil)
	_ store.UsageReporter = (*Store)(nil)
)

// WalkFiles calls fn for every file under dir, in path order, without
// holding the store's lock.
func (s *Store) WalkFiles(ctx context.Context, dir string, fn func(store.FileInfo) error) error {
	if err := check(ctx, store.ValidateDirectory(dir)); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	var files []store.FileInfo
	for path, file := range s.files {
		if dir == "" || strings.HasPrefix(path, dir+"/") {
			files = append(files, store.FileInfo{Path: path, Bytes: int64(len(file.content)), Modified: file.modified})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(files, func(a, b store.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(file); err != nil {
			return err
		}
	}
	return nil
}

// StatFile describes the file at path, or returns store.ErrNotFound.
func (s *Store) StatFile(ctx context.Context, path string) (store.FileInfo, error) {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return store.FileInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.FileInfo{}, store.ErrClosed
	}
	file, ok := s.files[path]
	if !ok {
		return store.FileInfo{}, fmt.Errorf("file %q: %w", path, store.ErrNotFound)
	}
	return store.FileInfo{Path: path, Bytes: int64(len(file.content)), Modified: file.modified}, nil
}

// DeleteFile forgets the file at path; readers already open keep its
// content.
func (s *Store) DeleteFile(ctx context.Context, path string) error {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if _, ok := s.files[path]; !ok {
		return fmt.Errorf("file %q: %w", path, store.ErrNotFound)
	}
	delete(s.files, path)
	return nil
}

// SessionRecord returns a copy of the session's record, or
// store.ErrNotFound.
func (s *Store) SessionRecord(ctx context.Context, sessionID string) ([]byte, error) {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	stored := s.sessions[sessionID]
	if stored == nil || stored.record == nil {
		return nil, fmt.Errorf("session %q: no record: %w", sessionID, store.ErrNotFound)
	}
	return bytes.Clone(stored.record), nil
}

// StorageUsage adds up the records and messages held (there is no
// journal and no quarantine in memory).
func (s *Store) StorageUsage(ctx context.Context) (store.StorageUsage, error) {
	if err := ctx.Err(); err != nil {
		return store.StorageUsage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.StorageUsage{}, store.ErrClosed
	}
	var usage store.StorageUsage
	for _, stored := range s.sessions {
		usage.Sessions += int64(len(stored.record)) + stored.messages.bytes
	}
	return usage, nil
}
