package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
)

// actorEvent is what connections hand to a session actor.
type actorEvent struct {
	event    reflector.Event
	conn     *conn     // set for Connect
	received time.Time // set for Receive: when the frame was read
}

func receiveEvent(id reflector.ConnID, frame protocol.ClientFrame, err error) actorEvent {
	return actorEvent{event: reflector.Receive{Conn: id, Frame: frame, Err: err}, received: time.Now()}
}

func disconnectEvent(id reflector.ConnID) actorEvent {
	return actorEvent{event: reflector.Disconnect{Conn: id}}
}

// sessionActor is the goroutine that owns one session. It steps every
// event into the session's host (package host: the one implementation of
// storage before frames, shared with the simulator), flushes once per batch
// of events (group commit), and executes the frames on its connections.
// What is left here is about goroutines and sockets: the inbound queue, the
// yield and hold policy, the connections of the session and the metrics.
type sessionActor struct {
	id     string
	server *Server
	queue  *eventQueue[actorEvent]

	// pendingConnects counts connections routed to this actor; guarded by
	// server.mu. seenConnects counts Connect events the actor processed.
	pendingConnects int
	seenConnects    int

	host  *host.Session
	conns map[reflector.ConnID]*conn
	// receivedAt holds the read times of the frames stepped since the last
	// flush, for the reflect-latency histogram.
	receivedAt []time.Time
	// touched holds the connections frames were queued to in this flush.
	touched []*conn
	// lastFlush is when the effects were last flushed, lastFlushFrames
	// how many client frames they answered, lastFlushHeld whether they
	// had been held (holdFor).
	lastFlush       time.Time
	lastFlushFrames int
	lastFlushHeld   bool

	// durable carries the store's reports that submitted batches are
	// durable (pipelined commits, host/pipeline.go) from the journal's
	// goroutine to the actor; unsent holds the read times of frames
	// whose flush waits for its batch, with the host's count of queued
	// flushes at the time, for the reflect-latency histogram.
	durable durableReports
	unsent  []unsentFrames

	// ownership is this node's ownership of the session in cluster mode
	// (cluster.go), nil otherwise or when it could not be acquired;
	// owned is a context that ends when the ownership is lost, for the
	// storage calls (storageContext).
	ownership Ownership
	owned     context.Context
	endOwned  context.CancelFunc

	// stats is what the admin listener shows of the session, published by
	// the actor (admin_stats.go); statsPublisher is the actor's side of it.
	stats          atomic.Pointer[sessionStats]
	statsPublisher statsPublisher
}

// unsentFrames are the read times of the client frames answered by the
// flush that was the host's queued-th.
type unsentFrames struct {
	queued   uint64
	received []time.Time
}

// durableReports passes a store's durability reports to an actor without
// ever blocking the store.
type durableReports struct {
	mu      sync.Mutex
	reports []error
	ready   chan struct{} // capacity 1: something was reported
}

func (d *durableReports) report(err error) {
	d.mu.Lock()
	d.reports = append(d.reports, err)
	d.mu.Unlock()
	select {
	case d.ready <- struct{}{}:
	default:
	}
}

// take returns the reports so far in order, leaving spare for the next.
func (d *durableReports) take(spare []error) []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	reports := d.reports
	d.reports = spare[:0]
	return reports
}

// sessionEventsMax bounds a session's inbound event queue; readers block
// (back-pressure on their sockets) while it is full.
const sessionEventsMax = 1024

// sessionEventsKeepMax is the largest event buffer an actor keeps after a
// burst (in events).
const sessionEventsKeepMax = 64

// coalesceYieldsMax bounds how often an actor yields before writing while
// inputs keep arriving (see run). Saturation at 100×10 (ramp ×1.1): 249k
// and 274k deliveries/s with 4, 206k and 226k with 1. BenchmarkEndToEnd
// (one session, its sender and readers in the same process) is 20 %
// slower with 4: there the one actor is the bottleneck, and each yield
// hands its time to the benchmark's own goroutines.
const coalesceYieldsMax = 4

// sessionBatchEventsMax bounds how many queued events are stepped before
// one commit and flush.
const sessionBatchEventsMax = 256

// sessionFlushesWaitingMax bounds the flushes of a session whose frames
// wait for their storage to become durable (pipelined commits): beyond it
// the actor stops taking events until the disk catches up, and its
// readers block (back-pressure), instead of stamping more messages than
// the disk can store.
const sessionFlushesWaitingMax = 64

