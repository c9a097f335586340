package host_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// retentionShell is a shell for the deletion tests: sessions in memory, an
// idleness per session, and what it was asked, in order.
type retentionShell struct {
	deletions host.Deletions
	inMemory  map[string]bool
	idle      map[string]bool
	idleErr   error
	// onReserve runs after a successful reservation (what a shell's other
	// goroutines might do meanwhile).
	onReserve func(id string)
	journal   journal
}

func (s *retentionShell) Idle(_ context.Context, id string) (bool, error) {
	s.journal.add("idle? %s", id)
	return s.idle[id], s.idleErr
}

func (s *retentionShell) Reserve(id string) bool {
	reserved := s.deletions.Reserve(id, s.inMemory[id])
	s.journal.add("reserve %s: %v", id, reserved)
	if reserved && s.onReserve != nil {
		s.onReserve(id)
	}
	return reserved
}

func (s *retentionShell) Release(id string) {
	s.journal.add("release %s", id)
	s.deletions.Release(id)
}

func storeWith(t *testing.T, ids ...string) store.Store {
	t.Helper()
	st := memstore.New()
	for _, id := range ids {
		if err := st.Commit(context.Background(), id, store.Batch{Record: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestDeletionsExcludeOpening: a session in memory is not reserved; a
// reserved one is refused until it is released.
func TestDeletionsExcludeOpening(t *testing.T) {
	var d host.Deletions
	if d.Reserve("a", true) {
		t.Fatal("a session in memory was reserved")
	}
	if d.Refuses("a") {
		t.Fatal("a session not reserved is refused")
	}
	if !d.Reserve("a", false) || !d.Refuses("a") {
		t.Fatal("a reserved session is not refused")
	}
	if d.Reserve("a", false) {
		t.Fatal("a session was reserved twice")
	}
	d.Release("a")
	if d.Refuses("a") {
		t.Fatal("a released session is still refused")
	}
}

// TestBeginDeletionChecksAgainAfterReserving: a session that changed
// between the first check and the reservation (it was opened, used and
// ended meanwhile) is released, not deleted.
func TestBeginDeletionChecksAgainAfterReserving(t *testing.T) {
	st := storeWith(t, "s")
	shell := &retentionShell{idle: map[string]bool{"s": true}}
	shell.onReserve = func(id string) { shell.idle[id] = false }
	deletion, err := host.BeginDeletion(context.Background(), st.(host.RetentionStore), shell, "s")
	if err != nil || deletion != nil {
		t.Fatalf("BeginDeletion of a session used meanwhile: %v, %v; want nothing to delete", deletion, err)
	}
	want := []string{"idle? s", "reserve s: true", "idle? s", "release s"}
	if !slices.Equal(shell.journal.lines, want) {
		t.Fatalf("steps %q, want %q", shell.journal.lines, want)
	}
	if shell.deletions.Refuses("s") {
		t.Fatal("the reservation was not released")
	}
}

// TestDeletionRefusesUntilFinished: between BeginDeletion and Finish the
// session is refused; Finish deletes it and releases the reservation.
func TestDeletionRefusesUntilFinished(t *testing.T) {
	ctx := context.Background()
	st := storeWith(t, "s")
	shell := &retentionShell{idle: map[string]bool{"s": true}}
	deletion, err := host.BeginDeletion(ctx, st.(host.RetentionStore), shell, "s")
	if err != nil || deletion == nil {
		t.Fatalf("BeginDeletion of an idle session: %v, %v", deletion, err)
	}
	if !shell.deletions.Refuses("s") {
		t.Fatal("a session being deleted is not refused")
	}
	if _, err := st.LoadSession(ctx, "s"); err != nil {
		t.Fatalf("deleted before Finish: %v", err)
	}
	if err := deletion.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LoadSession(ctx, "s"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after Finish: %v, want deleted", err)
	}
	if shell.deletions.Refuses("s") {
		t.Fatal("still refused after Finish")
	}
}

// TestSweepIdleDeletesOnlyIdleSessionsNotInMemory.
func TestSweepIdleDeletesOnlyIdleSessionsNotInMemory(t *testing.T) {
	ctx := context.Background()
	st := storeWith(t, "busy", "idle", "recent")
	shell := &retentionShell{idle: map[string]bool{"busy": true, "idle": true}, inMemory: map[string]bool{"busy": true}}
	var deleted []string
	err := host.SweepIdle(ctx, st.(host.RetentionStore), shell, func(deletion *host.Deletion) error {
		deleted = append(deleted, deletion.ID())
		return deletion.Finish(ctx)
	})
	if err != nil || !slices.Equal(deleted, []string{"idle"}) {
		t.Fatalf("sweep: %v %v, want idle deleted", deleted, err)
	}
	for _, id := range []string{"busy", "recent"} {
		if _, err := st.LoadSession(ctx, id); err != nil {
			t.Errorf("%s: %v, want kept", id, err)
		}
	}

	shell.idleErr = errors.New("stat failed")
	if err := host.SweepIdle(ctx, st.(host.RetentionStore), shell, func(*host.Deletion) error { return nil }); err == nil {
		t.Fatal("a sweep whose checks failed reported no error")
	}
}
