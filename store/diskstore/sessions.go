package diskstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/metronome-sync/metronome/store"
)

// LoadSession reads the session's record and message log. The first read of
// a log after Open (or after it was closed to bound the open logs) cuts off a
// torn write at its end.
func (s *Store) LoadSession(ctx context.Context, sessionID string) (store.Session, error) {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return store.Session{}, err
	}
	end, err := s.begin()
	if err != nil {
		return store.Session{}, err
	}
	defer end()
	if s.journal != nil {
		// While the journal fails, the session files may hold changes
		// that are not durable: nothing is read until it has recovered.
		if err := s.journal.failure(); err != nil {
			return store.Session{}, fmt.Errorf("diskstore: session %q: storage unavailable: %w", sessionID, err)
		}
	}
	state := s.acquire(sessionID)
	defer s.release(state)

	record, err := slices.Clone(state.pendingRecord), error(nil)
	if record == nil {
		record, err = os.ReadFile(state.recordPath())
	}
	if errors.Is(err, fs.ErrNotExist) {
		record = nil
	} else if err != nil {
		return store.Session{}, fmt.Errorf("diskstore: session %q: reading the record: %w", sessionID, err)
	}
	content, err := s.readLog(state)
	if errors.Is(err, errNoLog) {
		if record == nil {
			return store.Session{}, fmt.Errorf("session %q: %w", sessionID, store.ErrNotFound)
		}
		return store.Session{Record: record}, nil
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("diskstore: session %q: %w", sessionID, err)
	}
	messages, validBytes, err := decodeLog(content)
	if err == nil && validBytes != len(content) {
		err = fmt.Errorf("%d bytes at offset %d are not complete frames", len(content)-validBytes, validBytes)
	}
	if err != nil {
		// The log changed behind the store's back.
		_ = s.closeLog(state)
		return store.Session{}, fmt.Errorf("diskstore: session %q: %s: %w", sessionID, state.logPath(), err)
	}
	return store.Session{Record: record, Messages: messages}, nil
}

// Commit applies the batch as the package documentation describes. A batch
// whose DropFront is negative or larger than the number of messages after
// Append changes nothing and fails. An empty batch changes nothing and does
// not create the session.
func (s *Store) Commit(ctx context.Context, sessionID string, batch store.Batch) error {
	var wait chan error
	done, err := s.submit(ctx, sessionID, batch, func() func(error) {
		wait = make(chan error, 1)
		return func(err error) { wait <- err }
	})
	if err == nil && !done {
		err = <-wait
	}
	if err != nil {
		return fmt.Errorf("diskstore: session %q: %w", sessionID, err)
	}
	return nil
}

// Submit applies the batch like Commit, but with the journal (durable
// mode on Linux) it returns before the batch is durable and calls durable
// once it is, or once it cannot be (from the journal's goroutine; see
// host.PipelinedStore). Without the journal Commit's work is done when it
// returns, and done is true.
func (s *Store) Submit(ctx context.Context, sessionID string, batch store.Batch, durable func(error)) (done bool, err error) {
	done, err = s.submit(ctx, sessionID, batch, func() func(error) { return durable })
	if err != nil {
		return false, fmt.Errorf("diskstore: session %q: %w", sessionID, err)
	}
	return done, nil
}

// submit is Commit and Submit: it applies the batch to the session files
// and, with the journal, hands the journal entries to it with the function
// that notify returns; done reports that nothing is left to wait for.
func (s *Store) submit(ctx context.Context, sessionID string, batch store.Batch, notify func() func(error)) (done bool, err error) {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return false, err
	}
	end, err := s.begin()
	if err != nil {
		return false, err
	}
	defer end()
	if batch.DropFront < 0 {
		return false, fmt.Errorf("batch drops %d messages, must not be negative", batch.DropFront)
	}
	// Encoding first also checks every message before anything is written.
	frames, err := appendFrames(nil, batch.Append)
	if err != nil {
		return false, err
	}
	if batch.Empty() {
		return true, nil
	}
	state := s.acquire(sessionID)
	defer s.release(state)
	var journaled []journalEntry
	err = s.commit(state, batch, frames, &journaled)
	if err != nil && !errors.Is(err, store.ErrCorrupt) {
		s.writeFailure.Store(&err)
	} else if err == nil && s.writeFailure.Load() != nil {
		s.writeFailure.Store(nil)
	}
	if s.journal == nil || len(journaled) == 0 {
		return true, err
	}
	// What was changed is journaled even when a later step failed: the
	// session files hold it, and a reload may read it. The journal
	// encodes the entries before submit returns, so frames may be reused.
	if err != nil {
		_ = s.journal.commit(journaled)
		return false, err
	}
	if err := s.journal.submit(journaled, notify()); err != nil {
		return false, err
	}
	return false, nil
}

