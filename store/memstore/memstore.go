// Package memstore is an in-memory store.Store for tests, the simulator and
// servers that need no persistence. Nothing survives the process.
//
// Records and pointer values are copied on the way in and on the way out, and
// LoadSession returns copies of the messages, so callers may reuse or modify
// those buffers freely. Committed message data is the exception: the
// store.Store contract makes it immutable, so Commit keeps the slices without
// copying them (in-memory mode holds each message once), and the caller must
// not modify them afterwards. A session's messages are kept in blocks of 256
// (messageList): appending never copies the messages already held, and
// dropping from the front frees whole blocks. PutFile reads a file into a
// buffer of its own; OpenFile reads from that buffer without copying it.
//
// Session ids are checked with store.ValidateSessionID, file paths and
// pointer keys with store.ValidatePath, as in every store.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// Store keeps sessions, pointers and files in maps guarded by one mutex. It is
// safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	closed   bool
	sessions map[string]*session
	pointers map[string][]byte
	// files hold contents that are never modified after they are stored, so
	// OpenFile can hand out readers over them without copying.
	files map[string]storedFile
}

// storedFile is an uploaded file and when it was stored.
type storedFile struct {
	content  []byte
	modified time.Time
}

type session struct {
	record   []byte
	messages messageList
	// modified is when a commit last changed the session.
	modified time.Time
}

var _ store.Store = (*Store)(nil)

// SessionModified returns when a commit last changed the session (for the
// server's retention of idle sessions), or store.ErrNotFound.
func (s *Store) SessionModified(ctx context.Context, sessionID string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stored := s.sessions[sessionID]
	if stored == nil {
		return time.Time{}, store.ErrNotFound
	}
	return stored.modified, nil
}

// New returns an empty store.
func New() *Store {
	return &Store{
		sessions: make(map[string]*session),
		pointers: make(map[string][]byte),
		files:    make(map[string]storedFile),
	}
}

// LoadSession returns a copy of the session, or store.ErrNotFound.
func (s *Store) LoadSession(ctx context.Context, sessionID string) (store.Session, error) {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return store.Session{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.Session{}, store.ErrClosed
	}
	stored, ok := s.sessions[sessionID]
	if !ok {
		return store.Session{}, fmt.Errorf("session %q: %w", sessionID, store.ErrNotFound)
	}
	return store.Session{
		Record:   bytes.Clone(stored.record),
		Messages: store.CloneMessages(stored.messages.all()),
	}, nil
}

// Commit applies the batch atomically: a batch whose DropFront is negative or
// larger than the number of messages after Append changes nothing and fails.
// An empty batch changes nothing and does not create the session.
func (s *Store) Commit(ctx context.Context, sessionID string, batch store.Batch) error {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	stored := s.sessions[sessionID]
	var count int
	if stored != nil {
		count = stored.messages.len()
	}
	if batch.DropFront < 0 || batch.DropFront > count+len(batch.Append) {
		return fmt.Errorf("session %q: batch drops %d messages, the log has %d after appending %d",
			sessionID, batch.DropFront, count+len(batch.Append), len(batch.Append))
	}
	if batch.Empty() {
		return nil
	}
	if stored == nil {
		stored = &session{}
		s.sessions[sessionID] = stored
	}
	stored.modified = time.Now()
	// The messages' data are immutable (Store.Commit): kept, not copied, so
	// that in-memory mode holds each message once.
	stored.messages.append(batch.Append...)
	stored.messages.dropFront(batch.DropFront)
	if batch.Record != nil {
		stored.record = bytes.Clone(batch.Record)
	}
	return nil
}

// DeleteSession removes the session. Deleting an unknown session succeeds.
func (s *Store) DeleteSession(ctx context.Context, sessionID string) error {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	delete(s.sessions, sessionID)
	return nil
}

// Sessions lists the ids of all stored sessions, sorted.
func (s *Store) Sessions(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// PutPointer stores a copy of value under key.
func (s *Store) PutPointer(ctx context.Context, key string, value []byte) error {
	if err := check(ctx, store.ValidatePath(key)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.pointers[key] = append(make([]byte, 0, len(value)), value...)
	return nil
}

// GetPointer returns a copy of the value under key, or store.ErrNotFound.
func (s *Store) GetPointer(ctx context.Context, key string) ([]byte, error) {
	if err := check(ctx, store.ValidatePath(key)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	value, ok := s.pointers[key]
	if !ok {
		return nil, fmt.Errorf("pointer %q: %w", key, store.ErrNotFound)
	}
	return bytes.Clone(value), nil
}

// PutFile reads the whole body before it replaces the file, so a failed or
// too large upload leaves the previous content in place.
func (s *Store) PutFile(ctx context.Context, path string, r io.Reader, maxBytes int64) error {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return err
	}
	if maxBytes < 0 {
		return fmt.Errorf("file %q: size limit is %d bytes, must not be negative", path, maxBytes)
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	// Read without holding the lock: the body may arrive slowly.
	body, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return fmt.Errorf("file %q: reading body: %w", path, err)
	}
	if int64(len(body)) > maxBytes {
		return fmt.Errorf("file %q: body exceeds %d bytes: %w", path, maxBytes, store.ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.files[path] = storedFile{content: body, modified: time.Now()}
	return nil
}

// OpenFile returns a reader over the content at path, or store.ErrNotFound.
func (s *Store) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, store.ErrClosed
	}
	file, ok := s.files[path]
	if !ok {
		return nil, 0, fmt.Errorf("file %q: %w", path, store.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(file.content)), int64(len(file.content)), nil
}

// Close drops all content. Calls after Close fail with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.sessions, s.pointers, s.files = nil, nil, nil
	return nil
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// check returns the validation error, else the context's error.
func check(ctx context.Context, validation error) error {
	if validation != nil {
		return validation
	}
	return ctx.Err()
}
