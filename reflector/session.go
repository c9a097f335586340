package reflector

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/metronome-sync/metronome/protocol"
)

// never is the deadline of a timer that is not set.
const never = Never

// member is one connection of the session.
type member struct {
	id           ConnID
	lastActivity int64
	// tokensMilli is the rate limiter's bucket in thousandths of a frame.
	tokensMilli int64
	refilledAt  int64

	joined    bool // sent a valid JOIN
	joins     int  // JOIN frames received (JoinsPerConnectionMax)
	synced    bool // received SYNC: part of the island, counted in users
	connected bool
	closing   bool  // we asked the shell to close it; ignore its frames
	leaveAt   int64 // when a disconnected synced member is removed

	// user is the JOIN's user value (nil: none); userKey decides when a
	// join and a leave cancel each other (docs/protocol.md §10.1).
	user    json.RawMessage
	userKey string

	// ephemeral: the JOIN asked for the ephemeral channel, so the member
	// is sent the other members' EPHM frames (ephemeral.go); from is the
	// view id those of its own carry ("" when its user names none).
	ephemeral bool
	from      string
}

type userChange struct {
	key  string
	user json.RawMessage
}

// Session is the state machine of one session. Create it with New or
// Restore; drive it with Step; ask NextWake when to step a Wake.
type Session struct {
	config   Config
	id       string
	timeline string // used if the island is created fresh

	island      bool // the island exists (created by JOIN or restored)
	record      Record
	scaledStart float64 // monotonic ms at which (scaled) session time was 0
	buffer      messageBuffer
	// scratch is reused to encode a message before it is buffered.
	scratch []byte

	members    map[ConnID]*member
	order      []ConnID // members in connection order (deterministic iteration)
	recipients []ConnID // cached synced+connected members; nil when stale
	leaving    int      // members in their leave delay
	syncQueue  []ConnID

	pointerPending bool
	leaveDelayMs   int64
	flags          protocol.Flags

	pendingJoined []userChange
	pendingLeft   []userChange
	usersAt       int64

	tickAt int64
	// fullNoticeAt is when a full buffer may broadcast its next REQU and
	// SNAPSHOT_NEEDED (BufferFullNoticeIntervalMs).
	fullNoticeAt int64
	delayed      []delayedMessage
	delayedAt    int64

	tallies    map[string]*tally
	tallyOrder []string
	// tallyLog keeps the last completed tallies for inspection only
	// (inspect.go); nothing the session does depends on it.
	tallyLog tallyLog
	debounce map[string]int64

	watchdogAt int64
	deletionAt int64
	ended      bool

	// restoreDrop is the number of stored messages a snapshot covered that
	// a crash left in storage; the first Step drops them.
	restoreDrop int

	// bugDeferredSync holds members whose entry into the broadcast set the
	// syncNotAtomic bug deferred (bugs.go).
	bugDeferredSync []ConnID
}

// New creates the state of a session that has nothing stored. timeline is
// the incarnation id used if a JOIN creates the island (random, chosen by
// the caller so the core stays deterministic).
func New(config Config, sessionID, timeline string, now int64) *Session {
	return &Session{
		config:     config,
		id:         sessionID,
		timeline:   timeline,
		members:    make(map[ConnID]*member),
		tallies:    make(map[string]*tally),
		debounce:   make(map[string]int64),
		usersAt:    never,
		tickAt:     never,
		delayedAt:  never,
		watchdogAt: never,
		deletionAt: now + config.DeletionDelayMs,
	}
}

