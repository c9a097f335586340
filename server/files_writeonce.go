package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"

	"github.com/metronome-sync/metronome/store"
)

// Write-once files. The clients name snapshots, persisted data and Data-API
// blobs by a hash of their content (docs/protocol.md §8.4, §9.2, §9.3), so
// a file at such a path never needs to change, while replacing it is an
// attack: garbage PUT over the snapshot URL that a SYNC names breaks every
// later joiner. What the clients upload, read from the bundles of
// @croquet/croquet 2.0.4 and @multisynq/client 1.1.0 (the same code in
// both) and from client/shell.go:
//
//   - snapshots: snapshots/<sessionId>/<time10>_<seq>-<hash>.snap (no
//     apiKey; the Go SDK with 16 hex digits of its hash) or
//     apps/<appId>/snap/<codeHash>/<persistentId>.<sessionId>/<time10>_<seq>.<hash>
//     (with an apiKey). The hash is of the snapshot before encryption.
//     One client uploads each snapshot, once, and never retries.
//   - persisted data: apps/<appId>/<persistentId>/save/<hash>, the hash of
//     the data before encryption. The same path is uploaded again with
//     other bytes whenever the data returns to an earlier value (the client
//     only skips data equal to its last upload) and by every client at once
//     with the forcePersist option: encryption uses a random IV, so the
//     bytes always differ. The stored file decrypts to the same data with
//     the same session password.
//   - Data API: apps/<appId>/<persistentId>/data/<hash>, the hash of the
//     encrypted bytes themselves.
//
// Hence the rules of fileRuleFor. Paths of another shape are replaced by
// every PUT, as before.

// fileRule says what a PUT may do to a path that already holds a file.
type fileRule int

const (
	// fileReplaceable: the PUT replaces the file (201).
	fileReplaceable fileRule = iota
	// fileWriteOnce: the same bytes again succeed (200) without writing;
	// other bytes are refused with 409 Conflict.
	fileWriteOnce
	// fileFirstKept: the same bytes again, or other bytes, succeed (200)
	// without writing: the first upload stays. For persisted data, which
	// real clients upload again with other bytes (see above).
	fileFirstKept
)

func (r fileRule) String() string {
	switch r {
	case fileWriteOnce:
		return "write-once"
	case fileFirstKept:
		return "first-kept"
	}
	return "replaceable"
}

// A content hash in a path: base64url SHA-256 (43 characters) from the JS
// clients, 16 hex digits from the Go SDK.
const hashPattern = `[A-Za-z0-9_-]{16,}`

var (
	snapshotPathPattern    = regexp.MustCompile(`^snapshots/[^/]+/[0-9]{10,}_[0-9]+-` + hashPattern + `\.snap$`)
	appSnapshotPathPattern = regexp.MustCompile(`^apps/[^/]+/snap/[^/]+/[^/]+/[0-9]{10,}_[0-9]+\.` + hashPattern + `$`)
	dataPathPattern        = regexp.MustCompile(`^apps/[^/]+/[^/]+/data/` + hashPattern + `$`)
	savePathPattern        = regexp.MustCompile(`^apps/[^/]+/[^/]+/save/` + hashPattern + `$`)
)

// fileRuleFor returns the rule of a valid file path (store.ValidatePath).
func fileRuleFor(path string) fileRule {
	switch {
	case snapshotPathPattern.MatchString(path), appSnapshotPathPattern.MatchString(path), dataPathPattern.MatchString(path):
		return fileWriteOnce
	case savePathPattern.MatchString(path):
		return fileFirstKept
	}
	return fileReplaceable
}

