// Package host drives one reflector session: it is the one implementation
// of executing the effects of the pure core (package reflector), shared by
// every shell — the server (sockets and goroutines), the simulator (a
// virtual clock, a faulty network and disk) and, next, the cluster node.
//
// A shell owns a Session per session id and does four things with it:
//
//	h := host.Open(ctx, id, now, options) // restore from the store, or start fresh
//	h.Step(now, event)                    // any number of events: effects accumulate
//	h.Flush(ctx)                          // storage durable, then frames, then notes
//	h.NextWake()                          // step a reflector.Wake at that time
//
// and it answers the work the host does not do inside its loop: every key
// of TakeLookups is read with LookupPointer (in the background: it may
// block) and stepped back as the event that returns.
//
// Flush is where the guarantees live: nothing is handed to a connection
// before the Store's Commit of the same batch has returned; a failed commit
// sends nothing of the batch, asks every client to reconnect and ends the
// session, so that the next Open resumes from what is really stored.
//
// With a PipelinedStore (and Options.Notify set) a Flush does not wait for
// the disk: it submits the batch and keeps its effects until the store
// reports the batch durable, which the shell passes on to Durable. The
// session meanwhile steps and flushes further events, whose batches are
// written while the first one syncs (a pipelined group commit); their
// frames wait behind the earlier ones, so every connection still sees
// the frames in the order the core made them, each only after everything
// it depends on is durable (pipeline.go).
//
// Beside the sessions, the host holds the rule for deleting the stored
// sessions nobody used for a long time while clients may be rejoining
// them (retention.go: Deletions, BeginDeletion, SweepIdle), which the
// server's retention sweep and the simulator both run. An Observer that is
// also a SnapshotObserver learns the snapshot each session's durable record
// references (snapshots.go), from which the shells delete the snapshots it
// replaced (store/snapshotgc).
//
// Like the core, the host reads no clock, starts no goroutine, opens no
// socket and logs nothing: time comes in as arguments, I/O goes through the
// Store and Conns interfaces, and what is worth logging or counting goes to
// an Observer. A Session is not safe for concurrent use.
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
)

// Store is what a session host needs of the persistence layer (a subset of
// store.Store; every store.Store is one).
type Store interface {
	LoadSession(ctx context.Context, sessionID string) (store.Session, error)
	Commit(ctx context.Context, sessionID string, batch store.Batch) error
	PutPointer(ctx context.Context, key string, value []byte) error
	GetPointer(ctx context.Context, key string) ([]byte, error)
}

// Quarantiner is implemented by stores that can move a session's damaged
// data out of the way (store/diskstore): Open uses it when the stored data
// cannot be restored, and then starts the session on a new timeline.
type Quarantiner interface {
	// Quarantine returns an error matching store.ErrCorrupt that says
	// where the data went, or another error if it could not move it.
	Quarantine(ctx context.Context, sessionID, reason string) error
}

// Conns is the shell's transport: the connections of one session. The
// host calls it only from Flush, after the batch's storage is durable.
type Conns interface {
	// Send queues a frame (o.Frame followed by o.Parts) to every
	// connection of o.To the shell still has. A frame with o.Tick set is
	// an idle heartbeat: the shell skips recipients that still have unsent
	// frames. A frame with o.Droppable set (an ephemeral relay,
	// docs/protocol.md §22) may be skipped for a recipient whose socket is
	// behind. The frame is shared and immutable.
	Send(o *reflector.Outbound)
	// Close closes a connection with a close code and reason, after the
	// frames queued to it before.
	Close(conn reflector.ConnID, code int, reason string)
	// CloseAll closes every connection of the session (storage failed).
	CloseAll(code int, reason string)
	// Flush ends a batch: write what Send and Close queued (one write per
	// connection for all of its frames).
	Flush()
}

// Observer learns what happened, for logs and metrics. Its methods are
// called synchronously from Open and Flush and must not call back.
type Observer interface {
	// Opened reports the session loaded: resumed from storage (messages
	// is the number of stored messages) or fresh.
	Opened(sessionID string, record reflector.Record, messages int, resumed bool)
	// StorageFailed reports that the session's storage could not be read
	// (at Open) or written (at Flush): the session ends and every client
	// is asked to reconnect.
	StorageFailed(sessionID string, err error)
	// Quarantined reports that the session's stored data was damaged
	// beyond repair (store.ErrCorrupt; err names the damage and where the
	// files went): the session starts again, fresh, on a new timeline, so
	// that no sequence number of the old one is ever reused.
	Quarantined(sessionID string, err error)
	// PointerFailed reports a persisted-data pointer that could not be
	// stored or read; the session goes on (a pointer only matters to a
	// future fresh session of the same application).
	PointerFailed(sessionID, key string, err error)
	// Flushed reports the effects of a batch after they were executed:
	// notes and counters. out is valid only during the call.
	Flushed(sessionID string, out *reflector.Effects)
}

