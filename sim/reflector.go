package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	metronomestore "github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/snapshotgc"
)

// Limits of the simulated reflector shell's connections, playing the part
// of server/'s per-connection queues (smaller, so the simulator reaches
// them).
const (
	// outboundBacklogFramesMax: a connection with more frames than this
	// still unread counts as backlogged, and idle TICKs skip it.
	outboundBacklogFramesMax = 4
	// outboundFramesMax: a connection with this many frames unread is a
	// slow client; the reflector closes it with 4001.
	outboundFramesMax = 256
	// pointerLookupMaxMs bounds the simulated latency of a pointer lookup.
	pointerLookupMaxMs = 50
	// closeHandshakeMaxMs is how long after closing a connection the
	// shell waits for the client's answer before the core learns it is
	// gone (server/conn.go's closeHandshakeTimeout).
	closeHandshakeMaxMs = 2000
)

// deletingCloseReason is the close reason of a connection for a session
// whose storage is being deleted (the server's route says the same).
const deletingCloseReason = "session unavailable (the idle session is being deleted), please reconnect"

// simReflector is the simulated reflector process: the same session host
// (package host) the server runs, with the simulated network as its
// transport and the fault-injecting store as its disk. What is left here
// is the process's life — start, crash, pause, incarnations — and the
// scheduling the server does with goroutines: when a batch of events is
// flushed (group commit), when a session wakes, when a pointer lookup
// answers.
type simReflector struct {
	w           *World
	options     host.Options // Config and bugs; Store, Conns and Observer per session
	up          bool
	incarnation int
	startedAt   int64 // simulated time at which this process started
	pausedUntil int64
	sessions    map[string]*simSession
	store       *store
	// deletions are the sessions the retention is deleting (host's rule:
	// a session in memory is not deleted, one being deleted is not
	// opened); deletionBugs holds the self-test's bugs for each new
	// process's set; deleting are the deletions begun and not finished.
	deletions    host.Deletions
	deletionBugs host.Deletions
	deleting     []*host.Deletion
	// flushEventsMax is how many events at most are stepped before one
	// flush, and flushHoldMs how long a session holds its effects for more
	// events to join the batch (the server's group commit and hold
	// policy); both chosen by the seed.
	flushEventsMax int
	flushHoldMs    int64
	// references are the snapshot references the process knows of
	// (snapshotgc.go); lost with the process.
	references snapshotgc.References

	// Cluster mode (cluster.go): the node's name ("n1"; "" with one
	// reflector), its clock's rate against JetStream's in permille, its
	// view of JetStream (the store its sessions use, nil with one
	// reflector), the ownerships it holds (server.ownerships and the
	// cluster node's leases in one), the claims in progress per session
	// with what waits for them, until when it is cut from JetStream, and
	// whether it is draining (a graceful stop).
	name       string
	clockRate  int64
	js         *jsView
	ownerships map[string]*simOwnership
	claiming   map[string][]func()
	jsCutUntil int64
	draining   bool
}

// simSession is one session in the reflector's memory: its host and its
// connections (it is the host's transport).
type simSession struct {
	r              *simReflector
	id             string
	host           *host.Session
	conns          map[reflector.ConnID]*conn
	wakeToken      uint64
	flushScheduled bool

	// Cluster mode: the ownership the session runs with; a flush that
	// waits because the session's batch is on its way to JetStream (the
	// server's actor is blocked in Commit meanwhile); and the loss of the
	// ownership, which the session acts on once that batch is answered.
	ownership   *simOwnership
	flushWanted bool
	lostBy      error
}

// now is the reflector process's monotonic clock: it starts at zero when
// the process starts, like time.Since(start) in the server, and runs at
// the node's clock rate (clock-skew).
func (r *simReflector) now() int64 { return (r.w.now - r.startedAt) * r.clockRate / 1000 }

// worldAt is the simulated time at which the process's clock reads ms
// (the first one: now() at that time is at least ms).
func (r *simReflector) worldAt(ms int64) int64 {
	return r.startedAt + (ms*1000+r.clockRate-1)/r.clockRate
}

// label names the process in the trace: "reflector", or the node's name.
func (r *simReflector) label() string {
	if r.name == "" {
		return "reflector"
	}
	return r.name
}