// Restore creates a session from its stored record and messages. Time
// continues from the stored time (or its lease, after a crash); timeline,
// sequence number, snapshot pointer and buffer are as stored.
func Restore(config Config, sessionID string, now int64, recordData []byte, messages []StoredMessage) (*Session, error) {
	record, err := DecodeRecord(recordData)
	if err != nil {
		return nil, err
	}
	session := New(config, sessionID, record.Timeline, now)
	session.island = true
	session.record = record
	times := make([]int64, len(messages))
	for i, message := range messages {
		times[i], err = messageTime(message.Data)
		if err != nil {
			return nil, fmt.Errorf("reflector: stored message %d of session %s: %w", i, sessionID, err)
		}
		if i > 0 && message.Seq != messages[i-1].Seq+1 {
			return nil, fmt.Errorf("reflector: stored messages of session %s have a sequence gap: %d then %d", sessionID, messages[i-1].Seq, message.Seq)
		}
	}
	// A crash inside a commit can leave the new record (with a new snapshot)
	// stored but not yet the drop of the messages it covers: skip them, and
	// drop them from storage with the first effects.
	if record.SnapshotTime >= 0 {
		for i := range messages {
			if messages[i].Seq == record.SnapshotSeq {
				session.restoreDrop = i + 1
				break
			}
		}
	}
	if err := checkStoredSeqs(record, messages[session.restoreDrop:]); err != nil {
		return nil, fmt.Errorf("reflector: session %s: %w", sessionID, err)
	}
	for i := session.restoreDrop; i < len(messages); i++ {
		session.buffer.add(messages[i].Seq, times[i], messages[i].Data)
	}
	if session.buffer.len() > 0 {
		last := session.buffer.last()
		session.record.Seq = last.seq
		session.record.LastMessageTime = max(session.record.LastMessageTime, last.time)
	}
	resumeTime := max(record.Time, record.TimeReserved, session.record.LastMessageTime, record.LastTick)
	if bugsBuilt && config.bugs.timeBackwardsAfterRestart {
		resumeTime = max(record.Time, session.record.LastMessageTime)
	}
	session.record.Time = resumeTime
	session.record.TimeReserved = resumeTime
	session.scaledStart = float64(now) - float64(resumeTime)/session.record.Scale
	session.tickAt = now + session.tickIntervalMs()
	return session, nil
}

// checkStoredSeqs checks that the stored messages after the snapshot (or
// the session's start) are all there: they must start right after it, and
// the record must not know of a seq beyond the last of them. Otherwise
// messages that clients may have seen are gone, and continuing on this
// timeline would stamp their seqs again with other contents: the caller
// must treat the stored session as damaged.
func checkStoredSeqs(record Record, buffered []StoredMessage) error {
	start := protocol.SeqInitial // the seq before the first buffered message
	if record.SnapshotTime >= 0 {
		start = record.SnapshotSeq
	}
	if len(buffered) == 0 {
		if record.Seq != start {
			return fmt.Errorf("the record is at seq %d, but no message after seq %d is stored: messages are lost", record.Seq, start)
		}
		return nil
	}
	if first := buffered[0].Seq; first != start+1 {
		return fmt.Errorf("the stored messages start at seq %d, not right after seq %d: messages are lost", first, start)
	}
	if last := buffered[len(buffered)-1].Seq; int32(record.Seq-last) > 0 {
		return fmt.Errorf("the record is at seq %d, but the stored messages end at seq %d: messages are lost", record.Seq, last)
	}
	return nil
}