// commit applies a checked, non-empty batch whose appended messages are
// encoded in frames, and adds the journal entries of the steps done to
// journaled. The caller holds state.mu.
func (s *Store) commit(state *session, batch store.Batch, frames []byte, journaled *[]journalEntry) error {
	count := 0
	if batch.DropFront > 0 || len(batch.Append) > 0 {
		err := s.useLog(state, false)
		if err != nil && !errors.Is(err, errNoLog) {
			return err
		}
		if state.log != nil {
			count = state.log.count
		}
	}
	if total := count + len(batch.Append); batch.DropFront > total {
		return fmt.Errorf("batch drops %d messages, the log has %d after appending %d", batch.DropFront, total, len(batch.Append))
	}
	if len(batch.Append) > 0 {
		if err := s.useLog(state, true); err != nil {
			return fmt.Errorf("opening the message log: %w", err)
		}
		if err := s.appendToLog(state, frames, len(batch.Append), batch.Append[len(batch.Append)-1].Seq); err != nil {
			return fmt.Errorf("appending %d messages: %w", len(batch.Append), err)
		}
		*journaled = append(*journaled, journalEntry{kind: journalAppend, session: state.id, payload: frames})
	}
	if batch.Record != nil && s.journaled && s.replaying == nil {
		// The journal holds it; record.json is written later (records.go).
		s.deferRecord(state, batch.Record)
		*journaled = append(*journaled, journalEntry{kind: journalRecord, session: state.id, payload: batch.Record})
	} else if batch.Record != nil {
		if err := s.writeRecord(state, batch.Record); err != nil {
			return fmt.Errorf("writing the record: %w", err)
		}
		*journaled = append(*journaled, journalEntry{kind: journalRecord, session: state.id, payload: batch.Record})
	}
	if batch.DropFront > 0 {
		lastDropped, err := s.dropFromLog(state, batch.DropFront)
		if err != nil {
			return fmt.Errorf("dropping %d messages: %w", batch.DropFront, err)
		}
		*journaled = append(*journaled, journalEntry{kind: journalDrop, session: state.id,
			payload: binary.LittleEndian.AppendUint32(nil, lastDropped)})
	}
	return nil
}

func (s *Store) writeRecord(state *session, record []byte) error {
	if err := s.makeSessionDirectory(state); err != nil {
		return err
	}
	return s.replaceFile(state.directory, recordFileName, s.syncSessionFiles(), func(w io.Writer) error {
		_, err := w.Write(record)
		return err
	})
}

// DeleteSession removes the session's directory: it moves it into tmp/
// (atomically, and synced when Durable) and then removes it there.
// Deleting an unknown session succeeds.
func (s *Store) DeleteSession(ctx context.Context, sessionID string) error {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return err
	}
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	state := s.acquire(sessionID)
	defer s.release(state)
	if err := s.deleteSession(state); err != nil {
		return fmt.Errorf("diskstore: deleting session %q: %w", sessionID, err)
	}
	if s.journal != nil {
		if err := s.journal.commit([]journalEntry{{kind: journalDelete, session: sessionID}}); err != nil {
			return fmt.Errorf("diskstore: deleting session %q: %w", sessionID, err)
		}
	}
	return nil
}

func (s *Store) deleteSession(state *session) error {
	// A failure to close loses nothing: the directory goes away.
	_ = s.closeLog(state)
	s.forgetRecord(state)
	if _, err := os.Lstat(state.directory); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	trash, err := os.MkdirTemp(s.temporaryDirectory, "deleted-*")
	if err != nil {
		return err
	}
	if err := os.Rename(state.directory, filepath.Join(trash, "session")); err != nil {
		os.Remove(trash)
		return err
	}
	if s.syncSessionFiles() {
		if err := syncDirectory(s.sessionsDirectory); err != nil {
			return err
		}
	}
	// What is left in tmp/ is removed by the next Open.
	_ = os.RemoveAll(trash)
	return nil
}

// Sessions lists the session directories that hold a record or a message
// log, sorted.
func (s *Store) Sessions(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	end, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	// os.ReadDir sorts by name, which is the byte order of the ids.
	entries, err := os.ReadDir(s.sessionsDirectory)
	if err != nil {
		return nil, fmt.Errorf("diskstore: listing sessions: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, entry := range entries {
		if !entry.IsDir() || store.ValidateSessionID(entry.Name()) != nil {
			continue
		}
		directory := filepath.Join(s.sessionsDirectory, entry.Name())
		if exists(filepath.Join(directory, recordFileName)) || exists(filepath.Join(directory, logFileName)) {
			ids = append(ids, entry.Name())
		}
	}
	// Sessions whose only record is not written yet (records.go).
	s.mu.Lock()
	for state := range s.deferred {
		if _, found := slices.BinarySearch(ids, state.id); !found {
			ids = append(ids, state.id)
		}
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return ids, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// check returns the validation error, else the context's error.
func check(ctx context.Context, validation error) error {
	if validation != nil {
		return validation
	}
	return ctx.Err()
}