// putOnce stores the body at a path of rule fileWriteOnce or fileFirstKept
// unless the path already holds a file; then it compares the two. The
// caller holds the path's lock (PUTs of one path take turns, fileLocks),
// so that two concurrent uploads cannot both find the path empty: the
// second compares with what the first stored.
func (s *Server) putOnce(w http.ResponseWriter, r *http.Request, path string, rule fileRule, transfer fileTransfer) {
	existing, size, err := s.store.OpenFile(r.Context(), path)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.storeFile(w, r, path, transfer)
		return
	case err != nil:
		// Never store then: the file may exist (out of descriptors, say).
		s.logger.Error("reading file failed", "path", path, "err", err)
		http.Error(w, "reading the stored file failed", http.StatusInternalServerError)
		return
	}
	defer existing.Close()
	same, err := sameContent(r.Body, r.ContentLength, existing, size)
	var storeErr *storedFileError
	switch {
	case errors.As(err, &storeErr):
		s.logger.Error("reading file failed", "path", path, "err", err)
		http.Error(w, "reading the stored file failed", http.StatusInternalServerError)
	case err != nil:
		s.uploadFailed(w, r, path, err, transfer)
	case same:
		s.logger.Debug("upload identical to the stored file", "path", path, "remote", s.remoteAddr(r))
		writeText(w, http.StatusOK, "already stored with the same content")
	case rule == fileFirstKept:
		s.logger.Info("upload of persisted data: kept the file already stored under this hash", "path", path, "remote", s.remoteAddr(r))
		writeText(w, http.StatusOK, "already stored under this content hash; the first upload is kept")
	default:
		s.logger.Info("upload refused: a write-once file holds other content", "path", path, "remote", s.remoteAddr(r))
		writeText(w, http.StatusConflict, fmt.Sprintf("%s already holds other content: snapshots and Data-API files are named by their content's hash and written once", path))
	}
}

// storedFileError is an error reading the stored file (not the upload).
type storedFileError struct{ err error }

func (e *storedFileError) Error() string { return "reading the stored file: " + e.err.Error() }
func (e *storedFileError) Unwrap() error { return e.err }

// compareChunkBytes is the size of each of the two buffers with which
// sameContent compares an upload with a stored file.
const compareChunkBytes = 32 << 10

// sameContent reports whether the body holds exactly the stored file's
// size bytes. It reads no more of the body than it needs to decide: none
// when the declared length (-1: unknown) differs, at most size+1 bytes
// otherwise. Errors reading the stored file are *storedFileError.
func sameContent(body io.Reader, bodyLength int64, stored io.Reader, size int64) (bool, error) {
	if bodyLength >= 0 && bodyLength != size {
		return false, nil
	}
	storedChunk := make([]byte, compareChunkBytes)
	bodyChunk := make([]byte, compareChunkBytes)
	for remaining := size; remaining > 0; {
		chunk := int(min(remaining, compareChunkBytes))
		if _, err := io.ReadFull(stored, storedChunk[:chunk]); err != nil {
			return false, &storedFileError{err}
		}
		read, err := io.ReadFull(body, bodyChunk[:chunk])
		if read < chunk {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return false, nil // the body is shorter
			}
			return false, err
		}
		if !bytes.Equal(storedChunk[:chunk], bodyChunk[:chunk]) {
			return false, nil
		}
		remaining -= int64(chunk)
	}
	read, err := io.ReadFull(body, bodyChunk[:1])
	switch {
	case read == 1:
		return false, nil // the body is longer
	case errors.Is(err, io.EOF):
		return true, nil
	}
	return false, err
}

// fileLocks lets the PUTs of one path take turns. An entry lives while a
// request holds or waits for it, so the map is no larger than the number
// of uploads in progress.
type fileLocks struct {
	mu    sync.Mutex
	paths map[string]*fileLock
}

type fileLock struct {
	// free holds one token while nobody holds the lock; a channel, so that
	// waiting can end with the request's deadline.
	free chan struct{}
	// users counts the requests holding or waiting (guarded by fileLocks.mu).
	users int
}

// lock waits until the path is free or ctx ends; unlock frees it.
func (l *fileLocks) lock(ctx context.Context, path string) (unlock func(), err error) {
	l.mu.Lock()
	if l.paths == nil {
		l.paths = make(map[string]*fileLock)
	}
	entry := l.paths[path]
	if entry == nil {
		entry = &fileLock{free: make(chan struct{}, 1)}
		entry.free <- struct{}{}
		l.paths[path] = entry
	}
	entry.users++
	l.mu.Unlock()
	leave := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if entry.users--; entry.users == 0 {
			delete(l.paths, path)
		}
	}
	select {
	case <-entry.free:
		return func() {
			entry.free <- struct{}{}
			leave()
		}, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// users returns how many requests hold or wait for path's lock, and how
// many paths have entries (for tests).
func (l *fileLocks) users(path string) (users, paths int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if entry := l.paths[path]; entry != nil {
		users = entry.users
	}
	return users, len(l.paths)
}
