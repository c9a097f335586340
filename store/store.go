// Package store persists what a reflector must not lose: for every session
// its record (timeline, time, sequence number, snapshot pointer, ...) and the
// stamped messages since the last snapshot; per application the persisted
// data pointers written by SAVE; and the file blobs (snapshots, persisted
// data, Data-API blobs) that clients upload under /files.
//
// The store treats session records and messages as opaque bytes: the
// reflector core decides what they mean. A store only has to keep them
// durably and hand them back in the order they were committed.
//
// Every implementation passes the conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned when a session, pointer or file does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrTooLarge is returned by PutFile when the body exceeds the given limit.
var ErrTooLarge = errors.New("store: body exceeds size limit")

// ErrBadPath is returned for file paths and pointer keys that are empty,
// absolute, contain "..", "." or empty segments, backslashes, NUL or other
// control characters, or are too long: see ValidatePath.
var ErrBadPath = errors.New("store: bad file path")

// Message is one stamped message: its sequence number and its encoded form
// (the JSON array [time, seq, payload, ...] exactly as sent to clients).
type Message struct {
	Seq  uint32
	Data []byte
}

// Session is everything stored for one session.
type Session struct {
	// Record is the last committed record (opaque JSON owned by the reflector).
	Record []byte
	// Messages are the committed messages since the last snapshot, oldest
	// first, in commit order.
	Messages []Message
}

// Batch is one atomic unit of change to a session. It is applied in this
// order: Append, then DropFront, then Record. Because DropFront only removes
// from the front and Append only adds at the back, a reflector may merge the
// effects of several steps into one Batch (group commit).
type Batch struct {
	// Append adds messages at the end of the session's message log.
	Append []Message
	// DropFront removes this many of the oldest messages (after Append).
	// It is never larger than the number of messages in the log.
	DropFront int
	// Record, when non-nil, replaces the session's record.
	Record []byte
}

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Append) == 0 && b.DropFront == 0 && b.Record == nil
}

// Store is the persistence interface of the reflector. Implementations are
// safe for concurrent use by multiple goroutines; calls for one session are
// made by one goroutine at a time.
type Store interface {
	// LoadSession returns the stored session, or ErrNotFound if nothing was
	// ever committed for it (or it was deleted).
	LoadSession(ctx context.Context, sessionID string) (Session, error)
	// Commit applies a batch. When Commit returns nil, the batch is durable to
	// the degree the implementation promises (see its documentation); a
	// reflector sends no message to any client before the Commit that stores
	// it has returned.
	//
	// A store may keep the Data of appended messages without copying it:
	// the caller must not modify message data after committing it (the
	// reflector never does: a stamped message is immutable). Everything
	// else in the batch may be reused once Commit returns.
	Commit(ctx context.Context, sessionID string, batch Batch) error
	// DeleteSession removes a session's record and messages.
	DeleteSession(ctx context.Context, sessionID string) error
	// Sessions lists the ids of all stored sessions, sorted.
	Sessions(ctx context.Context) ([]string, error)

	// PutPointer stores a small value (a persisted-data pointer written by
	// SAVE) under a key made of path-safe segments, e.g. "appId/persistentId".
	PutPointer(ctx context.Context, key string, value []byte) error
	// GetPointer returns the value stored under key, or ErrNotFound.
	GetPointer(ctx context.Context, key string) ([]byte, error)

	// PutFile stores the body read from r at path, replacing any previous
	// file atomically: a reader sees the old or the new content, never a
	// mix. A body larger than maxBytes fails with ErrTooLarge and leaves the
	// previous content in place.
	PutFile(ctx context.Context, path string, r io.Reader, maxBytes int64) error
	// OpenFile returns the content at path and its size, or ErrNotFound.
	OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error)

	// Close releases resources. Calls after Close fail.
	Close() error
}

// FileInfo describes one uploaded file.
type FileInfo struct {
	// Path is the file's path as PutFile got it ("/"-separated).
	Path string
	// Bytes is the file's size.
	Bytes int64
	// Modified is when the file was stored.
	Modified time.Time
}

// FileCatalog is implemented by stores that can list and delete uploaded
// files (store/diskstore, store/memstore). The server uses it to keep the
// upload quotas and to delete old snapshots and the files of deleted
// sessions (server/snapshotgc.go). Every implementation passes the
// conformance suite's file catalog tests.
type FileCatalog interface {
	// WalkFiles calls fn for every file under the directory dir ("" for
	// every file), in path order. An error from fn ends the walk and is
	// returned. A directory that does not exist holds no files.
	WalkFiles(ctx context.Context, dir string, fn func(FileInfo) error) error
	// StatFile describes the file at path, or returns ErrNotFound.
	StatFile(ctx context.Context, path string) (FileInfo, error)
	// DeleteFile removes the file at path, and the directories that it
	// leaves empty, or returns ErrNotFound. A reader that opened the file
	// before keeps reading its content. A deletion need not be durable:
	// after a crash a deleted file may be back.
	DeleteFile(ctx context.Context, path string) error
}

// RecordReader is implemented by stores that can read a session's record
// without its messages (store/diskstore, store/memstore).
type RecordReader interface {
	// SessionRecord returns the session's last committed record, or
	// ErrNotFound if the session is not stored or has no record.
	SessionRecord(ctx context.Context, sessionID string) ([]byte, error)
}

// StorageUsage is what a store holds besides the uploaded files, in bytes.
type StorageUsage struct {
	// Sessions are the records and message logs.
	Sessions int64
	// Journal is the journal (store/diskstore in durable mode on Linux).
	Journal int64
	// Quarantine holds damaged sessions and journal files.
	Quarantine int64
}

// UsageReporter is implemented by stores that can measure what they hold
// (store/diskstore, store/memstore). Measuring may read every session's
// directory: callers do it now and then, not per request.
type UsageReporter interface {
	StorageUsage(ctx context.Context) (StorageUsage, error)
}
