package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/store"
)

// Ownership of a session is a key of the owners bucket (one per session),
// claimed with KV Create (succeeds only if the key does not exist, or was
// deleted or expired) and renewed with KV Update at the revision last seen
// (compare-and-set). The bucket's TTL expires a lease that is not renewed;
// the clock that decides is the server's, never a claimant's.
//
// The epoch of a lease is the revision of the Create that claimed it. KV
// revisions are the bucket stream's sequences, which only grow, also across
// expiries and deletions that remove the key: a later claim always has a
// higher epoch, with no counter to keep.
//
// A lease tells a node whether to serve a session; it does not protect the
// session's data. That is the fencing of Commit (ErrFenced): a node whose
// lease ran out unnoticed still cannot append behind its successor's back.

// ErrLeaseHeld is returned by Claim when another owner holds the lease.
var ErrLeaseHeld = errors.New("jsstore: session is owned by another node")

// ErrLeaseLost is returned by Renew and Release when the lease changed
// since the caller's revision: it expired, was released, or was claimed by
// another owner. The caller must stop serving the session.
var ErrLeaseLost = errors.New("jsstore: lease lost")

// Lease is one owner's claim on a session.
type Lease struct {
	Session string
	Owner   string
	// Address is where the owner serves its clients (Options.Address of
	// its Store): other nodes forward the session's clients there.
	Address string
	// Epoch is the revision of the claim; it grows with every new claim.
	Epoch uint64
	// Revision is the revision of the last claim or renewal: Renew and
	// Release need it.
	Revision uint64
	// Renewed is when the claimant sent its last acknowledged claim or
	// renewal (its own clock). The server wrote it after that, so the
	// lease lasts at least Options.LeaseTTL from Renewed (less any drift
	// of the claimant's clock against the server's during the TTL).
	Renewed time.Time
}

// leaseValue is what the owners bucket holds for a session.
type leaseValue struct {
	Owner string `json:"owner"`
	// Address is Options.Address of the owner's Store.
	Address string `json:"address,omitempty"`
	// Epoch is 0 in the claim itself (its revision is the epoch) and the
	// claim's revision in renewals.
	Epoch uint64 `json:"epoch,omitempty"`
}

// Claim makes owner the owner of the session if nobody holds it. It fails
// with an error wrapping ErrLeaseHeld, naming the holder, otherwise.
func (s *Store) Claim(ctx context.Context, sessionID, owner string) (Lease, error) {
	if err := s.begin(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return Lease{}, err
	}
	value, err := json.Marshal(leaseValue{Owner: owner, Address: s.options.Address})
	if err != nil {
		return Lease{}, err
	}
	sent := time.Now()
	revision, err := s.owners.Create(ctx, encodeToken(sessionID), value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		holder := "unknown"
		if current, err := s.CurrentLease(ctx, sessionID); err == nil {
			holder = fmt.Sprintf("%q (epoch %d)", current.Owner, current.Epoch)
		}
		return Lease{}, fmt.Errorf("session %q: claim by %q: held by %s: %w", sessionID, owner, holder, ErrLeaseHeld)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("session %q: claim by %q: %w", sessionID, owner, err)
	}
	return Lease{Session: sessionID, Owner: owner, Address: s.options.Address, Epoch: revision, Revision: revision, Renewed: sent}, nil
}

// Takeover claims a session whose lease current (read with CurrentLease)
// has not expired, by compare-and-set at its revision: for a node that
// finds a lease in its own name that it does not hold (it restarted
// within the TTL). The new lease has a higher epoch; if the key changed
// since current was read, the error wraps ErrLeaseHeld. Taking over a live
// owner's lease is safe for the data (that owner's next append is fenced)
// but not for its clients: use it only for the node's own name.
func (s *Store) Takeover(ctx context.Context, current Lease, owner string) (Lease, error) {
	if err := s.begin(ctx, store.ValidateSessionID(current.Session)); err != nil {
		return Lease{}, err
	}
	value, err := json.Marshal(leaseValue{Owner: owner, Address: s.options.Address})
	if err != nil {
		return Lease{}, err
	}
	sent := time.Now()
	revision, err := s.owners.Update(ctx, encodeToken(current.Session), value, current.Revision)
	if isWrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyExists) {
		return Lease{}, fmt.Errorf("session %q: takeover by %q of epoch %d: the lease changed: %w",
			current.Session, owner, current.Epoch, ErrLeaseHeld)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("session %q: takeover by %q: %w", current.Session, owner, err)
	}
	return Lease{Session: current.Session, Owner: owner, Address: s.options.Address, Epoch: revision, Revision: revision, Renewed: sent}, nil
}

// Renew extends the lease by the bucket's TTL. It fails with an error
// wrapping ErrLeaseLost if the lease changed since lease.Revision.
func (s *Store) Renew(ctx context.Context, lease Lease) (Lease, error) {
	if err := s.begin(ctx, store.ValidateSessionID(lease.Session)); err != nil {
		return Lease{}, err
	}
	value, err := json.Marshal(leaseValue{Owner: lease.Owner, Address: lease.Address, Epoch: lease.Epoch})
	if err != nil {
		return Lease{}, err
	}
	sent := time.Now()
	revision, err := s.owners.Update(ctx, encodeToken(lease.Session), value, lease.Revision)
	if isWrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyExists) {
		return Lease{}, fmt.Errorf("session %q: renewal by %q of epoch %d at revision %d: %w",
			lease.Session, lease.Owner, lease.Epoch, lease.Revision, ErrLeaseLost)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("session %q: renewal by %q: %w", lease.Session, lease.Owner, err)
	}
	lease.Revision, lease.Renewed = revision, sent
	return lease, nil
}

// Release gives the lease up, if it is still the caller's, so that another
// node can claim the session at once.
func (s *Store) Release(ctx context.Context, lease Lease) error {
	if err := s.begin(ctx, store.ValidateSessionID(lease.Session)); err != nil {
		return err
	}
	err := s.owners.Delete(ctx, encodeToken(lease.Session), jetstream.LastRevision(lease.Revision))
	if isWrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("session %q: release by %q of epoch %d at revision %d: %w",
			lease.Session, lease.Owner, lease.Epoch, lease.Revision, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("session %q: release by %q: %w", lease.Session, lease.Owner, err)
	}
	return nil
}

// CurrentLease returns who holds the session, or store.ErrNotFound. Renewed
// is zero: when the holder renewed is known only to the server.
func (s *Store) CurrentLease(ctx context.Context, sessionID string) (Lease, error) {
	if err := s.begin(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return Lease{}, err
	}
	entry, err := s.owners.Get(ctx, encodeToken(sessionID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Lease{}, fmt.Errorf("session %q: no owner: %w", sessionID, store.ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("session %q: reading owner: %w", sessionID, err)
	}
	var value leaseValue
	if err := json.Unmarshal(entry.Value(), &value); err != nil {
		return Lease{}, fmt.Errorf("session %q: owner record %q: %w", sessionID, entry.Value(), err)
	}
	epoch := value.Epoch
	if epoch == 0 {
		epoch = entry.Revision()
	}
	return Lease{Session: sessionID, Owner: value.Owner, Address: value.Address, Epoch: epoch, Revision: entry.Revision()}, nil
}
