package diskstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/metronome-sync/metronome/store"
)

// The file catalog (store.FileCatalog), the record reader
// (store.RecordReader) and the measurement of what the directory holds
// (store.UsageReporter): what the server needs for its upload quotas, its
// deletion of old snapshots and its metrics of bytes on disk.

var (
	_ store.FileCatalog   = (*Store)(nil)
	_ store.RecordReader  = (*Store)(nil)
	_ store.UsageReporter = (*Store)(nil)
)

// WalkFiles calls fn for every regular file under files/<dir> in lexical
// path order. Entries that are not regular files (a symbolic link put
// there by hand) are skipped.
func (s *Store) WalkFiles(ctx context.Context, dir string, fn func(store.FileInfo) error) error {
	if err := check(ctx, store.ValidateDirectory(dir)); err != nil {
		return err
	}
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	root := filepath.Join(s.filesDirectory, filepath.FromSlash(dir))
	err = filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			if path == root && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
				return fs.SkipAll // no such directory: no files
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !entry.Type().IsRegular() || path == root {
			return nil // not a file, or dir names a file: nothing under it
		}
		info, err := entry.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		relative, err := filepath.Rel(s.filesDirectory, path)
		if err != nil {
			return err
		}
		return fn(store.FileInfo{Path: filepath.ToSlash(relative), Bytes: info.Size(), Modified: info.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("diskstore: listing files under %q: %w", dir, err)
	}
	return nil
}

// StatFile describes files/<path>, or returns store.ErrNotFound if it is
// not a regular file.
func (s *Store) StatFile(ctx context.Context, path string) (store.FileInfo, error) {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return store.FileInfo{}, err
	}
	end, err := s.begin()
	if err != nil {
		return store.FileInfo{}, err
	}
	defer end()
	info, err := s.statRegularFile(path)
	if err != nil {
		return store.FileInfo{}, err
	}
	return store.FileInfo{Path: path, Bytes: info.Size(), Modified: info.ModTime()}, nil
}

func (s *Store) statRegularFile(path string) (fs.FileInfo, error) {
	info, err := os.Lstat(filepath.Join(s.filesDirectory, filepath.FromSlash(path)))
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("file %q: %w", path, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("diskstore: file %q: %w", path, err)
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("file %q is not a regular file: %w", path, store.ErrNotFound)
	}
	return info, nil
}

// DeleteFile removes files/<path>, then its parent directories up to
// files/ while they are empty. Nothing is synced: a deletion that a crash
// undoes is repeated by the server's next sweep. A PutFile that meets a
// directory removed meanwhile creates it again (replaceFile).
func (s *Store) DeleteFile(ctx context.Context, path string) error {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return err
	}
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	if _, err := s.statRegularFile(path); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.filesDirectory, filepath.FromSlash(path))); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file %q: %w", path, store.ErrNotFound)
		}
		return fmt.Errorf("diskstore: deleting file %q: %w", path, err)
	}
	for directory, _ := splitLast(path); directory != ""; directory, _ = splitLast(directory) {
		if os.Remove(filepath.Join(s.filesDirectory, filepath.FromSlash(directory))) != nil {
			break // not empty (or gone): its parents are not empty either
		}
	}
	return nil
}

// SessionRecord returns the session's record: the one not yet written to
// record.json (records.go), else record.json's content, or
// store.ErrNotFound. While the journal fails nothing is read, as in
// LoadSession.
func (s *Store) SessionRecord(ctx context.Context, sessionID string) ([]byte, error) {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return nil, err
	}
	end, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	if s.journal != nil {
		if err := s.journal.failure(); err != nil {
			return nil, fmt.Errorf("diskstore: session %q: storage unavailable: %w", sessionID, err)
		}
	}
	state := s.acquire(sessionID)
	defer s.release(state)
	if state.pendingRecord != nil {
		return slices.Clone(state.pendingRecord), nil
	}
	record, err := os.ReadFile(state.recordPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("session %q: no record: %w", sessionID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("diskstore: session %q: reading the record: %w", sessionID, err)
	}
	return record, nil
}

// StorageUsage measures sessions/, journal/ and quarantine/ by walking
// them: one stat per file. Records not yet written to record.json
// (records.go) are counted at their old size.
func (s *Store) StorageUsage(ctx context.Context) (store.StorageUsage, error) {
	if err := ctx.Err(); err != nil {
		return store.StorageUsage{}, err
	}
	end, err := s.begin()
	if err != nil {
		return store.StorageUsage{}, err
	}
	defer end()
	var usage store.StorageUsage
	var errs []error
	for _, part := range []struct {
		name  string
		bytes *int64
	}{
		{sessionsDirectoryName, &usage.Sessions},
		{journalDirectoryName, &usage.Journal},
		{quarantineDirectoryName, &usage.Quarantine},
	} {
		bytes, err := directoryBytes(ctx, filepath.Join(s.root, part.name))
		*part.bytes = bytes
		if err != nil {
			errs = append(errs, fmt.Errorf("diskstore: measuring %s/: %w", part.name, err))
		}
	}
	return usage, errors.Join(errs...)
}

// directoryBytes adds up the sizes of the regular files under root (0 if
// it does not exist). Files that go away meanwhile are skipped.
func directoryBytes(ctx context.Context, root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !entry.Type().IsRegular() {
			return nil
		}
		if info, err := entry.Info(); err == nil {
			total += info.Size()
		}
		return nil
	})
	return total, err
}