// Options configure a Session.
type Options struct {
	// Config holds the session's limits.
	Config reflector.Config
	// Timeline is the incarnation id used if nothing is stored for the
	// session (random: chosen by the shell, so the host stays
	// deterministic).
	Timeline string
	Store    Store
	Conns    Conns
	Observer Observer
	// Notify, when set and Store is a PipelinedStore, is what the store
	// calls (from any goroutine, without blocking) when a submitted batch
	// is durable (nil) or failed: the shell must call Session.Durable
	// with each value, in the order received, on the session's goroutine.
	// When nil, every Flush waits for Store.Commit.
	Notify func(err error)
	// FenceOnOpen (cluster mode, docs/cluster.md) makes Open of a stored
	// session commit its restored record at once, before any event: with a
	// store that fences appends (store/jsstore), a deposed owner that still
	// appends after this node loaded the session is then refused, instead
	// of refusing this node's first append after it already served
	// clients. If the commit fails, the session is failed.
	FenceOnOpen bool

	// bugs are switched on only by the simulator's self-test (bugs.go).
	bugs bugSwitches
}

// Session is one session, driven: the core, its accumulated effects and
// the storage failure state.
type Session struct {
	id      string
	options Options
	// core is nil when the session's storage failed.
	core   *reflector.Session
	failed error
	// out accumulates the effects of the events stepped since the last
	// Flush.
	out *reflector.Effects
	// pipeline is the store when commits are pipelined (pipeline.go),
	// else nil; waiting holds the flushed effects not yet executed, oldest
	// first, and spare the emptied Effects kept for reuse.
	pipeline PipelinedStore
	waiting  []waitingFlush
	spare    []*reflector.Effects
	// queued and released count the flushes that were queued in waiting
	// and those whose effects were executed (see Released).
	queued, released uint64
	// batch is reused to commit the core's Storage effect.
	batch store.Batch
	// lookups are pointer keys waiting for the shell (TakeLookups).
	lookups []string
	// stepped counts events stepped since the last Flush.
	stepped int
	ended   bool
}

