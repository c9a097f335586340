package server

import (
	"context"
	"errors"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// # Retention of idle sessions
//
// Every session id anyone invents leaves its record and messages in the
// store for good, unless something removes them. The server deletes a
// session whose stored data has not changed for SessionRetention (default
// DefaultSessionRetention) and that has no connection: a sweep runs every
// RetentionSweepInterval over the stored sessions. A session in memory is
// never deleted (it changes its record at least every time lease). While
// a session is being deleted it is marked, and a connection that arrives
// for it meanwhile is asked to reconnect (4003): it then finds nothing
// stored and starts a new session. Stores that cannot tell when a session
// changed (no SessionModified) keep everything.

// sessionModified is implemented by stores that know when a session's
// stored data last changed (store/diskstore, store/memstore).
type sessionModified interface {
	SessionModified(ctx context.Context, sessionID string) (time.Time, error)
}

// retentionStore is what a sweep needs of the store.
type retentionStore interface {
	sessionModified
	Sessions(ctx context.Context) ([]string, error)
	DeleteSession(ctx context.Context, sessionID string) error
}

// runRetention sweeps every RetentionSweepInterval until stop closes.
func (s *Server) runRetention(stop <-chan struct{}) {
	ticker := time.NewTicker(s.config.RetentionSweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-ticker.C:
			if deleted, err := s.sweepRetention(context.Background(), now); err != nil {
				s.logger.Warn("retention sweep incomplete", "deleted", deleted, "err", err)
			}
		}
	}
}

// sweepRetention deletes the stored sessions idle for longer than
// SessionRetention at now that are not in memory, and returns how many.
func (s *Server) sweepRetention(ctx context.Context, now time.Time) (int, error) {
	st, ok := s.store.(retentionStore)
	if !ok || s.config.SessionRetention < 0 {
		return 0, nil
	}
	ids, err := st.Sessions(ctx)
	if err != nil {
		return 0, err
	}
	deleted := 0
	var errs []error
	for _, id := range ids {
		modified, err := st.SessionModified(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if now.Sub(modified) < s.config.SessionRetention || !s.markDeleting(id) {
			continue
		}
		err = st.DeleteSession(ctx, id)
		s.unmarkDeleting(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
		s.metrics.sessionsExpired.Add(1)
		s.logger.Info("session deleted: idle for longer than the retention", "session", id,
			"last_change", modified.UTC().Format(time.RFC3339), "retention", s.config.SessionRetention)
	}
	return deleted, errors.Join(errs...)
}

// markDeleting marks a session that is not in memory as being deleted,
// so that route refuses it meanwhile; false if it is in memory.
func (s *Server) markDeleting(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[id] != nil || s.closing {
		return false
	}
	if s.deleting == nil {
		s.deleting = make(map[string]bool)
	}
	s.deleting[id] = true
	return true
}

func (s *Server) unmarkDeleting(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.deleting, id)
}
