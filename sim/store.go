package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	metronomestore "github.com/metronome-sync/metronome/store"
)

// store is the reflector's disk as the simulator sees it, behind the
// host.Store interface the server's stores implement. A commit is durable
// when it returns (the host sends no frame that depends on it before). A
// crash can tear the commit in progress: the torn-commit fault keeps its
// new record but loses its drop of the messages a snapshot covered — the
// state reflector.Restore must repair. The storage-failure fault makes a
// commit or a load fail (a full or failing disk): the host must then send
// nothing of the batch and restart the session from what is stored. The
// "lost-durable-write" bug loses the whole last commit although it was
// acknowledged, which no correct disk does; the simulator must notice.
type store struct {
	w        *World
	sessions map[string]*storedSession
	pointers map[string][]byte
	// failChance is the chance that a commit or a load fails
	// (storage-failure fault).
	failChance float64
	// damageChance is the chance that a load finds the stored session
	// damaged (storage-damage fault): it is quarantined (forgotten here)
	// and the load fails with store.ErrCorrupt.
	damageChance float64
	// unsynced lists the commits not yet synced to the disk, oldest first,
	// when the store runs without durability (Options.NonDurable): the
	// operating system holds them until its next flush; a machine crash
	// loses them.
	nonDurable bool
	unsynced   []unsyncedCommit

	// syncDelayMaxMs, when positive, makes commits pipelined as with the
	// journal of store/diskstore (host.PipelinedStore): Submit applies a
	// batch at once and it becomes durable at the store's next sync
	// round, which ends up to syncDelayMaxMs later; submitted lists the
	// batches not yet durable, oldest first. A crash loses them or keeps
	// them (a power cut, or a process crash with the page cache intact);
	// either is correct because no frame depending on them was sent.
	syncDelayMaxMs int64
	submitted      []submittedCommit
	syncToken      uint64 // the scheduled sync round; 0: none
}

// submittedCommit is a pipelined commit waiting for its sync round.
type submittedCommit struct {
	unsyncedCommit
	durable func(error)
	// fails: the sync round fails for this batch (storage-failure fault).
	fails bool
}

// errInjected is the error of a storage failure the simulator injected.
var errInjected = errors.New("sim store: injected storage failure")

type unsyncedCommit struct {
	session string
	undo    *commitUndo
}

type storedSession struct {
	record   []byte
	messages []metronomestore.Message
	// last is how to undo the most recent commit (for crash faults).
	last *commitUndo
}

type commitUndo struct {
	appended int
	dropped  []metronomestore.Message
	record   []byte // the record before the commit
	replaced bool   // the commit wrote a record
}

func newStore(w *World) *store {
	return &store{w: w, sessions: map[string]*storedSession{}, pointers: map[string][]byte{}}
}

// fails draws whether the next operation hits an injected storage failure.
func (s *store) fails(what, id string) bool {
	if s.failChance == 0 || !s.w.rand.Chance(s.failChance) {
		return false
	}
	s.w.count(FaultStorageFailure)
	s.w.tracef("store: %s of session %s fails (injected)", what, id)
	return true
}

// LoadSession returns what is stored for a session.
func (s *store) LoadSession(_ context.Context, id string) (metronomestore.Session, error) {
	if s.fails("load", id) {
		return metronomestore.Session{}, errInjected
	}
	stored := s.sessions[id]
	if stored == nil || stored.record == nil {
		return metronomestore.Session{}, metronomestore.ErrNotFound
	}
	if s.damageChance > 0 && s.w.rand.Chance(s.damageChance) {
		s.w.count(FaultStorageDamage)
		s.w.tracef("store: session %s is damaged: quarantined (injected)", id)
		delete(s.sessions, id)
		return metronomestore.Session{}, fmt.Errorf("sim store: session %s: %w", id, metronomestore.ErrCorrupt)
	}
	return metronomestore.Session{Record: stored.record, Messages: slices.Clone(stored.messages)}, nil
}

// Commit applies a batch: Append, then DropFront, then Record. A batch the
// store cannot apply (a sequence gap, a drop beyond the log) is a bug of
// the host or the core: a violation.
func (s *store) Commit(_ context.Context, id string, batch metronomestore.Batch) error {
	if s.fails("commit", id) {
		return errInjected
	}
	_, err := s.apply(id, batch)
	return err
}

