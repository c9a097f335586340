package diskstore

import (
	"container/list"
	"os"
	"path/filepath"
	"sync"
)

// session is the in-memory state of one session directory: the mutex that
// serializes calls for it and its message log while it is open.
type session struct {
	id        string
	directory string

	// mu serializes the calls for this session.
	mu sync.Mutex
	// log is the open message log, or nil. Guarded by mu.
	log *openLog
	// pendingRecord is the session's record when it is newer than
	// record.json (records.go), else nil. Guarded by mu.
	pendingRecord []byte

	// users counts the calls using the session. Guarded by Store.mu.
	users int
	// element is the session's entry in Store.openLogs while its log is
	// open. Guarded by Store.mu.
	element *list.Element
	// deferred: the session is in Store.deferred. Guarded by Store.mu.
	deferred bool
}

// openLog is a message log opened for appending, validated up to size.
type openLog struct {
	file *os.File
	// size is the length of the file: its header and complete commits.
	size int64
	// count is the number of messages in the file, last the seq of the
	// last one (when count > 0).
	count int
	last  uint32
}

func (s *session) recordPath() string { return filepath.Join(s.directory, recordFileName) }
func (s *session) logPath() string    { return filepath.Join(s.directory, logFileName) }

// acquire returns the session with its mutex locked. The caller must call
// release.
func (s *Store) acquire(sessionID string) *session {
	s.mu.Lock()
	state := s.sessions[sessionID]
	if state == nil {
		state = &session{id: sessionID, directory: filepath.Join(s.sessionsDirectory, sessionID)}
		s.sessions[sessionID] = state
	}
	state.users++
	s.mu.Unlock()
	state.mu.Lock()
	return state
}

// release unlocks a session from acquire, forgets it when nobody uses it
// and its log is closed, and closes the least recently used logs while more
// than OpenLogFilesMax are open.
func (s *Store) release(state *session) {
	state.mu.Unlock()
	s.mu.Lock()
	s.unpin(state)
	excess := s.openLogs.Len() - s.openLogFilesMax
	s.mu.Unlock()
	for range excess {
		s.closeLeastRecentlyUsedLog()
	}
}

// unpin ends one use of state. The caller holds s.mu.
func (s *Store) unpin(state *session) {
	state.users--
	if state.users == 0 && state.element == nil && !state.deferred {
		delete(s.sessions, state.id)
	}
}

// closeLeastRecentlyUsedLog closes one log if more than OpenLogFilesMax are
// open. It holds no session mutex when it is called, so it may wait for the
// victim's.
func (s *Store) closeLeastRecentlyUsedLog() {
	s.mu.Lock()
	if s.openLogs.Len() <= s.openLogFilesMax {
		s.mu.Unlock()
		return
	}
	victim := s.openLogs.Back().Value.(*session)
	victim.users++ // keeps victim in s.sessions while s.mu is not held
	s.mu.Unlock()

	victim.mu.Lock()
	// A close error loses nothing: every append was complete when its
	// Commit returned, and reopening the log validates it again.
	_ = s.closeLog(victim)
	victim.mu.Unlock()

	s.mu.Lock()
	s.unpin(victim)
	s.mu.Unlock()
}

// setLog makes log the open log of state and its most recently used one.
// The caller holds state.mu and state has no open log.
func (s *Store) setLog(state *session, log *openLog) {
	state.log = log
	s.mu.Lock()
	state.element = s.openLogs.PushFront(state)
	s.mu.Unlock()
}

// touchLog marks the open log of state as the most recently used. The
// caller holds state.mu.
func (s *Store) touchLog(state *session) {
	s.mu.Lock()
	s.openLogs.MoveToFront(state.element)
	s.mu.Unlock()
}

// closeLog closes the open log of state, if any. The caller holds state.mu.
func (s *Store) closeLog(state *session) error {
	if state.log == nil {
		return nil
	}
	err := state.log.file.Close()
	state.log = nil
	s.mu.Lock()
	s.openLogs.Remove(state.element)
	state.element = nil
	s.mu.Unlock()
	return err
}
