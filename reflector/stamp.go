package reflector

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/metronome-sync/metronome/protocol"
)

// delayGuardMs is added to the delay computation, as the reference does, so
// that a message is never stamped at the exact time of a synthesised tick
// (docs/protocol.md §4.3).
const delayGuardMs = 0.1

// submit stamps a client message now, or holds it in the delayed batch
// when the session has a "cheat beat" delay (docs/protocol.md §4.3).
//
// room says how far beyond MessagesSinceSnapshotMax the message may go.
func (s *Session) submit(now int64, message protocol.Message, sender ConnID, room room, out *Effects) {
	if s.record.DelayMs > 0 {
		current := s.advanceTimeAndLease(now, out)
		wait := float64(s.record.LastTick) + s.record.DelayMs + delayGuardMs - float64(current)
		if wait > 0 || len(s.delayed) > 0 {
			if s.bufferFull(now, sender, len(s.delayed), room, out) {
				return
			}
			s.delayed = append(s.delayed, delayedMessage{message: message, sender: sender, room: room})
			if s.delayedAt == never {
				// wait is session time; the timer runs in monotonic time.
				//metronome:allow in range: wait is under DelayMs plus a guard, Scale at least 1/64
				s.delayedAt = now + int64(math.Ceil(wait/s.record.Scale))
			}
			return
		}
	}
	t := s.advanceTimeAndLease(now, out)
	s.stamp(now, t, message.Payload, message.Extra, sender, room, out)
}

// delayedMessage is a client message held by the delay (docs/protocol.md §4.3).
// sender is told if the message is rejected when the batch is stamped
// (messages stamped meanwhile, such as users messages, may have filled
// the buffer): without it the client would wait for its input for good.
type delayedMessage struct {
	message protocol.Message
	sender  ConnID
	room    room
}

// room is how much of the message buffer's reserve a message may use.
type room int

const (
	// roomNone: client messages stop at MessagesSinceSnapshotMax.
	roomNone room = iota
	// roomUsers: users announcements may use half of
	// MessagesSnapshotReserve, so that joins and leaves while the buffer is
	// full can never take the room the snapshot flow needs.
	roomUsers
	// roomSnapshot: what leads to a snapshot — snapshot polls (debounced
	// tagged SENDs), TUTTI first messages and tallies — may use all of it.
	roomSnapshot
)

// stampDelayed stamps the held batch with one time and consecutive seqs.
func (s *Session) stampDelayed(now int64, out *Effects) {
	s.delayedAt = never
	if len(s.delayed) == 0 {
		return
	}
	t := s.advanceTimeAndLease(now, out)
	batch := s.delayed
	s.delayed = nil
	for _, held := range batch {
		sender := held.sender
		if m := s.members[sender]; m == nil || !m.connected || m.closing {
			sender = 0 // gone: nobody to tell of a rejection
		}
		s.stamp(now, t, held.message.Payload, held.message.Extra, sender, held.room, out)
	}
	s.tickAt = now + s.tickIntervalMs()
}

// bufferFull applies the message buffer limits before a message is
// accepted (docs/protocol.md §8.3). It returns true when the message must be rejected;
// the sender (if any) is told so explicitly, unlike the reference (Q5).
func (s *Session) bufferFull(now int64, sender ConnID, pending int, room room, out *Effects) bool {
	n := s.buffer.len() + pending
	limit := s.config.MessagesSinceSnapshotMax
	switch room {
	case roomUsers:
		limit += s.config.MessagesSnapshotReserve / 2
	case roomSnapshot:
		limit += s.config.MessagesSnapshotReserve
	}
	if n >= limit {
		if now >= s.fullNoticeAt {
			s.fullNoticeAt = now + s.config.BufferFullNoticeIntervalMs
			out.send(s.activeRecipients(), protocol.AppendRequ(nil, s.id))
			out.send(s.connectedMembers(), protocol.AppendInfo(nil, s.id, protocol.InfoSnapshotNeeded,
				fmt.Sprintf("message buffer full: %d messages since the last snapshot (MessagesSinceSnapshotMax)", n), protocol.LevelWarning))
		}
		if sender != 0 {
			out.send([]ConnID{sender}, protocol.AppendInfo(nil, s.id, protocol.InfoMessageRejected,
				fmt.Sprintf("your message was not accepted: %d messages since the last snapshot (MessagesSinceSnapshotMax); a snapshot is needed", n), protocol.LevelError))
		}
		out.note(NoteBufferFull, sender, fmt.Sprintf("message rejected: buffer holds %d messages", n))
		return true
	}
	if n >= s.config.MessagesRequestSnapshotFrom {
		headroom := s.config.MessagesSinceSnapshotMax - n
		every := max(1, headroom/100*10)
		if n%every == 0 {
			out.send(s.activeRecipients(), protocol.AppendRequ(nil, s.id))
			if headroom < s.config.MessagesSinceSnapshotMax/10 {
				out.send(s.connectedMembers(), protocol.AppendInfo(nil, s.id, protocol.InfoSnapshotNeeded,
					fmt.Sprintf("%d messages since the last snapshot; the limit is %d", n, s.config.MessagesSinceSnapshotMax), protocol.LevelWarning))
			}
		}
	}
	return false
}

