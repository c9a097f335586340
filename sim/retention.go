package sim

import (
	"context"
	"fmt"

	"github.com/metronome-sync/metronome/host"
)

// The retention fault runs the server's sweep of idle sessions through the
// host's code (host/retention.go: reserve, check again, delete, release)
// against the simulated store, at random moments of the fault phase, with
// a retention of seconds instead of days. A deletion takes up to
// Scenario.RetentionDeleteMaxMs: connections that arrive meanwhile for the
// session are refused (4003) by the same rule the server applies, and the
// clients rejoin a fresh session on a new timeline. The store tells the
// checker of every deletion (so a new timeline is accepted for that
// session only) and reports a deletion of a session in memory as a
// violation.

// retentionShell is the simulated reflector process as one sweep's
// host.RetentionShell.
type retentionShell struct{ r *simReflector }

// Idle: the session's last commit is older than the scenario's retention.
func (shell retentionShell) Idle(_ context.Context, id string) (bool, error) {
	modified, ok := shell.r.store.modifiedAt(id)
	return ok && shell.r.w.now-modified >= shell.r.w.scenario.RetentionMs, nil
}

// Reserve: one thread, so nothing to lock; the process has the session in
// memory or not.
func (shell retentionShell) Reserve(id string) bool {
	return shell.r.deletions.Reserve(id, shell.r.sessions[id] != nil)
}

func (shell retentionShell) Release(id string) { shell.r.deletions.Release(id) }

// sweepRetention runs the server's sweep (host.SweepIdle) and finishes
// each deletion after a delay of its own.
func (r *simReflector) sweepRetention() {
	if !r.up {
		return
	}
	if r.deferred(r.sweepRetention) {
		return
	}
	w := r.w
	ctx := context.Background()
	w.tracef("reflector: retention sweep, retention %d ms", w.scenario.RetentionMs)
	err := host.SweepIdle(ctx, r.store, retentionShell{r}, func(deletion *host.Deletion) error {
		w.count(FaultRetention)
		after := w.rand.Between(0, w.scenario.RetentionDeleteMaxMs)
		w.tracef("reflector: session %s idle since %d ms: deleting it (takes %d ms)", deletion.ID(), r.modifiedAt(deletion.ID()), after)
		r.deleting = append(r.deleting, deletion)
		incarnation := r.incarnation
		var finish func()
		finish = func() {
			if !r.up || r.incarnation != incarnation {
				return // down() decided
			}
			if r.deferred(finish) {
				return
			}
			r.finishDeletion(deletion)
		}
		w.queue.schedule(w.now+after, finish)
		return nil
	})
	if err != nil {
		w.violate(InvariantLiveness, fmt.Sprintf("retention sweep: %v", err))
	}
}

// finishDeletion deletes the session's storage and releases it.
func (r *simReflector) finishDeletion(deletion *host.Deletion) {
	for i, d := range r.deleting {
		if d == deletion {
			r.deleting = append(r.deleting[:i], r.deleting[i+1:]...)
			break
		}
	}
	r.deleteSessionSnapshots(deletion.ID())
	if err := deletion.Finish(context.Background()); err != nil {
		r.w.violate(InvariantLiveness, fmt.Sprintf("session %s: retention: %v", deletion.ID(), err))
		return
	}
	r.w.tracef("reflector: session %s deleted (retention)", deletion.ID())
}

func (r *simReflector) modifiedAt(id string) int64 {
	modified, _ := r.store.modifiedAt(id)
	return modified
}
