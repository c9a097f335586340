package diskstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/metronome-sync/metronome/store"
)

// renameAttemptsMax bounds how often replaceFile creates a file's
// directory again because a deletion removed it meanwhile.
const renameAttemptsMax = 3

// replaceFile atomically replaces the file at relative (a slash-separated
// path) under root with what write writes. The new content goes to a new
// file in tmp/, which is renamed over the target once it is complete, after
// the missing parent directories are created. With sync (Durable, where the
// journal does not cover the file), the new file is synced before the
// rename and the target's directory after it. If write fails, the target
// is left as it was.
func (s *Store) replaceFile(root, relative string, sync bool, write func(io.Writer) error) (err error) {
	temporary, err := os.CreateTemp(s.temporaryDirectory, "new-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			temporary.Close()
			os.Remove(temporary.Name())
		}
	}()
	if err := write(temporary); err != nil {
		return err
	}
	if sync {
		if err := temporary.Sync(); err != nil {
			return err
		}
	}
	if err := temporary.Close(); err != nil {
		return err
	}
	directory, _ := splitLast(relative)
	target := filepath.Join(root, filepath.FromSlash(relative))
	// DeleteFile removes the directories it empties: one may go between
	// its creation here and the rename, which then finds no directory
	// and creates it again.
	for attempt := 1; ; attempt++ {
		if err := s.makeDirectories(root, directory, sync); err != nil {
			return err
		}
		err := os.Rename(temporary.Name(), target)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == renameAttemptsMax {
			return err
		}
	}
	renamed = true
	if sync {
		return syncDirectory(filepath.Dir(target))
	}
	return nil
}

// makeDirectories creates the directory relative (slash-separated, "" for
// root itself) under root and its missing parents. With sync, the parent
// of every directory it creates is synced, so the new entries survive a
// crash.
func (s *Store) makeDirectories(root, relative string, sync bool) error {
	if relative == "" {
		return nil
	}
	target := filepath.Join(root, filepath.FromSlash(relative))
	if info, err := os.Stat(target); err == nil && info.IsDir() {
		return nil
	}
	directory := root
	for _, segment := range strings.Split(relative, "/") {
		parent := directory
		directory = filepath.Join(directory, segment)
		err := os.Mkdir(directory, directoryPermissions)
		if errors.Is(err, fs.ErrExist) {
			continue // a file in the way makes the next step fail
		}
		if err != nil {
			return err
		}
		if sync {
			if err := syncDirectory(parent); err != nil {
				return err
			}
		}
	}
	return nil
}

// makeSessionDirectory creates the session's directory if it is missing.
func (s *Store) makeSessionDirectory(state *session) error {
	return s.makeDirectories(s.sessionsDirectory, state.id, s.syncSessionFiles())
}

// syncDirectory fsyncs a directory, making the creation, removal and
// renaming of its entries durable.
func syncDirectory(path string) error {
	directory, err := os.Open(path)
	if err != nil {
		return err
	}
	err = directory.Sync()
	if closeErr := directory.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", path, err)
	}
	return nil
}

// openRegularFile opens the file at relative under root for reading, and
// returns it with its size. A missing file, a directory, or a path through
// a file is store.ErrNotFound.
func openRegularFile(root, relative string) (*os.File, int64, error) {
	file, err := os.Open(filepath.Join(root, filepath.FromSlash(relative)))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, 0, err
	}
	if !info.Mode().IsRegular() {
		file.Close()
		return nil, 0, store.ErrNotFound
	}
	return file, info.Size(), nil
}

// readRegularFile returns the content of the file at relative under root,
// or store.ErrNotFound as openRegularFile does.
func readRegularFile(root, relative string) ([]byte, error) {
	file, size, err := openRegularFile(root, relative)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	content := make([]byte, size)
	if _, err := io.ReadFull(file, content); err != nil {
		return nil, err
	}
	return content, nil
}

// splitLast splits a slash-separated path into its directory ("" if none)
// and its last segment.
func splitLast(path string) (directory, name string) {
	index := strings.LastIndexByte(path, '/')
	if index < 0 {
		return "", path
	}
	return path[:index], path[index+1:]
}
