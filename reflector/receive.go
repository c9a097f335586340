package reflector

import (
	"errors"
	"fmt"
	"strings"

	"github.com/metronome-sync/metronome/protocol"
)

// logTextBytesMax bounds the client LOG text passed on in a Note.
const logTextBytesMax = 1000

func (s *Session) receive(now int64, e Receive, out *Effects) {
	m := s.members[e.Conn]
	if m == nil || !m.connected || m.closing {
		return // frames after a close decision are ignored (docs/protocol.md §6.10)
	}
	m.lastActivity = now
	if !s.takeToken(now, m) {
		s.closeMember(m, protocol.CloseTooManyFrames,
			fmt.Sprintf("too many frames: more than %d per second (FramesPerSecondMax)", s.config.FramesPerSecondMax), out)
		out.note(NoteRejected, m.id, "rate limit exceeded")
		return
	}
	if e.Err != nil {
		s.reject(m, e.Err, out)
		return
	}
	frame := e.Frame
	switch frame.Action {
	case protocol.ActionJoin:
		s.join(now, m, frame, out)
	case protocol.ActionSend:
		s.send(now, m, frame, out)
	case protocol.ActionTutti:
		s.tutti(now, m, frame, out)
	case protocol.ActionSnap:
		s.snap(now, m, frame, out)
	case protocol.ActionSave:
		s.save(m, frame, out)
	case protocol.ActionTicks:
		s.ticks(now, m, frame, out)
	case protocol.ActionEphemeral:
		s.relayEphemeral(m, frame, out)
	case protocol.ActionPing:
		out.send([]ConnID{m.id}, protocol.AppendPong(nil, frame.Args))
	case protocol.ActionPulse:
		// Keep-alive: lastActivity was refreshed above.
	case protocol.ActionLog:
		text := string(frame.Args)
		if len(text) > logTextBytesMax {
			text = text[:logTextBytesMax] + "..."
		}
		out.note(NoteClientLog, m.id, text)
	default:
		// Unknown actions are ignored, as the reference does (docs/protocol.md §6).
		out.note(NoteRejected, m.id, "unknown action ignored: "+protocol.TruncateReason(frame.Action))
	}
}

// takeToken refills the member's token bucket and takes one frame's token.
func (s *Session) takeToken(now int64, m *member) bool {
	elapsed := now - m.refilledAt
	if elapsed > 0 {
		m.tokensMilli = min(m.tokensMilli+elapsed*s.config.FramesPerSecondMax, s.config.FramesBurstMax*1000)
		m.refilledAt = now
	}
	if m.tokensMilli < 1000 {
		return false
	}
	m.tokensMilli -= 1000
	return true
}

// reject closes a member for a bad frame, with the error's close code.
func (s *Session) reject(m *member, err error, out *Effects) {
	var protocolError *protocol.Error
	if errors.As(err, &protocolError) {
		s.closeMember(m, protocolError.Code, protocolError.CloseReason(), out)
	} else {
		s.closeMember(m, protocol.CloseServerError, err.Error(), out)
	}
	out.note(NoteRejected, m.id, err.Error())
}

// requireIsland closes members that send session actions before joining.
func (s *Session) requireIsland(m *member, action string, out *Effects) bool {
	if s.island && m.joined {
		return true
	}
	s.closeMember(m, protocol.CloseUnknownSession, "unknown session: "+action+" before JOIN", out)
	out.note(NoteRejected, m.id, action+" before JOIN")
	return false
}