// idleTimerWait is how long the actor's timer sleeps when the session
// needs no wake.
const idleTimerWait = time.Hour

func newSessionActor(server *Server, id string) *sessionActor {
	return &sessionActor{
		id:      id,
		server:  server,
		queue:   newEventQueue[actorEvent](sessionEventsMax, sessionBatchEventsMax, sessionEventsKeepMax),
		conns:   make(map[reflector.ConnID]*conn),
		durable: durableReports{ready: make(chan struct{}, 1)},
	}
}

// deliver hands an event to the actor; it is dropped if the actor is gone
// (which only happens after every connection it knew was closed).
func (a *sessionActor) deliver(event actorEvent) { a.queue.put(event) }

func (a *sessionActor) now() int64 {
	return time.Since(a.server.start).Milliseconds()
}

func (a *sessionActor) run() {
	defer a.queue.close()
	defer a.server.actors.Done()
	a.load()
	if a.ownership != nil {
		// After the last flush: what the session stored is complete.
		defer a.server.endOwnership(a.id, a.ownership)
		defer a.endOwned()
	}
	timer := time.NewTimer(idleTimerWait)
	defer timer.Stop()
	shutdown := a.server.shutdownRequested
	var lost <-chan struct{}
	if a.ownership != nil {
		lost = a.ownership.Lost()
	}
	held := false // the effects were held since the last flush
	var reports []error
	for {
		// While too many flushes wait for the disk, events stay queued.
		events := a.queue.ready
		if a.host.Pending().Waiting >= sessionFlushesWaitingMax {
			events = nil
		}
		select {
		case <-events:
			a.stepQueued()
			// Let the goroutines already runnable (readers, other
			// sessions) run before writing: under load, the inputs that
			// arrive meanwhile go out in the same writes (one write per
			// connection for several frames). With nothing else to run
			// this returns at once; while inputs keep arriving it yields
			// again, up to coalesceYieldsMax times.
			for yields := 0; yields < coalesceYieldsMax && a.host.Pending().Frames > 0; yields++ {
				runtime.Gosched()
				select {
				case <-a.queue.ready:
					a.stepQueued()
				default:
					yields = coalesceYieldsMax // nothing arrived: write now
				}
			}
		case <-a.durable.ready:
			reports = a.durable.take(reports)
			for _, err := range reports {
				a.host.Durable(err)
			}
			a.observeSent()
		case <-timer.C:
			// The timer is the core's wake or the end of a hold.
			if a.host.NextWake() <= a.now() {
				a.host.Step(a.now(), reflector.Wake{})
			}
		case <-shutdown:
			shutdown = nil
			a.shutdown()
		case <-lost:
			// Another node may stamp the session now: stop at once.
			lost = nil
			a.server.metrics.ownershipLost.Add(1)
			a.host.Relinquish(a.ownership.Err())
		}
		if hold := a.holdFor(a.host.Pending(), shutdown == nil); hold > 0 {
			timer.Reset(min(hold, a.untilWake()))
			held = true
			continue
		}
		a.lastFlushFrames = len(a.receivedAt)
		a.flush()
		a.lastFlush, a.lastFlushHeld, held = time.Now(), held, false
		if a.host.Ended() && a.host.Pending().Waiting == 0 && a.unregister() {
			return
		}
		a.updateStats(a.lastFlush)
		timer.Reset(min(a.untilWake(), a.statsPublisher.untilStatsDue(a.lastFlush)))
	}
}

// shutdown ends the session for a server shutdown: the events already
// queued (frames the readers have read) are stepped first, so their
// messages are stamped, stored and sent before the 4003 that the
// Shutdown event sends; then the core persists its exact state. Readers
// may go on queueing while the queue drains: at most sessionEventsMax
// more events are taken, so a flood cannot hold the shutdown.
func (a *sessionActor) shutdown() {
	for stepped, drained := 0, false; !drained && stepped < sessionEventsMax; {
		select {
		case <-a.queue.ready:
			stepped += a.stepQueued()
		default:
			drained = true
		}
	}
	a.host.Step(a.now(), reflector.Shutdown{})
}