func (r *simReflector) start() {
	r.up = true
	r.incarnation++
	r.startedAt = r.w.now
	r.sessions = map[string]*simSession{}
	r.deletions = r.deletionBugs
	r.references = snapshotgc.References{}
	if r.js != nil {
		r.js = newJSView(r)
		r.ownerships = map[string]*simOwnership{}
		r.claiming = map[string][]func(){}
		r.draining = false
	}
	r.w.tracef("%s: process %d started", r.label(), r.incarnation)
}

// down ends the process: sessions in memory are gone, the connections
// still open break.
func (r *simReflector) down() {
	r.up = false
	for _, k := range r.w.sortedConns() {
		served := k.node == r && k.incarnation == r.incarnation
		if served && k.serverOpen && !k.serverClosed {
			k.serverClosed = true
			r.w.reset(k.toClient)
		}
		if served {
			k.toServer.dead = true
		}
		if k.via == r && k.viaIncarnation == r.incarnation {
			// A connection this node forwarded: both ends learn it broke.
			k.via = nil
			if !k.serverClosed {
				r.w.reset(k.toClient)
				r.w.reset(k.toServer)
			}
		}
	}
	r.sessions = nil
	r.ownerships = nil
	r.draining = false
	// A deletion in progress when the process ended happened or not.
	for _, deletion := range r.deleting {
		if r.w.rand.Chance(0.5) {
			r.w.tracef("reflector: the deletion of session %s was done before the process ended", deletion.ID())
			r.deleteSessionSnapshots(deletion.ID())
			deletion.Finish(context.Background())
		}
	}
	r.deleting = nil
}

// shutdown stops the process gracefully, as SIGTERM stops the server:
// every session steps a Shutdown (it persists its exact state and asks
// its clients to reconnect with 4003) and is flushed, then the process
// exits.
func (r *simReflector) shutdown() {
	if r.js != nil {
		r.drain()
		return
	}
	for _, id := range sortedKeys(r.sessions) {
		s := r.sessions[id]
		s.host.Step(r.now(), reflector.Shutdown{})
		r.flush(s)
	}
	// A graceful stop waits for the sync in progress.
	r.store.syncSubmitted()
	r.down()
	r.w.count(FaultReflectorRestart)
	r.w.tracef("reflector: process %d shut down", r.incarnation)
}

// crash kills the process: sessions in memory are gone, connections break,
// the store keeps what was committed (possibly torn).
func (r *simReflector) crash(torn bool) {
	if r.js != nil {
		// JetStream replicates every append before it acknowledges it: a
		// node's crash tears or loses nothing.
		r.down()
		r.pausedUntil = min(r.pausedUntil, r.w.now) // a stopped process can be killed too
		r.w.count(FaultNodeCrash)
		r.w.tracef("%s: process %d crashed (its leases expire by themselves)", r.label(), r.incarnation)
		return
	}
	r.down()
	detail := ""
	if n := r.store.crashSubmitted(r.w.rand.Chance(0.5)); n > 0 {
		detail = fmt.Sprintf(", %d submitted commits not yet durable", n)
	}
	if torn {
		if n := r.store.tearLastCommits(); n > 0 {
			detail += fmt.Sprintf(", torn commit in %d session(s)", n)
			r.w.count(FaultTornCommit)
		}
	}
	if r.store.nonDurable {
		if n := r.store.loseUnsynced(); n > 0 {
			detail += fmt.Sprintf(", the machine went down: %d unsynced commits lost (no durability)", n)
		}
	}
	if r.w.options.Bug == BugLostDurableWrite {
		if n := r.store.loseLastCommits(); n > 0 {
			detail += fmt.Sprintf(", BUG: lost the last durable commit of %d session(s)", n)
		}
	}
	r.w.count(FaultReflectorCrash)
	r.w.tracef("reflector: process %d crashed%s", r.incarnation, detail)
}

// deferred reports whether the process is paused; run is then retried
// when the pause ends (in order).
func (r *simReflector) deferred(run func()) bool {
	if r.w.now < r.pausedUntil {
		r.w.queue.schedule(r.pausedUntil, run)
		return true
	}
	return false
}