// messageTime reads the time (element 0) of an encoded message array.
func messageTime(data []byte) (int64, error) {
	if len(data) < 2 || data[0] != '[' {
		return 0, errors.New("not a message array")
	}
	end := 1
	for end < len(data) && data[end] != ',' {
		end++
	}
	value, err := strconv.ParseInt(string(data[1:end]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("message time: %w", err)
	}
	return value, nil
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// Ended reports whether the session is over.
func (s *Session) Ended() bool { return s.ended }

// Record returns a copy of the session record (for inspection and tests).
func (s *Session) Record() Record { return s.record }

// Members returns the number of connections and of synced members.
func (s *Session) Members() (connections, synced int) {
	//metronome:allow counting is order-independent
	for _, m := range s.members {
		if m.synced {
			synced++
		}
	}
	return len(s.members), synced
}

// BufferedMessages returns the number of messages since the last snapshot.
func (s *Session) BufferedMessages() int { return s.buffer.len() }

// Step applies one event at monotonic time now (ms), appending effects to
// out. Timers that are due run first.
func (s *Session) Step(now int64, event Event, out *Effects) {
	if s.ended {
		if connect, ok := event.(Connect); ok {
			out.close(connect.Conn, protocol.CloseReconnect, "session ended, please reconnect")
		}
		return
	}
	if s.restoreDrop > 0 {
		out.Storage.DropFront += s.restoreDrop
		s.restoreDrop = 0
	}
	s.runTimers(now, out)
	if s.ended {
		return
	}
	if bugsBuilt && len(s.bugDeferredSync) > 0 {
		if _, ok := event.(Wake); ok {
			s.bugEnterBroadcast(now)
		}
	}
	switch e := event.(type) {
	case Connect:
		s.connect(now, e.Conn)
	case Receive:
		s.receive(now, e, out)
	case Disconnect:
		s.disconnect(now, e.Conn)
	case Wake:
	case PointerLoaded:
		s.pointerLoaded(now, e.URL, out)
	case Shutdown:
		s.shutdown(now, out)
	default:
		panic(fmt.Sprintf("reflector: unknown event %T", event))
	}
}

// NextWake returns the monotonic time at which a Wake is due
// (Never when none).
func (s *Session) NextWake() int64 {
	if s.ended {
		return never
	}
	wake := min(s.usersAt, s.delayedAt, s.watchdogAt, s.deletionAt)
	if len(s.delayed) == 0 {
		wake = min(wake, s.tickAt)
	}
	for _, key := range s.tallyOrder {
		wake = min(wake, s.tallies[key].deadline)
	}
	if s.leaving > 0 {
		for _, id := range s.order {
			if m := s.members[id]; !m.connected && m.synced {
				wake = min(wake, m.leaveAt)
			}
		}
	}
	return wake
}

func (s *Session) runTimers(now int64, out *Effects) {
	if s.leaving > 0 {
		for _, id := range append([]ConnID(nil), s.order...) {
			if m := s.members[id]; m != nil && !m.connected && m.synced && m.leaveAt <= now {
				s.removeMember(now, m)
			}
		}
	}
	if s.usersAt <= now {
		s.flushUsers(now, out)
	}
	for len(s.tallyOrder) > 0 {
		due := ""
		for _, key := range s.tallyOrder {
			if s.tallies[key].deadline <= now {
				due = key
				break
			}
		}
		if due == "" {
			break
		}
		s.completeTally(now, s.tallies[due], out)
	}
	if s.delayedAt <= now {
		s.stampDelayed(now, out)
	}
	if len(s.delayed) == 0 && s.tickAt <= now {
		s.tick(now, out)
	}
	if s.watchdogAt <= now {
		s.watchdog(now, out)
	}
	if s.deletionAt <= now {
		s.end(now, out)
	}
}

// --- time ---

func (s *Session) tickIntervalMs() int64 {
	//metronome:allow in range: TickMs is decoded within [TickMsMin, TickMsMax]
	return max(int64(math.Round(s.record.TickMs)), protocol.TickMsMin)
}

// advanceTimeAndLease advances the session time to now (advanceTime) and
// renews the time lease, a record write, before the time can pass it
// (renewLease). Every time that leaves the session comes from here.
func (s *Session) advanceTimeAndLease(now int64, out *Effects) int64 {
	t := s.advanceTime(now)
	s.renewLease(t, out)
	return t
}

// advanceTime sets the record's session time to the time at monotonic time
// now and returns it; it never decreases. It writes nothing: a time it
// returns must not be sent before renewLease covers it.
func (s *Session) advanceTime(now int64) int64 {
	//metronome:allow in range: Scale is clamped to [1/64, 64] at JOIN, the times are ms since the session was loaded
	t := int64(math.Floor((float64(now) - s.scaledStart) * s.record.Scale))
	if t < s.record.Time {
		t = s.record.Time
	}
	s.record.Time = t
	return t
}

// renewLease extends the time lease (writing the record) once session time
// t has used up half of it, so the session never stamps or ticks beyond
// TimeReserved.
func (s *Session) renewLease(t int64, out *Effects) {
	if t > s.record.TimeReserved-s.config.TimeLeaseMs/2 {
		s.record.TimeReserved = t + s.config.TimeLeaseMs
		s.writeRecord(out)
	}
}

func (s *Session) writeRecord(out *Effects) {
	out.Storage.Record = s.record.encode()
}

// --- connections ---

func (s *Session) connect(now int64, id ConnID) {
	if _, exists := s.members[id]; exists {
		panic(fmt.Sprintf("reflector: connection %d connected twice", id))
	}
	s.members[id] = &member{
		id:           id,
		lastActivity: now,
		tokensMilli:  s.config.FramesBurstMax * 1000,
		refilledAt:   now,
		connected:    true,
	}
	s.order = append(s.order, id)
	s.deletionAt = never
	if s.watchdogAt == never && (s.config.InactivityTimeoutMs > 0 || s.config.NeverJoinedTimeoutMs > 0) {
		s.watchdogAt = now + s.config.WatchdogIntervalMs
	}
}

func (s *Session) disconnect(now int64, id ConnID) {
	m := s.members[id]
	if m == nil || !m.connected {
		return
	}
	m.connected = false
	s.recipients = nil
	s.removeFromSyncQueue(id)
	if m.synced && s.leaveDelayMs > 0 {
		m.leaveAt = now + s.leaveDelayMs
		s.leaving++
		return
	}
	s.removeMember(now, m)
}

func (s *Session) removeFromSyncQueue(id ConnID) {
	for i, queued := range s.syncQueue {
		if queued == id {
			s.syncQueue = append(s.syncQueue[:i], s.syncQueue[i+1:]...)
			return
		}
	}
}

func (s *Session) removeMember(now int64, m *member) {
	if !m.connected && m.synced && m.leaveAt != 0 {
		s.leaving--
	}
	delete(s.members, m.id)
	for i, id := range s.order {
		if id == m.id {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	s.recipients = nil
	if m.synced && m.user != nil {
		s.userLeft(now, m)
	}
	if len(s.members) == 0 {
		s.deletionAt = now + s.config.DeletionDelayMs
		s.watchdogAt = never
	}
}

// activeRecipients returns the synced, connected members in connection
// order. The returned slice is shared; it is replaced, never modified.
func (s *Session) activeRecipients() []ConnID {
	if s.recipients == nil {
		recipients := make([]ConnID, 0, len(s.order))
		for _, id := range s.order {
			if m := s.members[id]; m.synced && m.connected && !m.closing {
				recipients = append(recipients, id)
			}
		}
		s.recipients = recipients
	}
	return s.recipients
}

// connectedMembers returns every connected member, joined or not.
func (s *Session) connectedMembers() []ConnID {
	connected := make([]ConnID, 0, len(s.order))
	for _, id := range s.order {
		if m := s.members[id]; m.connected && !m.closing {
			connected = append(connected, id)
		}
	}
	return connected
}

func (s *Session) closeMember(m *member, code int, reason string, out *Effects) {
	if m.closing {
		return
	}
	m.closing = true
	s.recipients = nil
	s.removeFromSyncQueue(m.id)
	out.close(m.id, code, reason)
}

func (s *Session) watchdog(now int64, out *Effects) {
	s.watchdogAt = never
	any := false
	for _, id := range s.order {
		m := s.members[id]
		if !m.connected || m.closing {
			continue
		}
		any = true
		quiet := now - m.lastActivity
		switch {
		case s.config.InactivityTimeoutMs > 0 && quiet > s.config.InactivityTimeoutMs:
			s.closeMember(m, protocol.CloseInactive, fmt.Sprintf("client inactive: nothing received for %d ms (InactivityTimeoutMs)", quiet), out)
		case s.config.NeverJoinedTimeoutMs > 0 && !m.joined && quiet > s.config.NeverJoinedTimeoutMs:
			s.closeMember(m, protocol.CloseNeverJoined, fmt.Sprintf("client never joined within %d ms (NeverJoinedTimeoutMs)", s.config.NeverJoinedTimeoutMs), out)
		}
	}
	if any {
		s.watchdogAt = now + s.config.WatchdogIntervalMs
	}
}

// end deletes an idle session: pending users changes are flushed, the exact
// state is persisted and the session is over.
func (s *Session) end(now int64, out *Effects) {
	s.flushUsers(now, out)
	if s.island {
		s.stampDelayed(now, out)
		// No lease to renew: the record written here reserves no time beyond now.
		s.advanceTime(now)
		s.record.TimeReserved = s.record.Time
		s.writeRecord(out)
	}
	s.ended = true
	out.Ended = true
}

func (s *Session) shutdown(now int64, out *Effects) {
	for _, id := range s.order {
		if m := s.members[id]; m.connected {
			s.closeMember(m, protocol.CloseReconnect, "server shutting down, please reconnect", out)
		}
	}
	s.end(now, out)
}
