package diskstore

import (
	"context"
	"errors"
	"os"
	"slices"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// # Records written late
//
// A session's record changes often: the reflector renews its time lease
// (every TimeLeaseMs/2 of session time) and records every snapshot. With
// the journal, a record is durable once its journal entry is, so
// replacing record.json at every commit (a new file and a rename) buys
// nothing but work. Instead the newest record stays in memory
// (session.pendingRecord), LoadSession returns it, and record.json is
// written only before the journal entries that hold it may be removed:
// before a checkpoint's file-system sync, before recovering from a storage
// error, and at Close (writeDeferredRecords). A crash loses nothing: the
// journal's replay writes the records it holds.

// deferRecord makes record the session's record, to be written later. The
// caller holds state.mu; record is copied (the caller may reuse it).
func (s *Store) deferRecord(state *session, record []byte) {
	state.pendingRecord = slices.Clone(record)
	s.mu.Lock()
	if !state.deferred {
		state.deferred = true
		s.deferred[state] = struct{}{}
	}
	s.mu.Unlock()
}

// forgetRecord drops the session's record not yet written (the session is
// deleted or quarantined). The caller holds state.mu.
func (s *Store) forgetRecord(state *session) {
	state.pendingRecord = nil
	s.mu.Lock()
	if state.deferred {
		state.deferred = false
		delete(s.deferred, state)
	}
	s.mu.Unlock()
}

// writeDeferredRecords writes every record not yet written to its
// record.json (not synced: the caller syncs the file system next). It
// holds no session mutex when it is called.
func (s *Store) writeDeferredRecords() error {
	s.mu.Lock()
	states := make([]*session, 0, len(s.deferred))
	for state := range s.deferred {
		states = append(states, state)
		state.users++ // keeps it in s.sessions while s.mu is not held
	}
	s.mu.Unlock()
	var errs []error
	for _, state := range states {
		state.mu.Lock()
		if record := state.pendingRecord; record != nil {
			if err := s.writeRecord(state, record); err != nil {
				errs = append(errs, err)
			} else {
				s.forgetRecord(state)
			}
		}
		s.release(state)
	}
	return errors.Join(errs...)
}

// SessionModified returns when the session's stored data last changed: the
// newest modification time of its record and log, or now if its record is
// not written yet (for the server's retention of idle sessions). It
// returns store.ErrNotFound for a session with neither.
func (s *Store) SessionModified(ctx context.Context, sessionID string) (time.Time, error) {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return time.Time{}, err
	}
	end, err := s.begin()
	if err != nil {
		return time.Time{}, err
	}
	defer end()
	state := s.acquire(sessionID)
	defer s.release(state)
	if state.pendingRecord != nil {
		return time.Now(), nil
	}
	var newest time.Time
	found := false
	for _, path := range []string{state.recordPath(), state.logPath()} {
		if info, err := os.Stat(path); err == nil {
			found = true
			if info.ModTime().After(newest) {
				newest = info.ModTime()
			}
		}
	}
	if !found {
		return time.Time{}, store.ErrNotFound
	}
	return newest, nil
}