// stamp assigns the next seq and time t to a message, stores it, and sends
// it to every synced connected member.
func (s *Session) stamp(now, t int64, payload json.RawMessage, extra []json.RawMessage, sender ConnID, room room, out *Effects) bool {
	if s.bufferFull(now, sender, 0, room, out) {
		return false
	}
	s.record.Seq++
	seq := s.record.Seq
	s.scratch = protocol.AppendMessage(s.scratch[:0], t, seq, payload, extra)
	data := s.buffer.add(seq, t, s.scratch)
	if cap(s.scratch) > scratchKeepBytesMax {
		s.scratch = nil
	}
	out.Storage.Append = append(out.Storage.Append, StoredMessage{Seq: seq, Data: data})
	out.send(s.activeRecipients(), protocol.AppendRecv(make([]byte, 0, protocol.RecvSize(s.id, data)), s.id, data))
	out.MessagesStamped++
	s.record.LastMessageTime = t
	if len(s.delayed) == 0 {
		s.tickAt = now + s.tickIntervalMs() // ticks are idle heartbeats
	}
	return true
}

// tick sends an idle heartbeat to every synced connected member.
func (s *Session) tick(now int64, out *Effects) {
	s.tickAt = now + s.tickIntervalMs()
	to := s.activeRecipients()
	if len(to) == 0 {
		return
	}
	t := s.advanceTimeAndLease(now, out)
	out.Outbound = append(out.Outbound, Outbound{To: to, Frame: protocol.AppendTick(nil, s.id, t), Tick: true})
	out.TicksSent += len(to)
	s.record.LastTick = t
}

// --- users (docs/protocol.md §10) ---

func (s *Session) userJoined(now int64, m *member) {
	change := userChange{key: m.userKey, user: m.user}
	if i := indexOfUser(s.pendingLeft, change.key); i >= 0 {
		s.pendingLeft = append(s.pendingLeft[:i], s.pendingLeft[i+1:]...)
	} else {
		s.pendingJoined = append(s.pendingJoined, change)
	}
	s.scheduleUsers(now)
}

func (s *Session) userLeft(now int64, m *member) {
	change := userChange{key: m.userKey, user: m.user}
	if i := indexOfUser(s.pendingJoined, change.key); i >= 0 {
		s.pendingJoined = append(s.pendingJoined[:i], s.pendingJoined[i+1:]...)
	} else {
		s.pendingLeft = append(s.pendingLeft, change)
	}
	s.scheduleUsers(now)
}

func indexOfUser(changes []userChange, key string) int {
	for i, change := range changes {
		if change.key == key {
			return i
		}
	}
	return -1
}

func (s *Session) scheduleUsers(now int64) {
	if s.usersAt == never {
		s.usersAt = now + s.config.UsersIntervalMs
	}
}

// userCounts returns active (synced members with a user, including those
// in their leave delay) and total (all synced members).
func (s *Session) userCounts() (active, total int) {
	for _, id := range s.order {
		m := s.members[id]
		if !m.synced {
			continue
		}
		total++
		if m.user != nil {
			active++
		}
	}
	return active, total
}

func (s *Session) flushUsers(now int64, out *Effects) {
	s.usersAt = never
	if len(s.pendingJoined) == 0 && len(s.pendingLeft) == 0 {
		return
	}
	active, total := s.userCounts()
	if active > 0 {
		payload := protocol.UsersPayload(active, total, users(s.pendingJoined), users(s.pendingLeft))
		t := s.advanceTimeAndLease(now, out)
		if !s.stamp(now, t, payload, nil, 0, roomUsers, out) {
			// The buffer is full: keep the changes (a joiner completes its
			// join only when it sees itself announced) and try again.
			s.usersAt = now + s.config.UsersIntervalMs
			return
		}
	}
	s.pendingJoined = nil
	s.pendingLeft = nil
}

func users(changes []userChange) []json.RawMessage {
	if len(changes) == 0 {
		return nil
	}
	values := make([]json.RawMessage, len(changes))
	for i, change := range changes {
		values[i] = change.user
	}
	return values
}