// Submit applies a batch like Commit and reports it durable (or failed)
// at the next sync round (see syncDelayMaxMs). An injected storage
// failure fails the Submit at once or the batch's sync round.
func (s *store) Submit(_ context.Context, id string, batch metronomestore.Batch, durable func(error)) (bool, error) {
	fails := s.fails("submit", id)
	if fails && s.w.rand.Chance(0.5) {
		return false, errInjected
	}
	undo, err := s.apply(id, batch)
	if err != nil {
		return false, err
	}
	s.submitted = append(s.submitted, submittedCommit{unsyncedCommit: unsyncedCommit{session: id, undo: undo}, durable: durable, fails: fails})
	if s.syncToken == 0 {
		s.scheduleSync()
	}
	return false, nil
}

// scheduleSync schedules the next sync round: it makes durable what was
// submitted before it ends.
func (s *store) scheduleSync() {
	s.syncToken = s.w.rand.Uint64() | 1
	token, r := s.syncToken, s.w.reflector
	incarnation := r.incarnation
	var run func()
	run = func() {
		if !r.up || r.incarnation != incarnation || s.syncToken != token {
			return
		}
		if r.deferred(run) {
			return
		}
		s.syncToken = 0
		s.syncRound()
	}
	s.w.queue.schedule(s.w.now+s.w.rand.Between(0, s.syncDelayMaxMs), run)
}

// syncRound reports every submitted batch durable (or failed), oldest
// first.
func (s *store) syncRound() {
	round := s.submitted
	s.submitted = nil
	for _, commit := range round {
		if commit.fails {
			commit.durable(errInjected)
		} else {
			commit.durable(nil)
		}
	}
}

// syncSubmitted ends the pending sync round at once (a graceful stop
// waits for it).
func (s *store) syncSubmitted() {
	s.syncToken = 0
	s.syncRound()
}

// crashSubmitted forgets the batches not yet durable, and with lose undoes
// them, newest first (a power cut). It returns how many there were.
func (s *store) crashSubmitted(lose bool) int {
	n := len(s.submitted)
	if lose {
		for i := n - 1; i >= 0; i-- {
			entry := s.submitted[i]
			if stored := s.sessions[entry.session]; stored != nil { // nil: quarantined since
				stored.revert(entry.undo)
			}
		}
	}
	s.submitted, s.syncToken = nil, 0
	return n
}

// apply applies a batch and returns how to undo it.
func (s *store) apply(id string, batch metronomestore.Batch) (*commitUndo, error) {
	stored := s.sessions[id]
	if stored == nil {
		stored = &storedSession{}
		s.sessions[id] = stored
	}
	undo := &commitUndo{appended: len(batch.Append), record: stored.record, replaced: batch.Record != nil}
	last, any := uint32(0), len(stored.messages) > 0
	if any {
		last = stored.messages[len(stored.messages)-1].Seq
	}
	for _, message := range batch.Append {
		if any && message.Seq != last+1 {
			err := fmt.Errorf("store: session %s: appending seq %d after %d", id, message.Seq, last)
			s.w.violate(InvariantOrder, err.Error())
			return nil, err
		}
		last, any = message.Seq, true
	}
	if batch.DropFront > len(stored.messages)+len(batch.Append) {
		err := fmt.Errorf("store: session %s: dropping %d of %d messages", id, batch.DropFront, len(stored.messages)+len(batch.Append))
		s.w.violate(InvariantOrder, err.Error())
		return nil, err
	}
	for _, message := range batch.Append {
		stored.messages = append(stored.messages, metronomestore.Message{Seq: message.Seq, Data: slices.Clone(message.Data)})
	}
	if batch.DropFront > 0 {
		undo.dropped = slices.Clone(stored.messages[:batch.DropFront])
		stored.messages = slices.Clone(stored.messages[batch.DropFront:])
	}
	if batch.Record != nil {
		stored.record = slices.Clone(batch.Record)
	}
	stored.last = undo
	if s.nonDurable {
		s.unsynced = append(s.unsynced, unsyncedCommit{session: id, undo: undo})
	}
	return undo, nil
}

// PutPointer stores a persisted-data pointer.
func (s *store) PutPointer(_ context.Context, key string, value []byte) error {
	s.pointers[key] = slices.Clone(value)
	return nil
}

// GetPointer reads a persisted-data pointer.
func (s *store) GetPointer(_ context.Context, key string) ([]byte, error) {
	value, ok := s.pointers[key]
	if !ok {
		return nil, metronomestore.ErrNotFound
	}
	return slices.Clone(value), nil
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
		if stored := s.sessions[entry.session]; stored != nil { // nil: quarantined since
			stored.revert(entry.undo)
		}
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