// holdFor returns how long to hold the effects before flushing, so that
// the frames of the next events go out in the same writes (overload.go);
// 0: flush now. Frames are held until the delay has passed since the
// previous write, except after a quiet spell (the delay has passed
// already) and after a write that answered several client frames without
// being held: that session's inputs arrive together, they coalesce by
// themselves, and holding the rest of a burst would only delay it. Only
// frames are held: effects that close connections, look up pointers or
// end the session, and a shutdown, flush at once.
func (a *sessionActor) holdFor(pending host.Pending, shuttingDown bool) time.Duration {
	delay := a.server.overload.coalesceDelay()
	if delay == 0 || shuttingDown || pending.Urgent || pending.Frames == 0 {
		return 0
	}
	if a.lastFlushFrames > 1 && !a.lastFlushHeld {
		return 0
	}
	return max(delay-time.Since(a.lastFlush), 0)
}

// stepQueued steps a batch of queued events and returns how many.
func (a *sessionActor) stepQueued() int {
	events := a.queue.take()
	for _, event := range events {
		a.step(event)
		a.queue.release()
	}
	return len(events)
}

func (a *sessionActor) untilWake() time.Duration {
	wake := a.host.NextWake()
	if wake == reflector.Never {
		return idleTimerWait
	}
	return max(time.Duration(wake-a.now())*time.Millisecond, 0)
}

// unregister removes an ended actor from the server. It reports whether the
// actor may exit: not while connections routed to it are still to arrive.
func (a *sessionActor) unregister() bool {
	a.server.mu.Lock()
	defer a.server.mu.Unlock()
	if a.server.sessions[a.id] == a {
		delete(a.server.sessions, a.id)
		a.server.metrics.sessions.Add(-1)
		// With the actor: a later upgrade must claim anew, not find the
		// ownership this actor releases as it exits.
		if a.ownership != nil && a.server.ownerships[a.id] == a.ownership {
			delete(a.server.ownerships, a.id)
		}
	}
	return a.seenConnects == a.pendingConnects
}

func (a *sessionActor) load() {
	hostStore := a.server.hostStore
	if cluster := a.server.config.Cluster; cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), acquireTimeout)
		ownership, err := a.server.takeOwnership(ctx, a.id) // cluster.go
		cancel()
		if err == nil {
			select {
			case <-ownership.Lost():
				// Claimed, but lost already (the claim's answer came after
				// the lease could have ended): do not load the session.
				err = ownership.Err()
				a.server.endOwnership(a.id, ownership)
				ownership = nil
			default:
			}
		}
		if err != nil {
			// The host opens failed: every client is asked to reconnect,
			// and is forwarded to the owner next time.
			a.server.metrics.acquireFailed.Add(1)
			hostStore = unavailableStore{Store: hostStore, err: fmt.Errorf("%w: %w", store.ErrFenced, err)}
		}
		a.ownership = ownership
		if ownership != nil {
			owned, cancel := context.WithCancel(context.Background())
			a.owned, a.endOwned = owned, cancel
			go func() {
				select {
				case <-ownership.Lost():
					cancel()
				case <-owned.Done(): // the actor ended
				}
			}()
		}
	}
	a.host = host.Open(a.storageContext(), a.id, a.now(), host.Options{
		Config:   a.server.config.Reflector,
		Timeline: newTimeline(),
		Store:    hostStore,
		Notify:   a.durable.report,
		// In cluster mode a restored session's first append proves that
		// no deposed owner appended since this node loaded it.
		FenceOnOpen: a.server.config.Cluster != nil,
		Conns:       a,
		Observer:    actorObserver{sessionObserver: (*sessionObserver)(a.server), actor: a},
	})
	a.statsPublisher.urgent = true
	a.publishStats(time.Now(), a.now())
}

// storageContext is the context of the host's storage calls: in cluster
// mode it ends when the ownership is lost, so that an append retried while
// JetStream does not answer (store/jsstore) gives up once another node may
// own the session.
func (a *sessionActor) storageContext() context.Context {
	if a.owned != nil {
		return a.owned
	}
	return context.Background()
}

func (a *sessionActor) step(event actorEvent) {
	if !event.received.IsZero() {
		a.receivedAt = append(a.receivedAt, event.received)
	}
	if event.conn != nil {
		a.conns[event.conn.id] = event.conn
		a.seenConnects++
		a.statsPublisher.urgent = true
	}
	a.host.Step(a.now(), event.event)
	if disconnect, ok := event.event.(reflector.Disconnect); ok {
		if c := a.conns[disconnect.Conn]; c != nil {
			a.statsPublisher.noteClose(c, time.Now())
		}
		delete(a.conns, disconnect.Conn)
	}
}

