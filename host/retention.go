package host

import (
	"context"
	"errors"

	"github.com/metronome-sync/metronome/store"
)

// # Deleting idle sessions
//
// A shell deletes the stored sessions that have not changed for its
// retention and that it does not have in memory (server/retention.go runs
// a sweep every hour; the simulator runs sweeps under faults). The danger
// is a connection that arrives for a session while its storage is being
// deleted. If the shell opened the session then, it would load storage
// that is going away, and its clients would go on in a session whose
// stored history disappears beneath it: neither the old session nor a new
// one. The rule every shell follows, with this file's code:
//
//  1. Reserve: under the lock that guards the shell's sessions in memory,
//     a session the shell has in memory is not reserved, and a reserved
//     session is not opened (Deletions.Refuses): the shell answers its
//     connections with protocol.CloseReconnect, and the client comes back.
//  2. Check again that the session is idle: after the reservation nothing
//     can change it, so the answer holds until it is deleted (a session
//     opened, used and ended between the first check and the reservation
//     is not deleted).
//  3. Delete its storage, then release the reservation.
//
// So a client rejoining a session at any moment of a sweep finds either
// the old session intact — its timeline and all its messages — because it
// was opened before the reservation (which then fails), or, after being
// asked to reconnect, nothing stored: a fresh session on a new timeline,
// which its clients load from scratch (docs/protocol.md §7.1).

// RetentionStore is what deleting idle sessions needs of a store
// (store/diskstore and store/memstore have it).
type RetentionStore interface {
	// Sessions lists the stored session ids.
	Sessions(ctx context.Context) ([]string, error)
	// DeleteSession removes a session's record and messages.
	DeleteSession(ctx context.Context, sessionID string) error
}

// RetentionShell is what a deletion needs of the shell that runs it.
type RetentionShell interface {
	// Idle reports whether the stored session has not changed for longer
	// than the retention (the shell has the clock; false for a session no
	// longer stored).
	Idle(ctx context.Context, sessionID string) (bool, error)
	// Reserve calls Deletions.Reserve under the lock that guards the
	// shell's sessions in memory, saying whether the shell has the
	// session in memory (or is stopping, and so cannot promise not to
	// open it).
	Reserve(sessionID string) bool
	// Release calls Deletions.Release under the same lock.
	Release(sessionID string)
}

// Deletions is the set of sessions being deleted. It is not safe for
// concurrent use: a shell guards it with the lock that guards its sessions
// in memory, so that Reserve and Refuses are atomic with opening a
// session.
type Deletions struct {
	deleting map[string]bool
	// bugs are switched on only by the simulator's self-test (bugs.go).
	bugs bugSwitches
}

// Reserve marks sessionID as being deleted, unless inMemory (the shell has
// the session in memory, or is stopping) or it is marked already; it
// reports whether it marked it.
func (d *Deletions) Reserve(sessionID string, inMemory bool) bool {
	if (inMemory && !d.bugs.deleteInMemory) || d.deleting[sessionID] {
		return false
	}
	if d.deleting == nil {
		d.deleting = make(map[string]bool)
	}
	d.deleting[sessionID] = true
	return true
}

// Refuses reports whether the shell must not open sessionID now: it is
// being deleted. The shell answers the connection with
// protocol.CloseReconnect instead; the client's retry finds nothing stored
// and starts a new session.
func (d *Deletions) Refuses(sessionID string) bool {
	return d.deleting[sessionID] && !d.bugs.openWhileDeleting
}

// Release removes the mark of Reserve.
func (d *Deletions) Release(sessionID string) { delete(d.deleting, sessionID) }

// Deletion is a session reserved for deletion (BeginDeletion).
type Deletion struct {
	store    RetentionStore
	shell    RetentionShell
	id       string
	finished bool
}

// BeginDeletion reserves the stored session sessionID for deletion if it
// is idle and not in the shell's memory (steps 1 and 2 above); nil if it
// is not to be deleted now. The shell then calls Finish: at once (the
// server), or after a simulated delay (the simulator: connections that
// arrive meanwhile are refused).
func BeginDeletion(ctx context.Context, st RetentionStore, shell RetentionShell, sessionID string) (*Deletion, error) {
	// A first check without the reservation, so that the sweep refuses no
	// connection to a session in use.
	if idle, err := shell.Idle(ctx, sessionID); err != nil || !idle {
		return nil, err
	}
	if !shell.Reserve(sessionID) {
		return nil, nil
	}
	idle, err := shell.Idle(ctx, sessionID)
	if err != nil || !idle {
		shell.Release(sessionID)
		return nil, err
	}
	return &Deletion{store: st, shell: shell, id: sessionID}, nil
}

// ID returns the session id.
func (d *Deletion) ID() string { return d.id }

// Finish deletes the session's storage and releases the reservation. It
// does it once; later calls return nil.
func (d *Deletion) Finish(ctx context.Context) error {
	if d.finished {
		return nil
	}
	d.finished = true
	err := d.store.DeleteSession(ctx, d.id)
	d.shell.Release(d.id)
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	return err
}

// SweepIdle begins the deletion of every stored session that is idle and
// not in the shell's memory, and hands each to finish, which must call
// its Finish: at once (the server), or later (the simulator, so that
// connections meet the session while it is being deleted). It goes on
// after an error and returns them all.
func SweepIdle(ctx context.Context, st RetentionStore, shell RetentionShell, finish func(*Deletion) error) error {
	ids, err := st.Sessions(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		deletion, err := BeginDeletion(ctx, st, shell, id)
		if err == nil && deletion != nil {
			err = finish(deletion)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
