package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// TestRetentionDeletesIdleSessions: a sweep deletes the stored sessions
// unchanged for longer than SessionRetention, but not one in memory nor
// one changed recently; a connection that arrives while its session is
// being deleted is asked to reconnect.
func TestRetentionDeletesIdleSessions(t *testing.T) {
	st := memstore.New()
	server := startServer(t, Config{Store: st, SessionRetention: 24 * time.Hour})
	ctx := context.Background()
	for _, id := range []string{"idle1", "idle2"} {
		if err := st.Commit(ctx, id, store.Batch{Record: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	live := dialSession(t, server.Addr(), "live", "v1")
	live.join()

	if deleted, err := server.sweepRetention(ctx, time.Now().Add(time.Hour)); err != nil || deleted != 0 {
		t.Fatalf("a sweep before the retention: deleted %d, %v; want none", deleted, err)
	}
	deleted, err := server.sweepRetention(ctx, time.Now().Add(25*time.Hour))
	if err != nil || deleted != 2 {
		t.Fatalf("a sweep after the retention: deleted %d, %v; want idle1 and idle2", deleted, err)
	}
	for _, id := range []string{"idle1", "idle2"} {
		if _, err := st.LoadSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after the sweep: %v, want deleted", id, err)
		}
	}
	if _, err := st.LoadSession(ctx, "live"); err != nil {
		t.Errorf("the session in memory was deleted: %v", err)
	}
	if got := server.metrics.sessionsExpired.Load(); got != 2 {
		t.Errorf("metronome_sessions_expired_total %d, want 2", got)
	}

	sweep := &retentionSweep{server: server}
	if sweep.Reserve("live") {
		t.Fatal("a session in memory was reserved for deletion")
	}
	if !sweep.Reserve("gone") {
		t.Fatal("reserving a session not in memory for deletion refused")
	}
	late := dialSession(t, server.Addr(), "gone", "v2")
	late.expectClose(4003, "please reconnect")
	sweep.Release("gone")
	again := dialSession(t, server.Addr(), "gone", "v2")
	again.join()
}
