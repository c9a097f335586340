package sim

import (
	"fmt"
	"slices"

	"github.com/metronome-sync/metronome/protocol"
)

// The invariants (docs/simulation.md).
const (
	InvariantOrder       = "total order"
	InvariantTime        = "monotonic time"
	InvariantExactlyOnce = "exactly once"
	InvariantJoin        = "join correctness"
	InvariantConvergence = "convergence"
	InvariantLiveness    = "liveness"
	// InvariantSingleWriter: in cluster mode, at most one writer (a node's
	// ownership epoch) appends each position of a session's history
	// (cluster.go).
	InvariantSingleWriter = "single writer"
	// InvariantLease: in cluster mode, a node that was not paused has
	// stopped counting on a lease (cluster/lease.Keeper) when JetStream
	// expires it, whatever its clock's drift within the keeper's margin.
	InvariantLease = "lease"
)

// Violation is a broken invariant: the run stops at the first one.
type Violation struct {
	Invariant string
	Detail    string
	AtMs      int64    // simulated time
	Trace     []string // the last events before it
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s violated at %d ms: %s", v.Invariant, v.AtMs, v.Detail)
}

// ledgerKey names one position in one session's history.
type ledgerKey struct {
	session, timeline string
	seq               uint32
}

// ledgerEntry is what the first witness saw at a position: the message
// (digest of its encoding) and the model hash after applying it.
type ledgerEntry struct {
	message     uint64
	messageBy   string
	hash        string
	hashBy      string
	hashFromSnp bool
	hasHash     bool
}

// checker checks the safety invariants after every step that could break
// them: on every frame the reflector sends, every frame a client receives
// and every message a model applies.
type checker struct {
	w      *World
	ledger map[ledgerKey]*ledgerEntry
	// timeline and sentTime: per session, the incarnation id and the
	// latest session time in any frame the reflector sent, per ownership
	// epoch (one epoch, 0, with one reflector), oldest epoch first.
	timeline map[string]string
	sentTime map[string][]epochTime
}

// epochTime is the latest session time sent by the owners of one epoch.
type epochTime struct {
	epoch uint64
	time  int64
}

func newChecker(w *World) *checker {
	return &checker{w: w, ledger: map[ledgerKey]*ledgerEntry{}, timeline: map[string]string{}, sentTime: map[string][]epochTime{}}
}

func (k *checker) entry(key ledgerKey) *ledgerEntry {
	e := k.ledger[key]
	if e == nil {
		e = &ledgerEntry{}
		k.ledger[key] = e
	}
	return e
}

// message records that witness saw message at a position; two different
// messages at one position break total order.
func (k *checker) message(key ledgerKey, m protocol.StampedMessage, witness string) bool {
	d := digest(protocol.AppendMessage(nil, m.Time, m.Seq, m.Payload, m.Extra))
	e := k.entry(key)
	if e.messageBy == "" {
		e.message, e.messageBy = d, witness
		return true
	}
	if e.message != d {
		k.w.violate(InvariantOrder, fmt.Sprintf("session %s timeline %s seq %d: %s saw a different message than %s did",
			key.session, key.timeline, key.seq, witness, e.messageBy))
		return false
	}
	return true
}

// reflectorSent checks a frame as the reflector sends it: session time
// never goes backwards (also across crashes, restarts and failovers), the
// timeline of a session never changes (nothing durable is lost), and each
// position holds one message.
//
// In cluster mode a deposed owner may still send TICKs (within the time
// its last stored record reserved, which its successor restored from) to
// its own clients until it learns that it lost the session; so time is
// checked per ownership epoch: a frame sent under epoch e is never behind
// a time sent under e or any earlier epoch.
func (k *checker) reflectorSent(s *simSession, data []byte) {
	frame, err := protocol.DecodeServerFrame(data)
	if err != nil {
		k.w.violate(InvariantOrder, fmt.Sprintf("the reflector sent a frame clients cannot decode: %v: %.200s", err, data))
		return
	}
	timeline := s.host.Core().Record().Timeline
	if known, ok := k.timeline[s.id]; ok && known != timeline {
		k.w.violate(InvariantOrder, fmt.Sprintf("session %s changed timeline from %s to %s: the reflector lost its durable state", s.id, known, timeline))
		return
	}
	k.timeline[s.id] = timeline
	t := int64(-1)
	switch frame.Action {
	case protocol.ActionSync:
		t = frame.Sync.Time
		for _, m := range frame.Sync.Messages {
			if !k.message(ledgerKey{s.id, timeline, m.Seq}, m, k.reflectorName(s)) {
				return
			}
		}
	case protocol.ActionRecv:
		t = frame.Message.Time
		if !k.message(ledgerKey{s.id, timeline, frame.Message.Seq}, frame.Message, k.reflectorName(s)) {
			return
		}
	case protocol.ActionTick:
		t = frame.Time
	}
	if t >= 0 {
		k.sentAt(s, frame.Action, t)
	}
}

// sentAt checks and notes a session time sent under the session's epoch.
func (k *checker) sentAt(s *simSession, action string, t int64) {
	epoch := s.epoch()
	times := k.sentTime[s.id]
	at := len(times)
	for i, sent := range times {
		if sent.epoch > epoch {
			at = i
			break
		}
		if t < sent.time {
			by := "it"
			if sent.epoch != epoch {
				by = fmt.Sprintf("the owner of epoch %d", sent.epoch)
			}
			k.w.violate(InvariantTime, fmt.Sprintf("session %s: %s sent %s with time %d after %s had sent time %d", s.id, k.reflectorName(s), action, t, by, sent.time))
			return
		}
	}
	if at > 0 && times[at-1].epoch == epoch {
		times[at-1].time = t
		return
	}
	k.sentTime[s.id] = slices.Insert(times, at, epochTime{epoch: epoch, time: t})
}