// receive handles a packet arriving at the reflector.
func (r *simReflector) receive(k *conn, p packet) {
	if r.deferred(func() { r.receive(k, p) }) {
		return
	}
	if p.kind == packetOpen {
		if !r.up || r.draining {
			r.w.send(k.toClient, packet{kind: packetRefused})
			return
		}
		if r.js != nil {
			r.route(k) // cluster.go: serve, claim, or forward to the owner
			return
		}
		r.accept(k)
		return
	}
	if !k.serverOpen && (p.kind == packetClose || p.kind == packetReset) {
		k.abandoned = true // before the upgrade was answered
	}
	if !r.up || k.incarnation != r.incarnation || !k.serverOpen {
		return
	}
	s := r.sessions[k.session]
	id := reflector.ConnID(k.id)
	if s == nil || s.conns[id] == nil {
		return // the session already stepped its Disconnect
	}
	switch p.kind {
	case packetFrame:
		// Also after the reflector decided to close the connection: like
		// the server's reader, the shell reads on until the close
		// handshake ends, and the core must ignore what comes.
		frame, err := protocol.DecodeClientFrame(p.data)
		r.step(s, reflector.Receive{Conn: id, Frame: frame, Err: err})
	case packetClose, packetReset:
		r.disconnect(s, id)
	}
}

// disconnect ends a connection for the session: no more frames either way,
// and the core steps its Disconnect.
func (r *simReflector) disconnect(s *simSession, id reflector.ConnID) {
	s.conns[id].serverClosed = true
	delete(s.conns, id)
	r.step(s, reflector.Disconnect{Conn: id})
}

func (r *simReflector) accept(k *conn) {
	k.node = r
	k.incarnation = r.incarnation
	k.serverOpen = true
	if r.sessions[k.session] == nil && r.deletions.Refuses(k.session) {
		// As the server's route: accepted, then asked to reconnect.
		r.w.count(FaultRetentionRefusal)
		r.w.tracef("%s: connection %d for session %s refused: it is being deleted", r.label(), k.id, k.session)
		k.serverClosed = true
		r.w.send(k.toClient, packet{kind: packetAccepted})
		r.w.send(k.toClient, packet{kind: packetClose, code: protocol.CloseReconnect, reason: deletingCloseReason})
		return
	}
	s := r.session(k.session)
	s.conns[reflector.ConnID(k.id)] = k
	r.w.send(k.toClient, packet{kind: packetAccepted})
	r.step(s, reflector.Connect{Conn: reflector.ConnID(k.id)})
}

// session returns the session in memory, opening it from the store.
func (r *simReflector) session(id string) *simSession {
	if s := r.sessions[id]; s != nil {
		return s
	}
	s := &simSession{r: r, id: id, conns: map[reflector.ConnID]*conn{}}
	options := r.options
	options.Timeline = fmt.Sprintf("t%08x", uint32(r.w.rand.Uint64()))
	options.Conns, options.Observer = s, (*simObserver)(r)
	if r.js != nil {
		// Commits go to JetStream and take a while: the node's view is a
		// host.PipelinedStore whose batches are answered later, one at a
		// time per session (flush waits), as the server's actor waits in
		// Commit.
		s.ownership = r.ownerships[id]
		if s.ownership == nil {
			r.w.violate(InvariantSingleWriter, fmt.Sprintf("sim: node %s opens session %s without owning it", r.name, id))
		}
		options.Store = r.js
		options.Notify = func(err error) { r.durable(s, err) }
		options.FenceOnOpen = true // as server/session.go in cluster mode
	} else {
		options.Store = r.store
		if r.store.syncDelayMaxMs > 0 {
			options.Notify = func(err error) { r.durable(s, err) }
		}
	}
	s.host = host.Open(context.Background(), id, r.now(), options)
	r.sessions[id] = s
	if s.ownership != nil && s.ownership.lost != nil {
		r.openedLost(s) // cluster.go
	}
	return s
}

// step runs one event through a session's host. The effects are flushed
// when flushEventsMax events accumulated, else after flushHoldMs (events
// arriving meanwhile join the batch, as in the server's group commit).
func (r *simReflector) step(s *simSession, event reflector.Event) {
	s.host.Step(r.now(), event)
	pending := s.host.Pending()
	if pending.Events >= r.flushEventsMax || pending.Urgent {
		r.flush(s)
		return
	}
	if !s.flushScheduled {
		s.flushScheduled = true
		incarnation := r.incarnation
		var run func()
		run = func() {
			if !r.up || r.incarnation != incarnation || r.sessions[s.id] != s || !s.flushScheduled {
				return
			}
			if r.deferred(run) {
				return
			}
			r.flush(s)
		}
		r.w.queue.schedule(r.w.now+r.flushHoldMs, run)
	}
}

