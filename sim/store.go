package sim

import (
	"fmt"
	"maps"
	"slices"

	"github.com/metronome-sync/metronome/reflector"
)

// store is the reflector's disk as the simulator sees it. A commit is
// durable when it returns (the production server commits durably before it
// sends any frame that depends on it). A crash can tear the commit in
// progress: the torn-commit fault keeps its new record but loses its drop
// of the messages a snapshot covered — the state reflector.Restore must
// repair. The "lost-durable-write" bug loses the whole last commit although
// it was acknowledged, which no correct disk does; the simulator must
// notice.
type store struct {
	sessions map[string]*storedSession
	pointers map[string][]byte
	// unsynced lists the commits not yet synced to the disk, oldest first,
	// when the store runs without durability (Options.NonDurable): the
	// operating system holds them until its next flush; a machine crash
	// loses them.
	nonDurable bool
	unsynced   []unsyncedCommit
}

type unsyncedCommit struct {
	session string
	undo    *commitUndo
}

type storedSession struct {
	record   []byte
	messages []reflector.StoredMessage
	// last is how to undo the most recent commit (for crash faults).
	last *commitUndo
}

type commitUndo struct {
	appended int
	dropped  []reflector.StoredMessage
	record   []byte // the record before the commit
	replaced bool   // the commit wrote a record
}

func newStore() *store {
	return &store{sessions: map[string]*storedSession{}, pointers: map[string][]byte{}}
}

// load returns what is stored for a session (ok false if nothing).
func (s *store) load(id string) (record []byte, messages []reflector.StoredMessage, ok bool) {
	stored := s.sessions[id]
	if stored == nil || stored.record == nil {
		return nil, nil, false
	}
	return stored.record, slices.Clone(stored.messages), true
}

// commit applies a reflector Storage effect: Append, then DropFront, then
// Record, then Pointers.
func (s *store) commit(id string, storage *reflector.Storage) error {
	stored := s.sessions[id]
	if stored == nil {
		stored = &storedSession{}
		s.sessions[id] = stored
	}
	undo := &commitUndo{appended: len(storage.Append), record: stored.record, replaced: storage.Record != nil}
	for _, message := range storage.Append {
		if n := len(stored.messages); n > 0 && message.Seq != stored.messages[n-1].Seq+1 {
			return fmt.Errorf("store: session %s: appending seq %d after %d", id, message.Seq, stored.messages[n-1].Seq)
		}
		stored.messages = append(stored.messages, reflector.StoredMessage{Seq: message.Seq, Data: slices.Clone(message.Data)})
	}
	if storage.DropFront > 0 {
		if storage.DropFront > len(stored.messages) {
			return fmt.Errorf("store: session %s: dropping %d of %d messages", id, storage.DropFront, len(stored.messages))
		}
		undo.dropped = slices.Clone(stored.messages[:storage.DropFront])
		stored.messages = slices.Clone(stored.messages[storage.DropFront:])
	}
	if storage.Record != nil {
		stored.record = slices.Clone(storage.Record)
	}
	for _, pointer := range storage.Pointers {
		s.pointers[pointer.Key] = slices.Clone(pointer.Value)
	}
	stored.last = undo
	if s.nonDurable {
		s.unsynced = append(s.unsynced, unsyncedCommit{session: id, undo: undo})
	}
	return nil
}

// sync flushes the unsynced commits to the disk (the operating system's
// periodic write-back).
func (s *store) sync() { s.unsynced = nil }

// loseUnsynced undoes every commit not yet synced, newest first (a machine
// crash of a store without durability). It returns how many were lost.
func (s *store) loseUnsynced() int {
	lost := len(s.unsynced)
	for i := len(s.unsynced) - 1; i >= 0; i-- {
		entry := s.unsynced[i]
		s.sessions[entry.session].revert(entry.undo)
	}
	s.unsynced = nil
	return lost
}

// tearLastCommits undoes the drop of every session's last commit (a crash
// inside the commit: the record was written, the drop was not). It
// returns how many sessions were affected.
func (s *store) tearLastCommits() int {
	torn := 0
	for _, id := range sortedKeys(s.sessions) {
		stored := s.sessions[id]
		if stored.last == nil || len(stored.last.dropped) == 0 {
			continue
		}
		stored.messages = append(slices.Clone(stored.last.dropped), stored.messages...)
		stored.last.dropped = nil
		torn++
	}
	return torn
}

// loseLastCommits undoes every session's last commit entirely (the
// "lost-durable-write" bug).
func (s *store) loseLastCommits() int {
	lost := 0
	for _, id := range sortedKeys(s.sessions) {
		stored := s.sessions[id]
		undo := stored.last
		if undo == nil || undo.appended == 0 {
			continue
		}
		stored.revert(undo)
		lost++
	}
	return lost
}

// revert undoes a commit: its appended messages go, the messages it
// dropped come back, the record it replaced returns.
func (stored *storedSession) revert(undo *commitUndo) {
	kept := stored.messages[:len(stored.messages)-undo.appended]
	stored.messages = append(slices.Clone(undo.dropped), kept...)
	if undo.replaced {
		stored.record = undo.record
	}
	stored.last = nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