// flush executes the accumulated effects through the host (storage
// durable, then frames), then starts the pointer lookups the core asked
// for: they read the store, so they run beside the actor and come back
// as events.
func (a *sessionActor) flush() {
	a.host.Flush(a.storageContext())
	if len(a.receivedAt) > 0 {
		_, queued := a.host.Released()
		a.unsent = append(a.unsent, unsentFrames{queued: queued, received: a.receivedAt})
		a.receivedAt = nil
	}
	a.observeSent()
	for _, key := range a.host.TakeLookups() {
		go a.lookupPointer(a.host, key)
	}
}

// observeSent records the reflect latency of the frames whose flush has
// been executed (at once, or after its batch became durable).
func (a *sessionActor) observeSent() {
	released, _ := a.host.Released()
	sent := 0
	now := time.Now()
	for sent < len(a.unsent) && a.unsent[sent].queued <= released {
		for _, received := range a.unsent[sent].received {
			a.server.metrics.reflect.observe(float64(now.Sub(received).Microseconds()) / 1000)
		}
		if a.receivedAt == nil {
			a.receivedAt = a.unsent[sent].received[:0] // reuse the slice
		}
		sent++
	}
	if sent > 0 {
		a.unsent = append(a.unsent[:0], a.unsent[sent:]...)
	}
}

func (a *sessionActor) lookupPointer(h *host.Session, key string) {
	loaded, err := h.LookupPointer(context.Background(), key)
	if err != nil {
		a.server.logger.Warn("persisted pointer lookup failed", "session", a.id, "key", key, "err", err)
	}
	a.deliver(actorEvent{event: loaded})
}

// Send, Close, CloseAll and Flush make the actor the host's transport
// (host.Conns): frames are queued per connection during a flush and each
// connection is written once at its end.

func (a *sessionActor) Send(outbound *reflector.Outbound) {
	for _, id := range outbound.To {
		if c := a.conns[id]; c != nil {
			c.enqueue(outbound.Frame, outbound.Parts, outbound.Tick, outbound.Droppable)
			if !c.flushPending {
				c.flushPending = true
				a.touched = append(a.touched, c)
			}
		}
	}
}

func (a *sessionActor) Close(id reflector.ConnID, code int, reason string) {
	if c := a.conns[id]; c != nil {
		a.server.metrics.countClose(code)
		c.close(code, reason)
	}
}

func (a *sessionActor) CloseAll(code int, reason string) {
	for id := range a.conns {
		a.Close(id, code, reason)
	}
}

func (a *sessionActor) Flush() {
	for i, c := range a.touched {
		c.flushPending = false
		c.flush()
		a.touched[i] = nil
	}
	a.touched = a.touched[:0]
}

// sessionObserver logs and counts what the session hosts report.
type sessionObserver Server

// actorObserver is the Observer of one session's host: the server's, and
// what the session's statistics count (admin_stats.go).
type actorObserver struct {
	*sessionObserver
	actor *sessionActor
}

func (o actorObserver) Flushed(id string, out *reflector.Effects) {
	o.sessionObserver.Flushed(id, out)
	if len(out.Notes) > 0 {
		o.actor.statsPublisher.noteEffects(out.Notes, time.Now())
	}
}

func (o *sessionObserver) Opened(id string, record reflector.Record, messages int, resumed bool) {
	if resumed {
		o.logger.Info("session resumed from storage", "session", id, "timeline", record.Timeline,
			"time", record.Time, "seq", record.Seq, "messages", messages)
	}
}

func (o *sessionObserver) Quarantined(id string, err error) {
	o.metrics.sessionsQuarantined.Add(1)
	o.snapshots.forget(id)
	o.logger.Error("session storage is damaged: the files were quarantined and the session starts on a new timeline; its clients rejoin from scratch",
		"session", id, "err", err)
}
func (o *sessionObserver) StorageFailed(id string, err error) {
	if errors.Is(err, store.ErrFenced) || (o.config.Cluster != nil && errors.Is(err, context.Canceled)) {
		// Cluster mode: another node owns the session (cluster.go), or
		// this node stopped counting on its ownership during a commit.
		o.snapshots.storageFailed(id)
		o.logger.Info("session is owned by another node; its clients are asked to reconnect", "session", id, "err", err)
		return
	}
	o.metrics.storeErrors.Add(1)
	o.snapshots.storageFailed(id)
	o.logger.Error("session storage failed; closing the session so clients resync from storage",
		"session", id, "err", err)
}

