package server

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/snapshotgc"
)

// # Deleting old snapshots and the files of deleted sessions
//
// Every SNAP leaves a snapshot file behind, so without deletions a
// session's snapshot directory (snapshotgc.SnapshotDirectory) only grows.
// The rule of what may go is store/snapshotgc's (pure, and shared with
// the simulator): a snapshot older than the one the session references
// goes once the SNAP that replaced it is SnapshotKeepMin old, so that
// clients whose SYNC named it can still download it. Persisted data
// (apps/<appId>/<persistentId>/save/) and Data-API files (.../data/)
// belong to the application, not to a session: they are never deleted.
//
// The collector learns each session's references where they are durable:
//
//   - from the session host (host.SnapshotObserver): a session restored
//     from the store, and a batch that accepted a SNAP once its effects
//     are executed (its commit is durable); then the session's snapshots
//     are collected in the background;
//   - the hourly sweep, for a session not in memory that it knows nothing
//     of, reads the stored record (readReference). A record read while
//     the session was in memory, or across a storage failure, could hold
//     a SNAP that never became durable: such a read is dropped.
//
// A failed commit may leave the stored reference at either value, so it
// makes the collector forget the session (storageFailed); so do a
// quarantine and a deletion. Forgetting only delays deletions.
//
// Deletions happen:
//
//   - after an accepted SNAP and a restore (snapshotStored → run →
//     collectSession);
//   - before an upload is refused for its session's quota
//     (files_quota.go);
//   - in the sweep every RetentionSweepInterval (retention.go): every
//     session with old snapshots (sessions not loaded since a restart,
//     snapshots still within the margin at their last SNAP); the snapshot
//     directories of sessions that are not stored (deleted while an upload
//     ran, quarantined, or never created: anyone may PUT there), once
//     their files are older than SessionRetention;
//   - when the retention deletes a session: all of its snapshot files,
//     before its record and messages.
//
// Every deletion holds the path's lock (fileLocks, as PUTs do) and is
// counted in fileUsage. A path whose lock is busy (an upload of it is
// running) is skipped until the next time.

// deleteLockWaitMax bounds how long a deletion waits for a path's lock.
const deleteLockWaitMax = time.Second

// snapshotCollector deletes old snapshots and the snapshot files of
// deleted sessions. Its methods may be called on nil (a store without a
// file catalog: nothing is deleted).
type snapshotCollector struct {
	server  *Server
	catalog store.FileCatalog
	// records reads a stored record alone (nil: the sweep cannot).
	records store.RecordReader
	// keepMs is SnapshotKeepMin; 0: old snapshots are never collected
	// (the files of deleted sessions still are).
	keepMs int64

	mu         sync.Mutex
	references snapshotgc.References
	// failures counts storage failures, so that a record read across one
	// is dropped (readReference).
	failures uint64
	// pending are the sessions to collect in the background (run).
	pending map[string]bool
	wake    chan struct{}
}

func newSnapshotCollector(server *Server, catalog store.FileCatalog) *snapshotCollector {
	c := &snapshotCollector{server: server, catalog: catalog, pending: make(map[string]bool), wake: make(chan struct{}, 1)}
	c.records, _ = server.store.(store.RecordReader)
	if server.config.SnapshotKeepMin > 0 {
		c.keepMs = max(server.config.SnapshotKeepMin.Milliseconds(), 1)
	}
	return c
}

// collecting reports whether old snapshots are collected.
func (c *snapshotCollector) collecting() bool { return c != nil && c.keepMs > 0 }

