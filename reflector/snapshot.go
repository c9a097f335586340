package reflector

import (
	"fmt"

	"github.com/metronome-sync/metronome/protocol"
)

// snap records an uploaded snapshot and trims the message buffer
// (docs/protocol.md §6.5). Unlike the reference, a SNAP whose seq is not the current
// snapshot's or a buffered message's is ignored: accepting it would give
// later joiners a sequence gap.
func (s *Session) snap(now int64, m *member, frame protocol.ClientFrame, out *Effects) {
	if !s.requireIsland(m, protocol.ActionSnap, out) {
		return
	}
	snap, err := protocol.DecodeSnap(frame.Args)
	if err != nil {
		s.reject(m, err, out)
		return
	}
	if snap.Dissident {
		out.note(NoteSnapshotIgnored, m.id, "dissident snapshot ignored: "+snap.URL)
		return
	}
	if snap.Time <= s.record.SnapshotTime {
		out.note(NoteSnapshotIgnored, m.id, fmt.Sprintf("snapshot at time %d is not newer than the current one at %d", snap.Time, s.record.SnapshotTime))
		return
	}
	if current := s.advanceTimeAndLease(now, out); snap.Time > current {
		out.note(NoteSnapshotIgnored, m.id, fmt.Sprintf("snapshot time %d is ahead of the session time %d", snap.Time, current))
		return
	}
	i := s.buffer.index(snap.Seq)
	if i < 0 {
		out.note(NoteSnapshotIgnored, m.id, fmt.Sprintf("snapshot seq %d is not a buffered message", snap.Seq))
		return
	}
	if covered := s.buffer.at(i); snap.Time < covered.time {
		out.note(NoteSnapshotIgnored, m.id, fmt.Sprintf("snapshot time %d is before the time %d of its message %d", snap.Time, covered.time, snap.Seq))
		return
	}
	drop := i + 1
	s.buffer.dropFront(drop)
	out.Storage.DropFront += drop
	s.record.SnapshotTime = snap.Time
	s.record.SnapshotSeq = snap.Seq
	s.record.SnapshotURL = snap.URL
	s.writeRecord(out)
	out.note(NoteSnapshot, m.id, fmt.Sprintf("snapshot at time %d seq %d: %s (%d messages dropped, %d kept)", snap.Time, snap.Seq, snap.URL, drop, s.buffer.len()))
	s.trySync(now, out)
}

// save stores a persisted-data pointer (docs/protocol.md §6.6). It does not change the
// running session; a fresh session with the same persistentId starts from it.
func (s *Session) save(m *member, frame protocol.ClientFrame, out *Effects) {
	if !s.requireIsland(m, protocol.ActionSave, out) {
		return
	}
	save, err := protocol.DecodeSave(frame.Args)
	if err != nil {
		s.reject(m, err, out)
		return
	}
	if s.record.AppID == "" || s.record.PersistentID == "" {
		s.closeMember(m, protocol.CloseBadAppID, "bad appId: SAVE needs a session joined with appId and persistentId", out)
		return
	}
	if save.Dissident {
		out.note(NoteRejected, m.id, "dissident SAVE ignored")
		return
	}
	value := protocol.AppendJSString([]byte(`{"url":`), save.URL)
	value = append(value, '}')
	out.Storage.Pointers = append(out.Storage.Pointers, Pointer{Key: pointerKey(s.record.AppID, s.record.PersistentID), Value: value})
	out.note(NoteSave, m.id, "persisted data saved: "+save.URL)
}
