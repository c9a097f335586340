package sim

import (
	"fmt"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// Limits of the simulated reflector shell, mirroring what server/ does with
// its per-connection queues (smaller, so the simulator reaches them).
const (
	// outboundBacklogFramesMax: a connection with more frames than this
	// still unread counts as backlogged, and idle TICKs skip it.
	outboundBacklogFramesMax = 4
	// outboundFramesMax: a connection with this many frames unread is a
	// slow client; the reflector closes it with 4001.
	outboundFramesMax = 256
)

// simReflector is the shell around the production reflector.Session cores:
// it routes connections to sessions, steps events, executes effects in the
// documented order (storage durable, then frames, then end) and schedules
// wakes, as server/session.go does with goroutines and sockets.
type simReflector struct {
	w           *World
	config      reflector.Config
	up          bool
	incarnation int
	startedAt   int64 // simulated time at which this process started
	pausedUntil int64
	sessions    map[string]*simSession
	store       *store
}

type simSession struct {
	id        string
	core      *reflector.Session
	conns     map[reflector.ConnID]*conn
	out       reflector.Effects
	wakeToken uint64
}

// now is the reflector process's monotonic clock: it starts at zero when
// the process starts, like time.Since(start) in the server.
func (r *simReflector) now() int64 { return r.w.now - r.startedAt }

func (r *simReflector) start() {
	r.up = true
	r.incarnation++
	r.startedAt = r.w.now
	r.sessions = map[string]*simSession{}
	r.w.tracef("reflector: process %d started", r.incarnation)
}

// crash kills the process: sessions in memory are gone, connections break,
// the store keeps what was committed (possibly torn).
func (r *simReflector) crash(torn bool) {
	r.up = false
	for _, k := range r.w.sortedConns() {
		if k.incarnation == r.incarnation && k.serverOpen && !k.serverClosed {
			k.serverClosed = true
			r.w.reset(k.toClient)
		}
		if k.incarnation == r.incarnation {
			k.toServer.dead = true
		}
	}
	r.sessions = nil
	detail := ""
	if torn {
		if n := r.store.tearLastCommits(); n > 0 {
			detail = fmt.Sprintf(", torn commit in %d session(s)", n)
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
		if !r.up {
			r.w.send(k.toClient, packet{kind: packetRefused})
			return
		}
		r.accept(k)
		return
	}
	if !r.up || k.incarnation != r.incarnation || !k.serverOpen || k.serverClosed {
		return
	}
	s := r.sessions[k.session]
	if s == nil {
		return
	}
	switch p.kind {
	case packetFrame:
		frame, err := protocol.DecodeClientFrame(p.data)
		r.step(s, reflector.Receive{Conn: reflector.ConnID(k.id), Frame: frame, Err: err})
	case packetClose, packetReset:
		k.serverClosed = true
		r.step(s, reflector.Disconnect{Conn: reflector.ConnID(k.id)})
		delete(s.conns, reflector.ConnID(k.id))
	}
}

func (r *simReflector) accept(k *conn) {
	s := r.session(k.session)
	if s == nil {
		return
	}
	k.incarnation = r.incarnation
	k.serverOpen = true
	s.conns[reflector.ConnID(k.id)] = k
	r.w.send(k.toClient, packet{kind: packetAccepted})
	r.step(s, reflector.Connect{Conn: reflector.ConnID(k.id)})
}

// session returns the session in memory, loading it from the store.
func (r *simReflector) session(id string) *simSession {
	if s := r.sessions[id]; s != nil {
		return s
	}
	s := &simSession{id: id, conns: map[reflector.ConnID]*conn{}}
	record, messages, ok := r.store.load(id)
	if ok {
		core, err := reflector.Restore(r.config, id, r.now(), record, messages)
		if err != nil {
			r.w.violate(InvariantLiveness, fmt.Sprintf("session %s cannot be restored from its store: %v", id, err))
			return nil
		}
		s.core = core
		rec := core.Record()
		r.w.tracef("reflector: session %s resumed from store: timeline %s, time %d, seq %d, %d messages", id, rec.Timeline, rec.Time, rec.Seq, len(messages))
	} else {
		timeline := fmt.Sprintf("t%08x", uint32(r.w.rand.Uint64()))
		s.core = reflector.New(r.config, id, timeline, r.now())
	}
	r.sessions[id] = s
	return s
}

// step runs one event through a session's core and executes the effects.
func (r *simReflector) step(s *simSession, event reflector.Event) {
	s.core.Step(r.now(), event, &s.out)
	r.execute(s)
}

func (r *simReflector) execute(s *simSession) {
	out := &s.out
	for out.LookupPointer != "" {
		key := out.LookupPointer
		out.LookupPointer = ""
		s.core.Step(r.now(), reflector.PointerLoaded{URL: string(r.store.pointers[key])}, out)
	}
	if !out.Storage.Empty() {
		if err := r.store.commit(s.id, &out.Storage); err != nil {
			r.w.violate(InvariantOrder, err.Error())
			out.Reset()
			return
		}
	}
	for i := range out.Outbound {
		outbound := &out.Outbound[i]
		if outbound.CloseCode != 0 {
			r.close(s, outbound.To[0], outbound.CloseCode, outbound.CloseReason)
			continue
		}
		frame := outbound.Bytes()
		r.w.checker.reflectorSent(s, frame)
		for _, id := range outbound.To {
			k := s.conns[id]
			if k == nil || k.serverClosed {
				continue
			}
			if outbound.Tick && k.undelivered > outboundBacklogFramesMax {
				continue
			}
			if k.undelivered >= outboundFramesMax {
				r.w.count(FaultSlowClient)
				r.close(s, id, protocol.CloseSlowClient, fmt.Sprintf("%d frames unread (outboundFramesMax)", k.undelivered))
				continue
			}
			r.w.send(k.toClient, packet{kind: packetFrame, data: frame})
		}
	}
	for _, note := range out.Notes {
		if note.Kind != reflector.NoteClientLog {
			r.w.tracef("reflector: %s: conn %d: %s", s.id, note.Conn, note.Text)
		}
	}
	r.w.stats.Stamped += out.MessagesStamped
	ended := out.Ended
	out.Reset()
	if ended {
		r.w.tracef("reflector: session %s ended (stored, out of memory)", s.id)
		delete(r.sessions, s.id)
		return
	}
	r.scheduleWake(s)
}

// close sends a close frame after the frames queued before it, then tells
// the core the connection is gone (the server's reader ends).
func (r *simReflector) close(s *simSession, id reflector.ConnID, code int, reason string) {
	k := s.conns[id]
	if k == nil || k.serverClosed {
		return
	}
	k.serverClosed = true
	r.w.send(k.toClient, packet{kind: packetClose, code: code, reason: reason})
	r.w.queue.schedule(r.w.now, func() {
		if r.up && r.sessions[s.id] == s {
			delete(s.conns, id)
			r.step(s, reflector.Disconnect{Conn: id})
		}
	})
}

func (r *simReflector) scheduleWake(s *simSession) {
	wake := s.core.NextWake()
	if wake == 1<<63-1 {
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
	r.w.queue.schedule(max(r.w.now, wake+r.startedAt), run)
}
