package server

import (
	"context"
	"crypto/rand"
	"errors"
	"math/big"
	"runtime"
	"sync"
	"time"

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

// sessionActor is the goroutine that owns one session's state machine. It
// steps every event, makes the resulting storage durable with one commit per
// batch of events (group commit), and only then queues frames to the
// connections.
type sessionActor struct {
	id     string
	server *Server
	done   chan struct{}

	// The inbound event queue: slots bounds it (a reader takes a slot
	// before queueing, the actor gives it back after stepping the event);
	// ready signals a non-empty queue. The queue's memory follows its use,
	// so an idle session holds no event buffer.
	slots       chan struct{}
	ready       chan struct{}
	eventsMu    sync.Mutex
	events      []actorEvent
	eventsSpare []actorEvent

	// pendingConnects counts connections routed to this actor; guarded by
	// server.mu. seenConnects counts Connect events the actor processed.
	pendingConnects int
	seenConnects    int

	core   *reflector.Session
	failed error // storage could not be read or written
	conns  map[reflector.ConnID]*conn
	out    reflector.Effects
	ended  bool
	batch  store.Batch
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

func newSessionActor(server *Server, id string) *sessionActor {
	return &sessionActor{
		id:     id,
		server: server,
		slots:  make(chan struct{}, sessionEventsMax),
		ready:  make(chan struct{}, 1),
		done:   make(chan struct{}),
		conns:  make(map[reflector.ConnID]*conn),
	}
}

// deliver hands an event to the actor; it is dropped if the actor is gone
// (which only happens after every connection it knew was closed).
func (a *sessionActor) deliver(event actorEvent) {
	select {
	case a.slots <- struct{}{}:
	case <-a.done:
		return
	}
	a.eventsMu.Lock()
	a.events = append(a.events, event)
	a.eventsMu.Unlock()
	select {
	case a.ready <- struct{}{}:
	default:
	}
}

// takeEvents returns up to sessionBatchEventsMax queued events (valid until
// the next call) and signals ready again if more are queued.
func (a *sessionActor) takeEvents() []actorEvent {
	a.eventsMu.Lock()
	defer a.eventsMu.Unlock()
	clear(a.eventsSpare)
	if cap(a.eventsSpare) > sessionEventsKeepMax {
		a.eventsSpare = nil
	}
	batch := a.events
	if len(batch) > sessionBatchEventsMax {
		a.events = append(a.eventsSpare[:0], batch[sessionBatchEventsMax:]...)
		batch = batch[:sessionBatchEventsMax]
		select {
		case a.ready <- struct{}{}:
		default:
		}
	} else {
		a.events = a.eventsSpare[:0]
	}
	a.eventsSpare = batch
	return batch
}

func (a *sessionActor) now() int64 {
	return time.Since(a.server.start).Milliseconds()
}

func (a *sessionActor) run() {
	defer close(a.done)
	defer a.server.actors.Done()
	a.load()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	shutdown := a.server.shutdownRequested
	held := false // the effects were held since the last flush
	for {
		select {
		case <-a.ready:
			a.stepQueued()
			// Let the goroutines already runnable (readers, other
			// sessions) run before writing: under load, the inputs that
			// arrive meanwhile go out in the same writes (one write per
			// connection for several frames). With nothing else to run
			// this returns at once; while inputs keep arriving it yields
			// again, up to coalesceYieldsMax times.
			for yields := 0; yields < coalesceYieldsMax && len(a.out.Outbound) > 0; yields++ {
				runtime.Gosched()
				select {
				case <-a.ready:
					a.stepQueued()
				default:
					yields = coalesceYieldsMax // nothing arrived: write now
				}
			}
		case <-timer.C:
			// The timer is the core's wake or the end of a hold.
			if a.core != nil && a.core.NextWake() <= a.now() {
				a.stepCore(reflector.Wake{})
			}
		case <-shutdown:
			shutdown = nil
			a.stepCore(reflector.Shutdown{})
		}
		if hold := a.holdFor(shutdown == nil); hold > 0 {
			timer.Reset(min(hold, a.untilWake()))
			held = true
			continue
		}
		a.lastFlushFrames = len(a.receivedAt)
		a.flush()
		a.lastFlush, a.lastFlushHeld, held = time.Now(), held, false
		if a.ended && a.unregister() {
			return
		}
		timer.Reset(a.untilWake())
	}
}

// holdFor returns how long to hold the effects before flushing, so that
// the frames of the next events go out in the same writes (overload.go);
// 0: flush now. Frames are held until the delay has passed since the
// previous write, except after a quiet spell (the delay has passed
// already) and after a write that answered several client frames without
// being held: that session's inputs arrive together, they coalesce by
// themselves, and holding the rest of a burst would only delay it. Only
// frames are held: effects that close connections or look up pointers, an
// ended session and a shutdown flush at once.
func (a *sessionActor) holdFor(shuttingDown bool) time.Duration {
	delay := a.server.overload.coalesceDelay()
	if delay == 0 || shuttingDown || a.ended || a.core == nil || a.out.LookupPointer != "" || len(a.out.Outbound) == 0 {
		return 0
	}
	if a.lastFlushFrames > 1 && !a.lastFlushHeld {
		return 0
	}
	for i := range a.out.Outbound {
		if a.out.Outbound[i].CloseCode != 0 {
			return 0
		}
	}
	return max(delay-time.Since(a.lastFlush), 0)
}

// stepQueued steps a batch of queued events.
func (a *sessionActor) stepQueued() {
	for _, event := range a.takeEvents() {
		a.step(event)
		<-a.slots
	}
}

func (a *sessionActor) untilWake() time.Duration {
	if a.core == nil || a.ended {
		return time.Hour
	}
	wake := a.core.NextWake()
	if wake == 1<<63-1 {
		return time.Hour
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
	ctx := context.Background()
	stored, err := a.server.store.LoadSession(ctx, a.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.core = reflector.New(a.server.config.Reflector, a.id, newTimeline(), a.now())
	case err != nil:
		a.failed = err
	default:
		messages := make([]reflector.StoredMessage, len(stored.Messages))
		for i, message := range stored.Messages {
			messages[i] = reflector.StoredMessage{Seq: message.Seq, Data: message.Data}
		}
		a.core, err = reflector.Restore(a.server.config.Reflector, a.id, a.now(), stored.Record, messages)
		if err != nil {
			a.failed = err
			a.core = nil
			break
		}
		record := a.core.Record()
		a.server.logger.Info("session resumed from storage", "session", a.id, "timeline", record.Timeline,
			"time", record.Time, "seq", record.Seq, "messages", len(messages))
	}
	if a.failed != nil {
		a.server.logger.Error("session storage unreadable; refusing connections", "session", a.id, "err", a.failed)
	}
}

func (a *sessionActor) step(event actorEvent) {
	if !event.received.IsZero() {
		a.receivedAt = append(a.receivedAt, event.received)
	}
	if event.conn != nil {
		a.conns[event.conn.id] = event.conn
		a.seenConnects++
	}
	if a.failed != nil || a.core == nil {
		if event.conn != nil {
			// Storage failed: ask the client to come back; a new actor will
			// load the session from what is stored.
			event.conn.close(protocol.CloseReconnect, "session storage failure, please reconnect")
		}
		a.ended = true
		return
	}
	a.stepCore(event.event)
	if disconnect, ok := event.event.(reflector.Disconnect); ok {
		delete(a.conns, disconnect.Conn)
	}
}

func (a *sessionActor) stepCore(event reflector.Event) {
	if a.core == nil {
		return
	}
	a.core.Step(a.now(), event, &a.out)
}

// flush executes the accumulated effects: storage first (durable before any
// frame that depends on it is queued), then the frames, then notes.
func (a *sessionActor) flush() {
	if a.core == nil {
		return
	}
	ctx := context.Background()
	for a.out.LookupPointer != "" {
		key := a.out.LookupPointer
		a.out.LookupPointer = ""
		url := ""
		if value, err := a.server.store.GetPointer(ctx, key); err == nil {
			url = pointerURL(value)
		} else if !errors.Is(err, store.ErrNotFound) {
			a.server.logger.Warn("persisted pointer lookup failed", "session", a.id, "key", key, "err", err)
		}
		a.core.Step(a.now(), reflector.PointerLoaded{URL: url}, &a.out)
	}
	if err := a.commit(ctx); err != nil {
		a.fail(err)
		return
	}
	metrics := &a.server.metrics
	for i := range a.out.Outbound {
		outbound := &a.out.Outbound[i]
		if outbound.CloseCode != 0 {
			if c := a.conns[outbound.To[0]]; c != nil {
				metrics.countClose(outbound.CloseCode)
				c.close(outbound.CloseCode, outbound.CloseReason)
			}
			continue
		}
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
	// One write per connection for everything this batch queued to it.
	for i, c := range a.touched {
		c.flushPending = false
		c.flush()
		a.touched[i] = nil
	}
	a.touched = a.touched[:0]
	flushed := time.Now()
	for _, received := range a.receivedAt {
		metrics.reflect.observe(float64(flushed.Sub(received).Microseconds()) / 1000)
	}
	a.receivedAt = a.receivedAt[:0]
	for _, note := range a.out.Notes {
		a.logNote(note)
	}
	metrics.messagesStamped.Add(uint64(a.out.MessagesStamped))
	metrics.ticksSent.Add(uint64(a.out.TicksSent))
	for _, latency := range a.out.LatencySamplesMs {
		metrics.latency.observe(latency)
	}
	if a.out.Ended {
		a.ended = true
	}
	a.out.Reset()
}

func (a *sessionActor) commit(ctx context.Context) error {
	storage := &a.out.Storage
	if len(storage.Append) > 0 || storage.DropFront > 0 || storage.Record != nil {
		a.batch.Append = a.batch.Append[:0]
		for _, message := range storage.Append {
			a.batch.Append = append(a.batch.Append, store.Message{Seq: message.Seq, Data: message.Data})
		}
		a.batch.DropFront = storage.DropFront
		a.batch.Record = storage.Record
		started := time.Now()
		err := a.server.store.Commit(ctx, a.id, a.batch)
		a.server.metrics.commit.observe(float64(time.Since(started).Microseconds()) / 1000)
		clear(a.batch.Append)
		if err != nil {
			return err
		}
	}
	for _, pointer := range storage.Pointers {
		if err := a.server.store.PutPointer(ctx, pointer.Key, pointer.Value); err != nil {
			// A pointer only matters for a future fresh session: log, go on.
			a.server.logger.Warn("storing persisted pointer failed", "session", a.id, "key", pointer.Key, "err", err)
		}
	}
	return nil
}

// fail handles a storage write failure: nothing of this batch is sent; every
// client is asked to reconnect, and the session restarts from what is stored.
func (a *sessionActor) fail(err error) {
	a.server.metrics.storeErrors.Add(1)
	a.server.logger.Error("session storage write failed; closing the session so clients resync from storage",
		"session", a.id, "err", err)
	for _, c := range a.conns {
		c.close(protocol.CloseReconnect, "storage failure, please reconnect")
	}
	a.out.Reset()
	a.receivedAt = a.receivedAt[:0]
	a.core = nil
	a.failed = err
	a.ended = true
}

func (a *sessionActor) logNote(note reflector.Note) {
	logger := a.server.logger
	switch note.Kind {
	case reflector.NoteClientLog:
		logger.Info("client log", "session", a.id, "conn", note.Conn, "text", note.Text)
	case reflector.NoteRejected:
		logger.Info("frame rejected", "session", a.id, "conn", note.Conn, "why", note.Text)
	case reflector.NoteBufferFull:
		logger.Warn("message rejected", "session", a.id, "conn", note.Conn, "why", note.Text)
	default:
		logger.Info(note.Text, "session", a.id, "conn", note.Conn)
	}
}

// pointerURL extracts the url of a stored pointer value {"url": ...}.
func pointerURL(value []byte) string {
	var pointer struct {
		URL string `json:"url"`
	}
	if err := jsonUnmarshal(value, &pointer); err != nil {
		return ""
	}
	return pointer.URL
}

// newTimeline returns a random base-36 incarnation id (spec §7.1).
func newTimeline() string {
	limit := new(big.Int).Exp(big.NewInt(36), big.NewInt(12), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return n.Text(36)
}