func (s *Session) join(now int64, m *member, frame protocol.ClientFrame, out *Effects) {
	m.joins++
	if m.joins > s.config.JoinsPerConnectionMax {
		reason := fmt.Sprintf("malformed message: more than %d JOINs on one connection (JoinsPerConnectionMax): reconnect to rejoin", s.config.JoinsPerConnectionMax)
		s.closeMember(m, protocol.CloseMalformed, reason, out)
		out.note(NoteRejected, m.id, reason)
		return
	}
	join, err := protocol.DecodeJoin(frame.Args)
	if err != nil {
		s.reject(m, err, out)
		return
	}
	if !s.island {
		s.createIsland(now, join, out)
	} else if join.AppID != "" && s.record.AppID != "" && join.AppID != s.record.AppID {
		// Clients derive the session id from their appId: a JOIN that names
		// another app is not a member of this session (an access token for
		// one app must not open another app's session by its id).
		reason := fmt.Sprintf("bad appId: session belongs to app %q, the JOIN names %q", s.record.AppID, join.AppID)
		s.closeMember(m, protocol.CloseBadAppID, reason, out)
		out.note(NoteRejected, m.id, reason)
		return
	}
	// Island-wide settings that every JOIN overwrites (docs/protocol.md §6.1, Q4).
	s.leaveDelayMs = join.LeaveDelayMs
	s.flags = join.Flags
	if m.joined && m.synced {
		// A second JOIN on a synced connection gets a fresh SYNC; the
		// member is not announced again (docs/protocol.md §6.1).
		s.sendSync(now, []ConnID{m.id}, out)
		return
	}
	if m.joined {
		return // already queued for SYNC (waiting for the pointer lookup)
	}
	m.joined = true
	m.user = join.User
	m.ephemeral, m.from = join.Ephemeral, protocol.UserViewID(join.User)
	if m.user != nil {
		if m.user[0] == '"' {
			m.userKey = "s" + string(m.user)
		} else {
			m.userKey = fmt.Sprintf("c%d", m.id)
		}
	}
	s.syncQueue = append(s.syncQueue, m.id)
	s.trySync(now, out)
}

func (s *Session) createIsland(now int64, join protocol.Join, out *Effects) {
	name := join.Name
	if join.AppID != "" {
		name = strings.TrimPrefix(name, join.AppID+"/")
	}
	tickMs := float64(protocol.TickMsDefault)
	if join.HasTicks {
		tickMs = join.TickMs
	}
	s.island = true
	s.record = Record{
		ID:           s.id,
		Name:         name,
		AppID:        join.AppID,
		PersistentID: join.PersistentID,
		Timeline:     s.timeline,
		Tove:         join.Tove,
		Location:     join.Location,
		Seq:          protocol.SeqInitial,
		Scale:        1,
		TickMs:       tickMs,
		DelayMs:      join.DelayMs,
		SnapshotTime: -1,
		LastTick:     -1000,
	}
	s.scaledStart = float64(now)
	s.tickAt = now + s.tickIntervalMs()
	s.advanceTimeAndLease(now, out) // writes the record with its first time lease
	out.note(NoteSessionCreated, 0, "session created with timeline "+s.timeline)
	if join.AppID != "" && join.PersistentID != "" {
		s.pointerPending = true
		out.LookupPointers = append(out.LookupPointers, pointerKey(join.AppID, join.PersistentID))
	}
}

func pointerKey(appID, persistentID string) string {
	return appID + "/" + persistentID
}

func (s *Session) pointerLoaded(now int64, url string, out *Effects) {
	if !s.pointerPending {
		return
	}
	s.pointerPending = false
	if url != "" && s.record.SnapshotURL == "" {
		s.record.PersistentURL = url
		s.writeRecord(out)
	}
	s.trySync(now, out)
}

// trySync sends SYNC to every queued member unless the persisted pointer is
// still being looked up (docs/protocol.md §8.1).
func (s *Session) trySync(now int64, out *Effects) {
	if s.pointerPending || len(s.syncQueue) == 0 {
		return
	}
	queued := s.syncQueue
	s.syncQueue = nil
	to := make([]ConnID, 0, len(queued))
	for _, id := range queued {
		if m := s.members[id]; m != nil && m.connected && !m.closing {
			to = append(to, id)
		}
	}
	if len(to) == 0 {
		return
	}
	// SYNC and entry into the broadcast set happen in this one step: no
	// message can be stamped in between (docs/protocol.md §17 MUST 5).
	s.sendSync(now, to, out)
	if bugsBuilt && s.config.bugs.syncNotAtomic {
		s.bugDeferredSync = append(s.bugDeferredSync, to...)
		return
	}
	for _, id := range to {
		m := s.members[id]
		m.synced = true
		if m.user != nil {
			s.userJoined(now, m)
		}
	}
	s.recipients = nil
}

// comma separates runs of messages in a SYNC's parts.
var comma = []byte{','}

