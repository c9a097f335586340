package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/store"
)

// # Retention of idle sessions
//
// Every session id anyone invents leaves its record and messages in the
// store for good, unless something removes them. The server deletes a
// session whose stored data has not changed for SessionRetention (default
// DefaultSessionRetention) and that it does not have in memory: a sweep
// runs every RetentionSweepInterval over the stored sessions. A session in
// memory is never deleted (it changes its record at least every time
// lease). How a deletion excludes a connection that arrives for the same
// session is the host's (host/retention.go, shared with the simulator,
// which races rejoins against deletions): the session is reserved under
// s.mu, the lock route opens sessions under, and a connection that
// arrives meanwhile is asked to reconnect (4003); it then finds nothing
// stored and starts a new session. Stores that cannot tell when a session
// changed (no SessionModified) keep everything.
//
// A deleted session's snapshot files go with it, before its record and
// messages, while the session is still reserved (snapshotgc.go); its
// persisted data and Data-API files stay: they belong to the application
// and outlive its sessions.

// sessionModified is implemented by stores that know when a session's
// stored data last changed (store/diskstore, store/memstore).
type sessionModified interface {
	SessionModified(ctx context.Context, sessionID string) (time.Time, error)
}

// retentionStore is what a sweep needs of the store.
type retentionStore interface {
	sessionModified
	host.RetentionStore
}

// runSweeps measures the storage at once, then sweeps every
// RetentionSweepInterval until stop closes, which also ends a sweep in
// progress.
func (s *Server) runSweeps(stop <-chan struct{}) {
	defer s.background.Done()
	ctx, cancel := stopContext(stop)
	defer cancel()
	s.measureStorage(ctx)
	ticker := time.NewTicker(s.config.RetentionSweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-ticker.C:
			s.sweep(ctx, now)
		}
	}
}

// stopContext returns a context that is cancelled when stop closes (or
// cancel is called), so that a background loop's work in progress ends with
// the loop (runSweeps, snapshotCollector.run).
func stopContext(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// sweep deletes idle sessions (the retention), old snapshots and the
// snapshot files of sessions no longer stored (snapshotgc.go), then
// measures the storage for metronome_storage_bytes.
func (s *Server) sweep(ctx context.Context, now time.Time) {
	if deleted, err := s.sweepRetention(ctx, now); err != nil {
		s.logger.Warn("retention sweep incomplete", "deleted", deleted, "err", err)
	}
	s.snapshots.sweep(ctx, now)
	s.measureStorage(ctx)
}

// sweepRetention deletes the stored sessions idle for longer than
// SessionRetention at now that are not in memory, and returns how many.
func (s *Server) sweepRetention(ctx context.Context, now time.Time) (int, error) {
	st, ok := s.store.(retentionStore)
	if !ok || s.config.SessionRetention < 0 {
		return 0, nil
	}
	sweep := &retentionSweep{server: s, store: st, now: now, modified: make(map[string]time.Time)}
	deleted := 0
	err := host.SweepIdle(ctx, st, sweep, func(deletion *host.Deletion) error {
		// The snapshots first, while the session is reserved: a new
		// session of the same id cannot have uploaded any yet.
		files := s.snapshots.deleteSessionFiles(ctx, deletion.ID())
		if err := deletion.Finish(ctx); err != nil {
			return err
		}
		deleted++
		s.metrics.sessionsExpired.Add(1)
		s.logger.Info("session deleted: idle for longer than the retention", "session", deletion.ID(),
			"last_change", sweep.lastChange(deletion.ID()).UTC().Format(time.RFC3339), "retention", s.config.SessionRetention,
			"snapshot_files", files)
		return nil
	})
	return deleted, err
}

// retentionSweep is the server as one sweep's host.RetentionShell: its
// clock is the sweep's time, its sessions in memory are s.sessions.
type retentionSweep struct {
	server *Server
	store  retentionStore
	now    time.Time

	mu       sync.Mutex
	modified map[string]time.Time // for the log line
}

func (r *retentionSweep) Idle(ctx context.Context, id string) (bool, error) {
	modified, err := r.store.SessionModified(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	r.modified[id] = modified
	r.mu.Unlock()
	return r.now.Sub(modified) >= r.server.config.SessionRetention, nil
}

// Reserve marks a session as being deleted unless it is in memory or the
// server is shutting down; route refuses it meanwhile.
func (r *retentionSweep) Reserve(id string) bool {
	s := r.server
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deletions.Reserve(id, s.sessions[id] != nil || s.closing)
}

func (r *retentionSweep) Release(id string) {
	s := r.server
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deletions.Release(id)
}

func (r *retentionSweep) lastChange(id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.modified[id]
}
