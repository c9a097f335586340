package host

import (
	"fmt"

	"github.com/metronome-sync/metronome/reflector"
)

// SnapshotObserver is implemented by an Observer that wants to know which
// snapshot each session's stored record references once that record is
// durable: the server and the simulator delete the snapshots it replaced
// (store/snapshotgc), which is safe only from a reference that no crash
// or failed commit can take back. The host calls SnapshotStored
//
//   - from Open, for a session restored from the store with a snapshot;
//   - when it executes the effects of a batch that accepted a SNAP: its
//     commit is durable, and every frame of that batch and of the ones
//     before it (SYNCs naming the snapshots it replaced) has been handed
//     to the connections.
//
// A failed commit is reported to StorageFailed instead: what the store
// then holds is not known. Like the Observer's methods, SnapshotStored is
// called synchronously and must not call back.
type SnapshotObserver interface {
	SnapshotStored(sessionID string, snapshotTime int64, url string)
}

// reportRestoredSnapshot tells a SnapshotObserver the snapshot of a
// session restored from the store.
func (s *Session) reportRestoredSnapshot() {
	observer, ok := s.options.Observer.(SnapshotObserver)
	if record := s.core.Record(); ok && record.SnapshotTime >= 0 {
		observer.SnapshotStored(s.id, record.SnapshotTime, record.SnapshotURL)
	}
}

// reportStoredSnapshot tells a SnapshotObserver the snapshot of the
// record that an executed batch stored, if the batch accepted a SNAP.
func (s *Session) reportStoredSnapshot(out *reflector.Effects) {
	observer, ok := s.options.Observer.(SnapshotObserver)
	if !ok || out.Storage.Record == nil {
		return
	}
	accepted := false
	for _, note := range out.Notes {
		accepted = accepted || note.Kind == reflector.NoteSnapshot
	}
	if !accepted {
		return
	}
	record, err := reflector.DecodeRecord(out.Storage.Record)
	if err != nil {
		panic(fmt.Sprintf("host: session %s: the core stored a record it cannot read: %v", s.id, err))
	}
	observer.SnapshotStored(s.id, record.SnapshotTime, record.SnapshotURL)
}
