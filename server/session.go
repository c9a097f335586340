package server

import (
	"context"
	"crypto/rand"
	"math/big"
	"runtime"
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

// idleTimerWait is how long the actor's timer sleeps when the session
// needs no wake.
const idleTimerWait = time.Hour

func newSessionActor(server *Server, id string) *sessionActor {
	return &sessionActor{
		id:     id,
		server: server,
		queue:  newEventQueue[actorEvent](sessionEventsMax, sessionBatchEventsMax, sessionEventsKeepMax),
		conns:  make(map[reflector.ConnID]*conn),
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
	timer := time.NewTimer(idleTimerWait)
	defer timer.Stop()
	shutdown := a.server.shutdownRequested
	held := false // the effects were held since the last flush
	for {
		select {
		case <-a.queue.ready:
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
		case <-timer.C:
			// The timer is the core's wake or the end of a hold.
			if a.host.NextWake() <= a.now() {
				a.host.Step(a.now(), reflector.Wake{})
			}
		case <-shutdown:
			shutdown = nil
			a.shutdown()
		}
		if hold := a.holdFor(a.host.Pending(), shutdown == nil); hold > 0 {
			timer.Reset(min(hold, a.untilWake()))
			held = true
			continue
		}
		a.lastFlushFrames = len(a.receivedAt)
		a.flush()
		a.lastFlush, a.lastFlushHeld, held = time.Now(), held, false
		if a.host.Ended() && a.unregister() {
			return
		}
		timer.Reset(a.untilWake())
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
	}
	return a.seenConnects == a.pendingConnects
}

func (a *sessionActor) load() {
	a.host = host.Open(context.Background(), a.id, a.now(), host.Options{
		Config:   a.server.config.Reflector,
		Timeline: newTimeline(),
		Store:    a.server.hostStore,
		Conns:    a,
		Observer: (*sessionObserver)(a.server),
	})
}

func (a *sessionActor) step(event actorEvent) {
	if !event.received.IsZero() {
		a.receivedAt = append(a.receivedAt, event.received)
	}
	if event.conn != nil {
		a.conns[event.conn.id] = event.conn
		a.seenConnects++
	}
	a.host.Step(a.now(), event.event)
	if disconnect, ok := event.event.(reflector.Disconnect); ok {
		delete(a.conns, disconnect.Conn)
	}
}

// flush executes the accumulated effects through the host (storage
// durable, then frames), then starts the pointer lookups the core asked
// for: they read the store, so they run beside the actor and come back
// as events.
func (a *sessionActor) flush() {
	a.host.Flush(context.Background())
	flushed := time.Now()
	for _, received := range a.receivedAt {
		a.server.metrics.reflect.observe(float64(flushed.Sub(received).Microseconds()) / 1000)
	}
	a.receivedAt = a.receivedAt[:0]
	for _, key := range a.host.TakeLookups() {
		go a.lookupPointer(a.host, key)
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
			c.enqueue(outbound.Frame, outbound.Parts, outbound.Tick)
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

func (o *sessionObserver) Opened(id string, record reflector.Record, messages int, resumed bool) {
	if resumed {
		o.logger.Info("session resumed from storage", "session", id, "timeline", record.Timeline,
			"time", record.Time, "seq", record.Seq, "messages", messages)
	}
}

func (o *sessionObserver) StorageFailed(id string, err error) {
	o.metrics.storeErrors.Add(1)
	o.logger.Error("session storage failed; closing the session so clients resync from storage",
		"session", id, "err", err)
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

// newTimeline returns a random base-36 incarnation id (docs/protocol.md §7.1).
func newTimeline() string {
	limit := new(big.Int).Exp(big.NewInt(36), big.NewInt(12), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return n.Text(36)
}
