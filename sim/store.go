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
// nothing of the batch and restart the session from what is stored; the
// storage-outage fault makes every commit, sync and load fail for a while
// (a disk that fills up and is freed again). The storage-damage fault
// finds a session damaged when it is loaded, by the store itself or by
// reflector.Restore (then the host asks the store to quarantine it). The
// retention fault deletes idle sessions (DeleteSession, driven by the
// host's retention code). Every time the store really loses a session's
// data it tells the checker, which then accepts that the session starts on
// a new timeline (and nothing else does). The "lost-durable-write" bug
// loses the whole last commit although it was acknowledged, which no
// correct disk does; the simulator must notice.
type store struct {
	w        *World
	sessions map[string]*storedSession
	pointers map[string][]byte
	// failChance is the chance that a commit or a load fails
	// (storage-failure fault).
	failChance float64
	// damageChance is the chance that a load finds the stored session
	// damaged (storage-damage fault): either the store sees it, quarantines
	// it (forgets it here) and the load fails with store.ErrCorrupt, or the
	// load returns a damaged record that only reflector.Restore sees, and
	// the host quarantines it (Quarantine).
	damageChance float64
	// outageUntil: until this simulated time every commit, sync round and
	// load fails (storage-outage fault).
	outageUntil int64
	// unreported holds the sessions whose damaged data the store has
	// quarantined and the host has not yet reported (Quarantined): the
	// host must report each before it opens the session again.
	unreported map[string]string
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
	// stored is the session the commit went to: a commit is undone only
	// if the session was not deleted since (a later session of the same
	// id is another one).
	stored *storedSession
	undo   *commitUndo
}

type storedSession struct {
	record   []byte
	messages []metronomestore.Message
	// last is how to undo the most recent commit (for crash faults).
	last *commitUndo
	// modifiedAt is the simulated time of the last commit (for the
	// retention's SessionModified).
	modifiedAt int64
}

type commitUndo struct {
	appended int
	dropped  []metronomestore.Message
	record   []byte // the record before the commit
	replaced bool   // the commit wrote a record
}

func newStore(w *World) *store {
	return &store{w: w, sessions: map[string]*storedSession{}, pointers: map[string][]byte{}, unreported: map[string]string{}}
}

// outage reports whether the disk fails everything now (storage-outage).
func (s *store) outage() bool { return s.w.now < s.outageUntil }

// fails draws whether the next operation hits an injected storage failure.
func (s *store) fails(what, id string) bool {
	if s.outage() {
		s.w.tracef("store: %s of session %s fails (storage outage)", what, id)
		return true
	}
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
		if s.w.rand.Chance(0.5) {
			// Damage only the reflector can see: a record cut short.
			s.w.tracef("store: session %s: its record is damaged (injected), the store does not notice", id)
			return metronomestore.Session{Record: slices.Clone(stored.record[:len(stored.record)/2]), Messages: slices.Clone(stored.messages)}, nil
		}
		s.w.tracef("store: session %s is damaged: quarantined (injected)", id)
		s.lose(id, "damaged, quarantined by the store")
		return metronomestore.Session{}, fmt.Errorf("sim store: session %s: %w", id, metronomestore.ErrCorrupt)
	}
	return metronomestore.Session{Record: stored.record, Messages: slices.Clone(stored.messages)}, nil
}

// Quarantine moves a session the reflector could not restore out of the
// way (host.Quarantiner): here it is forgotten.
func (s *store) Quarantine(_ context.Context, id, reason string) error {
	if s.sessions[id] == nil {
		return metronomestore.ErrNotFound
	}
	s.w.tracef("store: session %s quarantined: %s", id, reason)
	s.lose(id, "damaged, quarantined at the reflector's request")
	return fmt.Errorf("sim store: session %s: %s: %w", id, reason, metronomestore.ErrCorrupt)
}

// lose forgets a session's data for good: the checker then accepts a new
// timeline for it. A loss by damage must be reported by the host
// (Quarantined) before the session opens again.
func (s *store) lose(id, why string) {
	delete(s.sessions, id)
	s.w.checker.dataLost(id)
	if why != whyRetention {
		s.unreported[id] = why
	}
}

// whyRetention is the reason of a deletion by the retention sweep.
const whyRetention = "deleted after being idle for longer than the retention"

// Sessions lists the stored sessions (host.RetentionStore).
func (s *store) Sessions(context.Context) ([]string, error) {
	var ids []string
	for _, id := range sortedKeys(s.sessions) {
		if s.sessions[id].record != nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// modifiedAt returns the simulated time of a stored session's last
// commit.
func (s *store) modifiedAt(id string) (int64, bool) {
	stored := s.sessions[id]
	if stored == nil || stored.record == nil {
		return 0, false
	}
	return stored.modifiedAt, true
}

// DeleteSession deletes a session (host.RetentionStore). Deleting the
// storage of a session the reflector has in memory breaks the session:
// its clients go on with a history whose stored part is gone (a
// violation; host/retention.go must exclude it).
func (s *store) DeleteSession(_ context.Context, id string) error {
	r := s.w.reflector
	if r.up && r.sessions[id] != nil {
		s.w.violate(InvariantOrder, fmt.Sprintf("session %s: its storage was deleted (retention) while the reflector had it in memory", id))
	}
	if s.sessions[id] == nil {
		return nil
	}
	s.lose(id, whyRetention)
	return nil
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
	s.submitted = append(s.submitted, submittedCommit{unsyncedCommit: unsyncedCommit{session: id, stored: s.sessions[id], undo: undo}, durable: durable, fails: fails})
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
// first. In a storage outage the round fails.
func (s *store) syncRound() {
	round := s.submitted
	s.submitted = nil
	outage := s.outage()
	if outage && len(round) > 0 {
		s.w.tracef("store: a sync round of %d commits fails (storage outage)", len(round))
	}
	for _, commit := range round {
		if commit.fails || outage {
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
			s.submitted[i].revert(s)
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
	stored.modifiedAt = s.w.now
	if s.nonDurable {
		s.unsynced = append(s.unsynced, unsyncedCommit{session: id, stored: stored, undo: undo})
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
		s.unsynced[i].revert(s)
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

// revert undoes the commit, unless its session was deleted since.
func (entry unsyncedCommit) revert(s *store) {
	if stored := s.sessions[entry.session]; stored != nil && stored == entry.stored {
		stored.revert(entry.undo)
	}
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