// snapshotStored notes the snapshot a session's durable record
// references (host.SnapshotObserver: a session restored from the store,
// or a batch that accepted a SNAP, executed) and schedules a collection
// of the session in the background.
func (c *snapshotCollector) snapshotStored(session string, snapshotTime int64, url string) {
	if !c.collecting() || snapshotTime < 0 {
		return
	}
	now := time.Now().UnixMilli()
	c.mu.Lock()
	c.references.Observe(session, snapshotTime, snapshotgc.NameOfURL(url), now)
	c.pending[session] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// storageFailed: a commit of the session failed, and what is stored of
// it is not known; a record read meanwhile is not trusted either.
func (c *snapshotCollector) storageFailed(session string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	c.references.Forget(session)
}

// forget drops the session's references (quarantined, or deleted).
func (c *snapshotCollector) forget(session string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.references.Forget(session)
}

// run collects the sessions that snapshotStored scheduled, one at a
// time, until stop closes, which also ends a collection in progress.
func (c *snapshotCollector) run(stop <-chan struct{}) {
	ctx, cancel := stopContext(stop)
	defer cancel()
	for {
		select {
		case <-stop:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		sessions := slices.Sorted(maps.Keys(c.pending))
		clear(c.pending)
		c.mu.Unlock()
		for _, session := range sessions {
			select {
			case <-stop:
				return
			default:
			}
			c.collectSession(ctx, session)
		}
	}
}

// collectSession deletes what snapshotgc.Collectable allows now in the
// session's snapshot directories, and returns how many files went.
func (c *snapshotCollector) collectSession(ctx context.Context, session string) int {
	if !c.collecting() {
		return 0
	}
	c.mu.Lock()
	history := c.references.History(session)
	c.mu.Unlock()
	if len(history) == 0 {
		return 0
	}
	nowMs := time.Now().UnixMilli()
	deleted, bytes := 0, int64(0)
	for _, directory := range c.server.fileUsage.directoriesOf(session) {
		files, err := c.list(ctx, directory)
		if err != nil {
			c.server.logger.Warn("snapshot collection: listing failed", "session", session, "directory", directory, "err", err)
			continue
		}
		for _, file := range snapshotgc.Collectable(files, history, nowMs, c.keepMs) {
			if freed, ok := c.deleteFile(ctx, file.Path, nil); ok {
				deleted++
				bytes += freed
			}
		}
	}
	c.mu.Lock()
	c.references.Collected(session, nowMs, c.keepMs)
	c.mu.Unlock()
	if deleted > 0 {
		c.server.logger.Info("old snapshots deleted", "session", session, "files", deleted, "bytes", bytes, "keep_min", c.server.config.SnapshotKeepMin)
	}
	return deleted
}

// list returns the files under directory.
func (c *snapshotCollector) list(ctx context.Context, directory string) ([]snapshotgc.File, error) {
	var files []snapshotgc.File
	err := c.catalog.WalkFiles(ctx, directory, func(info store.FileInfo) error {
		files = append(files, snapshotgc.File{Path: info.Path, Bytes: info.Bytes, ModifiedMs: info.Modified.UnixMilli()})
		return nil
	})
	return files, err
}

// deleteFile deletes the file at path under its lock, if it still
// satisfies keep (nil: any file), counts it, and returns its size and
// whether it was deleted.
func (c *snapshotCollector) deleteFile(ctx context.Context, path string, still func(store.FileInfo) bool) (int64, bool) {
	lockCtx, cancel := context.WithTimeout(ctx, deleteLockWaitMax)
	defer cancel()
	unlock, err := c.server.fileLocks.lock(lockCtx, path)
	if err != nil {
		c.server.logger.Debug("file not deleted: an upload of it is running", "path", path)
		return 0, false
	}
	defer unlock()
	info, err := c.catalog.StatFile(ctx, path)
	if err == nil && still != nil && !still(info) {
		return 0, false
	}
	if err == nil {
		err = c.catalog.DeleteFile(ctx, path)
	}
	if errors.Is(err, store.ErrNotFound) {
		return 0, false
	}
	if err != nil {
		c.server.logger.Warn("deleting a snapshot file failed", "path", path, "err", err)
		return 0, false
	}
	c.server.fileUsage.add(path, -info.Bytes, -1)
	c.server.metrics.snapshotsCollected.Add(1)
	c.server.logger.Debug("snapshot file deleted", "path", path, "bytes", info.Bytes)
	return info.Bytes, true
}

// deleteSessionFiles deletes every file in the session's snapshot
// directories (the retention deletes the session) and returns how many.
func (c *snapshotCollector) deleteSessionFiles(ctx context.Context, session string) int {
	if c == nil {
		return 0
	}
	defer c.forget(session)
	return c.deleteAll(ctx, session, nil)
}

// deleteAll deletes the files of the session's snapshot directories that
// satisfy still (nil: all).
func (c *snapshotCollector) deleteAll(ctx context.Context, session string, still func(store.FileInfo) bool) int {
	deleted := 0
	for _, directory := range c.server.fileUsage.directoriesOf(session) {
		files, err := c.list(ctx, directory)
		if err != nil {
			c.server.logger.Warn("deleting a session's snapshots: listing failed", "session", session, "directory", directory, "err", err)
			continue
		}
		for _, file := range files {
			if still != nil && !still(store.FileInfo{Path: file.Path, Bytes: file.Bytes, Modified: time.UnixMilli(file.ModifiedMs)}) {
				continue
			}
			if _, ok := c.deleteFile(ctx, file.Path, still); ok {
				deleted++
			}
		}
	}
	return deleted
}

// readReference reads the stored record of a session not in memory and
// notes its snapshot, unless the session was in memory or a storage
// failure happened meanwhile (the record could hold a SNAP whose commit
// did not become durable), or something is known of it already.
func (c *snapshotCollector) readReference(ctx context.Context, session string) {
	if c.records == nil {
		return
	}
	c.mu.Lock()
	failures := c.failures
	c.mu.Unlock()
	if c.server.inMemory(session) {
		return
	}
	encoded, err := c.records.SessionRecord(ctx, session)
	if err != nil {
		return
	}
	record, err := reflector.DecodeRecord(encoded)
	if err != nil || record.SnapshotTime < 0 || c.server.inMemory(session) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failures != failures || c.references.Has(session) {
		return
	}
	c.references.Observe(session, record.SnapshotTime, snapshotgc.NameOfURL(record.SnapshotURL), time.Now().UnixMilli())
}

// sweep collects the old snapshots of every session that has some, and
// deletes the snapshot files of sessions that are not stored once they
// are older than SessionRetention. It returns how many files went.
func (c *snapshotCollector) sweep(ctx context.Context, now time.Time) int {
	if c == nil {
		return 0
	}
	s := c.server
	var stored map[string]bool
	if s.config.SessionRetention > 0 {
		if ids, err := s.store.Sessions(ctx); err == nil {
			stored = make(map[string]bool, len(ids))
			for _, id := range ids {
				stored[id] = true
			}
		}
	}
	// The files of each session, over all its snapshot directories.
	files := make(map[string]int64)
	var sessions []string
	for _, entry := range s.fileUsage.snapshotDirectories() {
		if entry.session == "" {
			continue
		}
		if _, listed := files[entry.session]; !listed {
			sessions = append(sessions, entry.session)
		}
		files[entry.session] += entry.files
	}
	deleted := 0
	for _, session := range sortedStrings(sessions) {
		if ctx.Err() != nil {
			break
		}
		inMemory := s.inMemory(session)
		c.mu.Lock()
		known := c.references.Has(session)
		c.mu.Unlock()
		switch {
		case stored != nil && !stored[session] && !inMemory:
			deleted += c.deleteAll(ctx, session, func(info store.FileInfo) bool {
				return now.Sub(info.Modified) >= s.config.SessionRetention
			})
			c.forget(session)
		case c.collecting() && (files[session] > 1 || known):
			if !known && !inMemory {
				c.readReference(ctx, session)
			}
			deleted += c.collectSession(ctx, session)
		}
	}
	if deleted > 0 {
		s.logger.Info("sweep deleted snapshot files", "files", deleted)
	}
	return deleted
}

// inMemory reports whether the server has the session in memory.
func (s *Server) inMemory(session string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[session] != nil
}

// measureStorage measures what the store holds besides the files (for
// metronome_storage_bytes).
func (s *Server) measureStorage(ctx context.Context) {
	reporter, ok := s.store.(store.UsageReporter)
	if !ok {
		return
	}
	usage, err := reporter.StorageUsage(ctx)
	if err != nil {
		s.logger.Warn("measuring the storage failed", "err", err)
		return
	}
	s.metrics.storageSessions.Store(usage.Sessions)
	s.metrics.storageJournal.Store(usage.Journal)
	s.metrics.storageQuarantine.Store(usage.Quarantine)
	s.metrics.storageMeasured.Store(true)
}