// clientReceived checks a frame as a client receives it on a connection:
// after SYNC, messages arrive with consecutive seqs (no gap, no
// duplicate), times never decrease, and a SYNC's time is not behind what
// the client saw before on that timeline.
func (k *checker) clientReceived(c *client, conn *conn, data []byte) bool {
	frame, err := protocol.DecodeServerFrame(data)
	if err != nil {
		k.w.violate(InvariantOrder, fmt.Sprintf("%s received a frame it cannot decode: %v", c.viewID, err))
		return false
	}
	where := fmt.Sprintf("%s (connection %d)", c.viewID, conn.id)
	switch frame.Action {
	case protocol.ActionSync:
		sync := frame.Sync
		if sync.Time < c.seenTime[sync.Timeline] {
			k.w.violate(InvariantTime, fmt.Sprintf("%s: SYNC at time %d, but it saw time %d on timeline %s before", where, sync.Time, c.seenTime[sync.Timeline], sync.Timeline))
			return false
		}
		// Every message a client received was durable first: a session
		// that comes back on the same timeline has all of them.
		if seen, ok := c.seenSeq[sync.Timeline]; ok && int32(seen-sync.Seq) > 0 {
			k.w.violate(InvariantOrder, fmt.Sprintf("%s: SYNC on timeline %s at seq %d, but it received seq %d on that timeline before: messages it received were lost without a new timeline",
				where, sync.Timeline, sync.Seq, seen))
			return false
		}
		previous := sync.Seq - uint32(len(sync.Messages))
		if sync.HasSnapshot && len(sync.Messages) > 0 && sync.Messages[0].Seq != sync.SnapshotSeq+1 {
			k.w.violate(InvariantOrder, fmt.Sprintf("%s: SYNC messages start at seq %d, the snapshot is at %d", where, sync.Messages[0].Seq, sync.SnapshotSeq))
			return false
		}
		for _, m := range sync.Messages {
			if m.Seq != previous+1 {
				k.w.violate(InvariantOrder, fmt.Sprintf("%s: SYNC messages are not consecutive: seq %d after %d", where, m.Seq, previous))
				return false
			}
			previous = m.Seq
		}
		conn.synced, conn.lastSeq, conn.lastTime, conn.timeline = true, sync.Seq, sync.Time, sync.Timeline
		c.seenTime[sync.Timeline] = sync.Time
		c.seenSeq[sync.Timeline] = sync.Seq
	case protocol.ActionRecv, protocol.ActionTick:
		if !conn.synced {
			k.w.violate(InvariantOrder, fmt.Sprintf("%s: %s before SYNC", where, frame.Action))
			return false
		}
		t := frame.Time
		if frame.Action == protocol.ActionRecv {
			t = frame.Message.Time
			if frame.Message.Seq != conn.lastSeq+1 {
				k.w.violate(InvariantOrder, fmt.Sprintf("%s: RECV seq %d after seq %d on the same connection (a %s)", where,
					frame.Message.Seq, conn.lastSeq, map[bool]string{true: "gap", false: "duplicate"}[int32(frame.Message.Seq-conn.lastSeq) > 1]))
				return false
			}
			conn.lastSeq = frame.Message.Seq
			c.seenSeq[conn.timeline] = frame.Message.Seq
			if !k.message(ledgerKey{c.session, conn.timeline, frame.Message.Seq}, frame.Message, c.viewID) {
				return false
			}
		}
		if t < conn.lastTime {
			k.w.violate(InvariantTime, fmt.Sprintf("%s: %s time %d after time %d on the same connection", where, frame.Action, t, conn.lastTime))
			return false
		}
		conn.lastTime = t
		c.seenTime[conn.timeline] = max(c.seenTime[conn.timeline], t)
	}
	return true
}

// applied checks the model hash after a client applied the message at seq:
// every replica that applied the same history has the same state. A
// replica whose model came from a snapshot checks join correctness.
func (k *checker) applied(c *client, timeline string, seq uint32, hash string) bool {
	e := k.entry(ledgerKey{c.session, timeline, seq})
	if !e.hasHash {
		e.hash, e.hashBy, e.hashFromSnp, e.hasHash = hash, c.viewID, c.replica.FromSnapshot(), true
		return true
	}
	if e.hash == hash {
		return true
	}
	invariant := InvariantConvergence
	if c.replica.FromSnapshot() != e.hashFromSnp {
		invariant = InvariantJoin
	}
	k.w.violate(invariant, fmt.Sprintf("session %s timeline %s seq %d: %s has state hash %.16s (from snapshot: %v), %s had %.16s (from snapshot: %v)",
		c.session, timeline, seq, c.viewID, hash, c.replica.FromSnapshot(), e.hashBy, e.hash, e.hashFromSnp))
	return false
}

// dataLost accepts that a session starts again on a new timeline, because
// the store really lost its data (damaged and quarantined, or deleted after
// being idle): its time starts again too, and the inputs its clients
// submitted so far may be lost. Only the store calls it, when it drops the
// data: a timeline change the store did not cause is a violation.
func (k *checker) dataLost(session string) {
	delete(k.timeline, session)
	delete(k.sentTime, session)
	for _, c := range k.w.clients {
		if c.session == session {
			c.submittedBeforeDamage = c.submitted
		}
	}
}

func (k *checker) reflectorName(s *simSession) string {
	if s.r.name == "" {
		return fmt.Sprintf("reflector process %d", s.r.incarnation)
	}
	return fmt.Sprintf("node %s process %d (epoch %d)", s.r.name, s.r.incarnation, s.epoch())
}