// Open loads a session from the store, or starts it fresh (on
// Options.Timeline) if nothing is stored or what was stored is damaged
// (store.ErrCorrupt: reported to Observer.Quarantined). If the store cannot
// be read, the session is failed: every
// connection that arrives is asked to reconnect (4003) and the session
// ends at its first Flush.
func Open(ctx context.Context, sessionID string, now int64, options Options) *Session {
	s := &Session{id: sessionID, options: options, out: new(reflector.Effects)}
	if pipelined, ok := options.Store.(PipelinedStore); ok && options.Notify != nil {
		s.pipeline = pipelined
	}
	stored, err := options.Store.LoadSession(ctx, sessionID)
	if errors.Is(err, store.ErrCorrupt) || (options.bugs.loadErrorAsDamage && err != nil && !errors.Is(err, store.ErrNotFound)) {
		options.Observer.Quarantined(sessionID, err)
		err = store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.core = reflector.New(options.Config, sessionID, options.Timeline, now)
		options.Observer.Opened(sessionID, s.core.Record(), 0, false)
		return s
	case err != nil:
		s.failed = err
	default:
		messages := make([]reflector.StoredMessage, len(stored.Messages))
		for i, message := range stored.Messages {
			messages[i] = reflector.StoredMessage{Seq: message.Seq, Data: message.Data}
		}
		s.core, s.failed = reflector.Restore(options.Config, sessionID, now, stored.Record, messages)
		if s.failed == nil && options.FenceOnOpen {
			if err := s.fence(ctx); err != nil {
				// Not damage: another node appended, or the store failed.
				s.core, s.failed = nil, err
				options.Observer.StorageFailed(sessionID, err)
				return s
			}
		}
		if s.failed == nil {
			options.Observer.Opened(sessionID, s.core.Record(), len(messages), true)
			s.reportRestoredSnapshot() // snapshots.go
			return s
		}
		// What is stored cannot be restored (a damaged record, a gap in
		// the messages): damage the store did not see.
		if quarantiner, ok := options.Store.(Quarantiner); ok {
			err := quarantiner.Quarantine(ctx, sessionID, "the reflector cannot restore it: "+s.failed.Error())
			if errors.Is(err, store.ErrCorrupt) {
				options.Observer.Quarantined(sessionID, err)
				s.failed = nil
				s.core = reflector.New(options.Config, sessionID, options.Timeline, now)
				options.Observer.Opened(sessionID, s.core.Record(), 0, false)
				return s
			}
		}
	}
	s.core = nil
	options.Observer.StorageFailed(sessionID, s.failed)
	return s
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// Core returns the session's state machine for inspection (nil when its
// storage failed). Never step it directly.
func (s *Session) Core() *reflector.Session { return s.core }

// Failed returns the storage error that stopped the session, or nil.
func (s *Session) Failed() error { return s.failed }

// Ended reports whether the session is over: the shell forgets it (a later
// connection opens it again from the store).
func (s *Session) Ended() bool { return s.ended }

// Step applies one event at monotonic time now (ms); its effects
// accumulate until Flush. A failed session answers a Connect with 4003.
func (s *Session) Step(now int64, event reflector.Event) {
	s.stepped++
	if s.core == nil {
		if connect, ok := event.(reflector.Connect); ok {
			reason := "session storage failure, please reconnect"
			if errors.Is(s.failed, store.ErrFenced) {
				reason = "session is served by another node, please reconnect"
			}
			s.out.Outbound = append(s.out.Outbound, reflector.Outbound{To: []reflector.ConnID{connect.Conn},
				CloseCode: protocol.CloseReconnect, CloseReason: reason})
		}
		s.ended = true
		return
	}
	s.core.Step(now, event, s.out)
}

// Pending describes the effects accumulated since the last Flush, for a
// shell's policy of when to flush.
type Pending struct {
	// Events is the number of events stepped.
	Events int
	// Frames is the number of frames to send (closes not counted).
	Frames int
	// Urgent: the effects close connections, look up a pointer or end the
	// session; holding them gains nothing.
	Urgent bool
	// Waiting is the number of earlier flushes whose effects wait for
	// their storage to become durable (pipelined commits only).
	Waiting int
}

// Pending returns what a Flush would execute.
func (s *Session) Pending() Pending {
	p := Pending{Events: s.stepped, Urgent: s.ended || s.out.Ended || len(s.out.LookupPointers) > 0, Waiting: len(s.waiting)}
	for i := range s.out.Outbound {
		if s.out.Outbound[i].CloseCode != 0 {
			p.Urgent = true
		} else {
			p.Frames++
		}
	}
	return p
}

// NextWake returns the monotonic time at which the shell must step a
// reflector.Wake, or reflector.Never.
func (s *Session) NextWake() int64 {
	if s.core == nil || s.ended {
		return reflector.Never
	}
	return s.core.NextWake()
}

// Flush executes the accumulated effects in this order: (1) storage, made
// durable by the Store's Commit, then persisted pointers; (2) frames and
// closes, handed to Conns, then Conns.Flush; (3) pointer lookups queued for
// TakeLookups; (4) notes and counters to the Observer. If the commit fails,
// nothing of the batch is sent: every connection is closed with 4003 and
// the session ends. With a pipelined store, (1) is only started, and the
// rest waits for Durable (pipeline.go).
func (s *Session) Flush(ctx context.Context) {
	s.stepped = 0
	if s.pipeline != nil {
		s.flushPipelined(ctx)
		return
	}
	out := s.out
	if s.options.bugs.sendBeforeCommit {
		s.send(out)
	}
	if err := s.commit(ctx, out); err != nil {
		s.fail(err)
		return
	}
	s.storePointers(ctx, out)
	if !s.options.bugs.sendBeforeCommit {
		s.send(out)
	}
	s.finish(out)
}

// finish ends the execution of a batch's effects: lookups for the shell,
// notes for the observer, the end of the session; then empties out.
func (s *Session) finish(out *reflector.Effects) {
	s.lookups = append(s.lookups, out.LookupPointers...)
	s.reportStoredSnapshot(out) // snapshots.go
	s.options.Observer.Flushed(s.id, out)
	if out.Ended {
		s.ended = true
	}
	out.Reset()
}

// send hands the frames and closes to the connections, in order.
func (s *Session) send(out *reflector.Effects) {
	conns := s.options.Conns
	for i := range out.Outbound {
		outbound := &out.Outbound[i]
		if outbound.CloseCode != 0 {
			conns.Close(outbound.To[0], outbound.CloseCode, outbound.CloseReason)
		} else {
			conns.Send(outbound)
		}
	}
	conns.Flush()
}

// commit makes the batch's messages and record durable with one Commit.
func (s *Session) commit(ctx context.Context, out *reflector.Effects) error {
	if !storesMessages(out) {
		return nil
	}
	err := s.options.Store.Commit(ctx, s.id, *s.fillBatch(out))
	s.emptyBatch()
	return err
}

// storesMessages reports whether the effects change the session's
// messages or record.
func storesMessages(out *reflector.Effects) bool {
	storage := &out.Storage
	return len(storage.Append) > 0 || storage.DropFront > 0 || storage.Record != nil
}

// fillBatch converts the effects' storage into the reused store batch.
func (s *Session) fillBatch(out *reflector.Effects) *store.Batch {
	storage := &out.Storage
	batch := &s.batch
	batch.Append = batch.Append[:0]
	for _, message := range storage.Append {
		batch.Append = append(batch.Append, store.Message{Seq: message.Seq, Data: message.Data})
	}
	batch.DropFront = storage.DropFront
	batch.Record = storage.Record
	return batch
}

// emptyBatch drops the batch's references once the store has it.
func (s *Session) emptyBatch() {
	clear(s.batch.Append)
	s.batch.Record = nil
}

// storePointers stores the persisted pointers of a batch whose commit is
// durable (a pointer that cannot be stored is reported and skipped: it
// only matters to a future fresh session).
func (s *Session) storePointers(ctx context.Context, out *reflector.Effects) {
	for _, pointer := range out.Storage.Pointers {
		if err := s.options.Store.PutPointer(ctx, pointer.Key, pointer.Value); err != nil {
			s.options.Observer.PointerFailed(s.id, pointer.Key, err)
		}
	}
}

// fence commits the restored record unchanged (FenceOnOpen).
func (s *Session) fence(ctx context.Context) error {
	record := s.core.Record()
	encoded, err := json.Marshal(&record)
	if err != nil {
		return err
	}
	return s.options.Store.Commit(ctx, s.id, store.Batch{Record: encoded})
}

// Relinquish ends the session at once because this node may no longer
// stamp it (cluster mode: its ownership lease was lost; err says why).
// Like a failed commit: nothing accumulated or waiting for storage is
// stored or sent, every client is asked to reconnect (the session's new
// owner serves it), and the session ends. The observer hears it as a
// storage failure wrapping store.ErrFenced.
func (s *Session) Relinquish(err error) {
	if s.ended {
		return
	}
	if !errors.Is(err, store.ErrFenced) {
		err = fmt.Errorf("%w: %w", store.ErrFenced, err)
	}
	s.fail(err)
}

// fail handles a storage write failure: nothing of the batch is sent, every
// client is asked to reconnect, and the session ends; the next Open
// restarts it from what is stored. A fenced commit (store.ErrFenced:
// another node owns the session now) ends it the same way, with a reason
// that says so.
func (s *Session) fail(err error) {
	s.options.Observer.StorageFailed(s.id, err)
	reason := "storage failure, please reconnect"
	if errors.Is(err, store.ErrFenced) {
		reason = "session moved to another node, please reconnect"
	}
	s.options.Conns.CloseAll(protocol.CloseReconnect, reason)
	s.options.Conns.Flush()
	s.out.Reset()
	s.dropWaiting()
	s.lookups = s.lookups[:0]
	s.core = nil
	s.failed = err
	s.ended = true
}

// TakeLookups returns the persisted-pointer keys the shell must look up
// (LookupPointer) and step back as events, and forgets them. The slice is
// valid until the next Flush.
func (s *Session) TakeLookups() []string {
	keys := s.lookups
	s.lookups = s.lookups[:0]
	return keys
}

// LookupPointer reads the persisted-data pointer stored under key and
// returns the event that answers the core's lookup. It may block (it reads
// the store): servers call it outside the session's loop and deliver the
// event like any other. It reads only what Open set, so it may run on any
// goroutine. A pointer that is missing or unreadable is answered with an
// empty URL (the session starts without persisted data); err reports an
// unreadable one.
func (s *Session) LookupPointer(ctx context.Context, key string) (reflector.PointerLoaded, error) {
	value, err := s.options.Store.GetPointer(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return reflector.PointerLoaded{}, nil
	case err != nil:
		return reflector.PointerLoaded{}, err
	}
	if s.options.bugs.rawPointer {
		return reflector.PointerLoaded{URL: string(value)}, nil
	}
	url, err := PointerURL(value)
	return reflector.PointerLoaded{URL: url}, err
}

// PointerURL decodes a stored persisted-data pointer: the JSON object
// {"url": ...} that the core writes for a SAVE. This is the only place
// that knows the encoding besides the core that writes it.
func PointerURL(value []byte) (string, error) {
	var pointer struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(value, &pointer); err != nil {
		return "", errors.New("host: stored pointer is not {\"url\": ...}: " + err.Error())
	}
	return pointer.URL, nil
}