func (s *Session) sendSync(now int64, to []ConnID, out *Effects) {
	sync := protocol.Sync{
		Time:      s.advanceTimeAndLease(now, out),
		Seq:       s.record.Seq,
		Tove:      s.record.Tove,
		Reflector: s.config.ReflectorName,
		Timeline:  s.record.Timeline,
		Flags:     s.flags,
	}
	switch {
	case s.record.SnapshotURL != "":
		sync.URL = s.record.SnapshotURL
		sync.HasSnapshot = true
		sync.SnapshotTime = s.record.SnapshotTime
		sync.SnapshotSeq = s.record.SnapshotSeq
	case s.record.PersistentURL != "":
		sync.URL = s.record.PersistentURL
		sync.Persisted = true
	}
	// The messages go out as stored (a SYNC can hold 100,000): the frame
	// is the head, the runs of messages with commas between them, the tail.
	runs := s.buffer.runs(nil)
	parts := make([][]byte, 0, 2*len(runs)+1)
	for i, run := range runs {
		if i > 0 {
			parts = append(parts, comma)
		}
		parts = append(parts, run)
	}
	parts = append(parts, protocol.AppendSyncTail(nil, &sync))
	out.Outbound = append(out.Outbound, Outbound{To: to, Frame: protocol.AppendSyncHead(nil, s.id, &sync), Parts: parts})
}

func (s *Session) send(now int64, m *member, frame protocol.ClientFrame, out *Effects) {
	if !m.joined {
		s.closeMember(m, protocol.CloseMalformed, "SEND before JOIN", out)
		out.note(NoteRejected, m.id, "SEND before JOIN")
		return
	}
	if bugsBuilt && s.config.bugs.seqBeforeValidation {
		if _, err := protocol.DecodeMessage("args", frame.Args); err != nil {
			s.record.Seq++
		}
	}
	message, err := protocol.DecodeMessage("args", frame.Args)
	if err != nil {
		s.reject(m, err, out)
		return
	}
	if tags := frame.Tags; tags.DebounceMs > 0 && tags.MsgID != "" {
		if accepted, seen := s.debounce[tags.MsgID]; seen && now-accepted < tags.DebounceMs {
			return
		}
		s.rememberDebounce(now, tags.MsgID)
	}
	if latency, ok := message.LatencyMs(); ok {
		out.LatencySamplesMs = append(out.LatencySamplesMs, latency)
	}
	// A debounced, tagged SEND is a snapshot poll: it may use the reserve.
	room := roomNone
	if frame.Tags.DebounceMs > 0 && frame.Tags.MsgID != "" {
		room = roomSnapshot
	}
	s.submit(now, message, m.id, room, out)
}

func (s *Session) rememberDebounce(now int64, msgID string) {
	if len(s.debounce) >= s.config.DebounceKeysMax {
		// Forget the oldest half; deterministic regardless of map order.
		oldest, newest := int64(never), int64(-never)
		for _, accepted := range s.debounce { //metronome:allow min and max do not depend on the visiting order
			oldest, newest = min(oldest, accepted), max(newest, accepted)
		}
		cutoff := oldest + (newest-oldest)/2
		for key, accepted := range s.debounce { //metronome:allow deleting by a fixed cutoff leaves the same map in any order
			if accepted <= cutoff {
				delete(s.debounce, key)
			}
		}
	}
	s.debounce[msgID] = now
}

func (s *Session) ticks(now int64, m *member, frame protocol.ClientFrame, out *Effects) {
	if !s.requireIsland(m, protocol.ActionTicks, out) {
		return
	}
	ticks, err := protocol.DecodeTicks(frame.Args)
	if err != nil {
		s.reject(m, err, out)
		return
	}
	if ticks.DelayMs > 0 {
		s.record.DelayMs = ticks.DelayMs
	}
	scale := 1.0
	if ticks.Scale > 0 {
		scale = min(max(ticks.Scale, protocol.ScaleMin), protocol.ScaleMax)
	}
	if scale != s.record.Scale {
		// Keep time continuous: recompute the start from the unrounded time.
		unrounded := (float64(now) - s.scaledStart) * s.record.Scale
		s.record.Scale = scale
		s.scaledStart = float64(now) - unrounded/scale
	}
	if ticks.TickMs > 0 {
		s.record.TickMs = ticks.TickMs
		s.tickAt = now + s.tickIntervalMs()
	}
	s.writeRecord(out)
}

// bugEnterBroadcast completes the SYNCs that the syncNotAtomic bug
// deferred (bugs.go).
func (s *Session) bugEnterBroadcast(now int64) {
	for _, id := range s.bugDeferredSync {
		if m := s.members[id]; m != nil && m.connected && !m.closing {
			m.synced = true
			if m.user != nil {
				s.userJoined(now, m)
			}
		}
	}
	s.bugDeferredSync = nil
	s.recipients = nil
}