// flush executes a session's accumulated effects through its host, then
// schedules what the host leaves to the shell: pointer lookups (answered
// later, as the server answers them from another goroutine), the end of
// an ended session, and its next wake.
func (r *simReflector) flush(s *simSession) {
	s.flushScheduled = false
	if r.js != nil && s.host.Pending().Waiting > 0 {
		s.flushWanted = true // after the batch on its way is answered
		return
	}
	s.flushWanted = false
	s.host.Flush(context.Background())
	r.flushed(s)
}

// durable passes the store's report that a submitted batch is durable (or
// failed) to the session's host, which then executes the effects that
// waited for it (pipelined commits).
func (r *simReflector) durable(s *simSession, err error) {
	if r.sessions[s.id] != s {
		return // the session failed and left memory: nothing waits
	}
	s.host.Durable(err)
	r.flushed(s)
	if r.js == nil || r.sessions[s.id] != s {
		return
	}
	if s.lostBy != nil {
		r.relinquish(s, s.lostBy)
		return
	}
	if s.flushWanted || s.host.Pending().Urgent {
		r.flush(s)
	}
}

// flushed does what the host leaves to the shell after executing effects.
func (r *simReflector) flushed(s *simSession) {
	for _, key := range s.host.TakeLookups() {
		r.lookupPointer(s, key)
	}
	if s.host.Ended() {
		if failed := s.host.Failed(); failed != nil {
			r.w.tracef("%s: session %s failed (storage: %v), out of memory", r.label(), s.id, failed)
		} else {
			r.w.tracef("%s: session %s ended (stored, out of memory)", r.label(), s.id)
		}
		delete(r.sessions, s.id)
		if s.ownership != nil {
			r.endOwnership(s.ownership) // cluster.go
		}
		return
	}
	r.scheduleWake(s)
}

// lookupPointer reads a persisted pointer beside the session's loop and
// steps the answer back after a store latency the seed draws.
func (r *simReflector) lookupPointer(s *simSession, key string) {
	loaded, err := s.host.LookupPointer(context.Background(), key)
	if err != nil {
		r.w.tracef("%s: %s: pointer %s unreadable: %v", r.label(), s.id, key, err)
	}
	incarnation := r.incarnation
	r.w.queue.schedule(r.w.now+r.w.rand.Between(0, pointerLookupMaxMs), func() {
		if r.up && r.incarnation == incarnation && r.sessions[s.id] == s {
			r.step(s, loaded)
		}
	})
}

// close sends a close frame after the frames queued before it. The core
// learns that the connection is gone when the client answers the close, or
// after the close handshake's time at most (closeHandshakeMaxMs), as the
// server's reader does; frames that arrive meanwhile still reach it.
func (r *simReflector) close(s *simSession, id reflector.ConnID, code int, reason string) {
	k := s.conns[id]
	if k == nil || k.serverClosed {
		return
	}
	k.serverClosed = true
	r.w.send(k.toClient, packet{kind: packetClose, code: code, reason: reason})
	r.w.queue.schedule(r.w.now+closeHandshakeMaxMs, func() {
		if r.up && r.sessions[s.id] == s && s.conns[id] == k {
			r.disconnect(s, id)
		}
	})
}

func (r *simReflector) scheduleWake(s *simSession) {
	wake := s.host.NextWake()
	if wake == reflector.Never {
		return
	}
	s.wakeToken++
	token := s.wakeToken
	incarnation := r.incarnation
	var run func()
	run = func() {
		if !r.up || r.incarnation != incarnation || r.sessions[s.id] != s || s.wakeToken != token {
			return
		}
		if r.deferred(run) {
			return
		}
		r.step(s, reflector.Wake{})
	}
	r.w.queue.schedule(max(r.w.now, r.worldAt(wake)), run)
}

// Send, Close, CloseAll and Flush make a simSession the host's transport
// (host.Conns) on the simulated network.

func (s *simSession) Send(outbound *reflector.Outbound) {
	w := s.r.w
	frame := outbound.Bytes()
	w.checker.reflectorSent(s, frame)
	for _, id := range outbound.To {
		k := s.conns[id]
		if k == nil || k.serverClosed {
			continue
		}
		if outbound.Tick && k.undelivered > outboundBacklogFramesMax {
			continue
		}
		if k.undelivered >= outboundFramesMax {
			w.count(FaultSlowClient)
			s.r.close(s, id, protocol.CloseSlowClient, fmt.Sprintf("%d frames unread (outboundFramesMax)", k.undelivered))
			continue
		}
		w.send(k.toClient, packet{kind: packetFrame, data: frame})
	}
}