// SnapshotStored: the session's durable record references this snapshot
// (host.SnapshotObserver); the collector deletes what it replaced.
func (o *sessionObserver) SnapshotStored(id string, snapshotTime int64, url string) {
	o.snapshots.snapshotStored(id, snapshotTime, url) // snapshotgc.go
}

func (o *sessionObserver) PointerFailed(id, key string, err error) {
	o.logger.Warn("storing persisted pointer failed", "session", id, "key", key, "err", err)
}

func (o *sessionObserver) Flushed(id string, out *reflector.Effects) {
	for _, note := range out.Notes {
		o.logNote(id, note)
	}
	o.metrics.messagesStamped.Add(uint64(out.MessagesStamped))
	o.metrics.ticksSent.Add(uint64(out.TicksSent))
	for _, latency := range out.LatencySamplesMs {
		o.metrics.latency.observe(latency)
	}
}

func (o *sessionObserver) logNote(id string, note reflector.Note) {
	logger := o.logger
	switch note.Kind {
	case reflector.NoteClientLog:
		logger.Info("client log", "session", id, "conn", note.Conn, "text", note.Text)
	case reflector.NoteRejected:
		logger.Info("frame rejected", "session", id, "conn", note.Conn, "why", note.Text)
	case reflector.NoteBufferFull:
		logger.Warn("message rejected", "session", id, "conn", note.Conn, "why", note.Text)
	default:
		logger.Info(note.Text, "session", id, "conn", note.Conn)
	}
}

// timedStore is the store as the session hosts see it: commits are timed
// for the commit-latency histogram.
type timedStore struct {
	store.Store
	commit *histogram
}

func (t timedStore) Commit(ctx context.Context, sessionID string, batch store.Batch) error {
	started := time.Now()
	err := t.Store.Commit(ctx, sessionID, batch)
	t.commit.observe(float64(time.Since(started).Microseconds()) / 1000)
	return err
}

// Quarantine forwards to the store when it can quarantine damaged sessions
// (host.Quarantiner); otherwise the session fails as before.
func (t timedStore) Quarantine(ctx context.Context, sessionID, reason string) error {
	if quarantiner, ok := t.Store.(host.Quarantiner); ok {
		return quarantiner.Quarantine(ctx, sessionID, reason)
	}
	return errors.New("this store cannot quarantine damaged sessions")
}

// timedPipelinedStore is a timedStore of a store whose commits are
// pipelined: a commit is timed from its Submit to its durability report.
type timedPipelinedStore struct {
	timedStore
	pipelined host.PipelinedStore
}

func (t timedPipelinedStore) Submit(ctx context.Context, sessionID string, batch store.Batch, durable func(error)) (bool, error) {
	started := time.Now()
	done, err := t.pipelined.Submit(ctx, sessionID, batch, func(err error) {
		t.commit.observe(float64(time.Since(started).Microseconds()) / 1000)
		durable(err)
	})
	if done {
		t.commit.observe(float64(time.Since(started).Microseconds()) / 1000)
	}
	return done, err
}

// newHostStore wraps the server's store for the session hosts.
func newHostStore(s store.Store, commit *histogram) host.Store {
	timed := timedStore{Store: s, commit: commit}
	if pipelined, ok := s.(host.PipelinedStore); ok {
		return timedPipelinedStore{timedStore: timed, pipelined: pipelined}
	}
	return timed
}

// newTimeline returns a random base-36 incarnation id (docs/protocol.md §7.1).
// acquireTimeout bounds the claim of a session's ownership in cluster
// mode.
const acquireTimeout = 5 * time.Second

// unavailableStore fails every load: the host of a session this node
// could not acquire (cluster mode) starts failed, and its Connects are
// answered with a reconnect.
type unavailableStore struct {
	host.Store
	err error
}

func (u unavailableStore) LoadSession(context.Context, string) (store.Session, error) {
	return store.Session{}, u.err
}

func newTimeline() string {
	limit := new(big.Int).Exp(big.NewInt(36), big.NewInt(12), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return n.Text(36)
}
