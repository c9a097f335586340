package sim

import (
	"fmt"
	"strings"

	"github.com/metronome-sync/metronome/store/snapshotgc"
)

// The reflector deletes replaced snapshots from the simulated file server
// as the server does (server/snapshotgc.go), by the same rule
// (store/snapshotgc): it remembers each session's snapshot references
// where the session host reports them durable (host.SnapshotObserver: a
// session restored from the store, a flush that accepted a SNAP, once it
// is executed), forgets them when a commit fails or the data is
// quarantined, and at each report deletes what snapshotgc.Collectable
// allows, with the scenario's keep margin. The retention deletes a
// session's snapshots with the session. The process's memory of
// references is lost at every crash and restart.
//
// The check is the client's: a SYNC that names a snapshot the reflector
// deleted is a violation of join correctness (the JavaScript client's
// download fails, and it stops with 4200). Not modelled: the server's
// hourly sweep (it reads stored records of sessions not in memory; here
// a session's old snapshots wait for its next SNAP) and the upload quotas.

// deletedFile is why and when the reflector deleted a file.
type deletedFile struct {
	atMs int64
	why  string
}

// snapshotPrefix is the URL prefix of a session's snapshots (what
// clientFiles.Upload builds).
func snapshotPrefix(session string) string { return "sim://snapshots/" + session + "/" }

// snapshotKeepMs is the keep margin of this run (0 with the bug that
// deletes a replaced snapshot as soon as the SNAP that replaced it is
// durable).
func (w *World) snapshotKeepMs() int64 {
	if w.options.Bug == BugSnapshotKeepNone {
		return 0
	}
	return w.scenario.SnapshotKeepMs
}

// collectingSnapshots reports whether the reflector deletes replaced
// snapshots in this run (the snapshot fault is on).
func (w *World) collectingSnapshots() bool { return w.scenario.SnapshotKeepMs > 0 }

// snapshotStored notes the snapshot a session's durable record references
// (host.SnapshotObserver: restored, or a SNAP's batch executed) and
// collects what it allows now.
func (r *simReflector) snapshotStored(session string, snapshotTime int64, url string) {
	if snapshotTime < 0 || !r.w.collectingSnapshots() {
		return
	}
	r.references.Observe(session, snapshotTime, snapshotgc.NameOfURL(url), r.w.now)
	r.collectSnapshots(session)
}

// collectSnapshots deletes the session's snapshots that
// snapshotgc.Collectable allows now.
func (r *simReflector) collectSnapshots(session string) {
	w := r.w
	keep := w.snapshotKeepMs()
	var files []snapshotgc.File
	for _, url := range sortedKeys(w.files) {
		if strings.HasPrefix(url, snapshotPrefix(session)) {
			files = append(files, snapshotgc.File{Path: url, Bytes: int64(len(w.files[url])), ModifiedMs: w.fileStoredAt[url]})
		}
	}
	for _, file := range snapshotgc.Collectable(files, r.references.History(session), w.now, keep) {
		w.deleteFile(file.Path, fmt.Sprintf("replaced for %d ms or more", keep))
	}
	r.references.Collected(session, w.now, keep)
}

// deleteSessionSnapshots deletes every snapshot of a session the
// retention deletes.
func (r *simReflector) deleteSessionSnapshots(session string) {
	for _, url := range sortedKeys(r.w.files) {
		if strings.HasPrefix(url, snapshotPrefix(session)) {
			r.w.deleteFile(url, "deleted with its session by the retention")
		}
	}
	r.references.Forget(session)
}

func (w *World) deleteFile(url, why string) {
	delete(w.files, url)
	w.deletedFiles[url] = deletedFile{atMs: w.now, why: why}
	w.stats.SnapshotsDeleted++
	w.tracef("reflector: snapshot %s deleted: %s", url, why)
}