func (s *simSession) Close(id reflector.ConnID, code int, reason string) {
	s.r.close(s, id, code, reason)
}

func (s *simSession) CloseAll(code int, reason string) {
	ids := make([]reflector.ConnID, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s.r.close(s, id, code, reason)
	}
}

// Flush: the simulated network sends each frame as it is queued.
func (s *simSession) Flush() {}

// simObserver is what the simulator makes of the host's reports: trace
// lines, counters, and a violation for a failure no fault explains. It is
// the reflector process (or node) whose sessions report.
type simObserver simReflector

// Opened: a session that starts fresh although the store quarantined its
// data must have been reported (Quarantined: the server logs it at ERROR).
func (o *simObserver) Opened(id string, record reflector.Record, messages int, resumed bool) {
	r := (*simReflector)(o)
	w := r.w
	if r.store != nil {
		if why := r.store.unreported[id]; why != "" && !resumed {
			w.violate(InvariantOrder, fmt.Sprintf("session %s starts on a new timeline: its stored data was lost (%s), and the host did not report it", id, why))
		}
	}
	epoch := ""
	if own := r.ownerships[id]; own != nil {
		epoch = fmt.Sprintf(" (epoch %d)", own.lease.epoch)
	}
	if resumed {
		w.tracef("%s: session %s resumed from store%s: timeline %s, time %d, seq %d, %d messages",
			r.label(), id, epoch, record.Timeline, record.Time, record.Seq, messages)
	} else if r.js != nil {
		w.tracef("%s: session %s: nothing stored, starts fresh%s", r.label(), id, epoch)
	}
}

// Quarantined: the session's stored data was damaged (storage-damage
// fault) and the store has lost it; the session starts on a new timeline,
// which the checker accepts because the store lost the data (dataLost).
// A report without that loss would start a new timeline beside data
// still stored: a violation. (JetStream's model damages nothing.)
func (o *simObserver) Quarantined(id string, err error) {
	r := (*simReflector)(o)
	w := r.w
	w.tracef("%s: session %s: stored data damaged, starts on a new timeline: %v", r.label(), id, err)
	r.references.Forget(id)
	if !errors.Is(err, metronomestore.ErrCorrupt) || r.store == nil || r.store.unreported[id] == "" {
		w.violate(InvariantOrder, fmt.Sprintf("session %s: reported quarantined (a new timeline), but the store lost nothing: %v", id, err))
	}
	if r.store != nil {
		delete(r.store.unreported, id)
	}
}

// StorageFailed: a storage failure the simulator injected, or in cluster
// mode a fenced commit (another node appended), a lost ownership
// (Relinquish), or a request JetStream did not answer in time (the node
// is cut from it). Any other failure is a violation.
func (o *simObserver) StorageFailed(id string, err error) {
	r := (*simReflector)(o)
	w := r.w
	w.tracef("%s: session %s: storage failed: %v", r.label(), id, err)
	r.references.Forget(id)
	explained := errors.Is(err, errInjected)
	if r.js != nil {
		explained = errors.Is(err, metronomestore.ErrFenced) || errors.Is(err, errJetStreamTimeout)
	}
	if !explained {
		w.violate(InvariantLiveness, fmt.Sprintf("session %s: storage failed without an injected fault: %v", id, err))
	}
}

// SnapshotStored: the session's durable record references this snapshot
// (host.SnapshotObserver); the reflector deletes what it replaced.
func (o *simObserver) SnapshotStored(id string, snapshotTime int64, url string) {
	(*simReflector)(o).snapshotStored(id, snapshotTime, url)
}

func (o *simObserver) PointerFailed(id, key string, err error) {
	r := (*simReflector)(o)
	r.w.tracef("%s: %s: storing pointer %s failed: %v", r.label(), id, key, err)
}

func (o *simObserver) Flushed(id string, out *reflector.Effects) {
	r := (*simReflector)(o)
	w := r.w
	for _, note := range out.Notes {
		if note.Kind != reflector.NoteClientLog {
			w.tracef("%s: %s: conn %d: %s", r.label(), id, note.Conn, note.Text)
		}
	}
	w.stats.Stamped += out.MessagesStamped
}
