package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metronome-sync/metronome/cluster/lease"
	"github.com/metronome-sync/metronome/server"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/jsstore"
)

// Node is one node of a cluster, as its server sees it (server.Cluster):
// it says which node owns a session, claims sessions for this node and
// keeps their leases (cluster/lease), and tells a session to stop when its
// lease is lost.
type Node struct {
	name   string
	store  *jsstore.Store
	ttl    time.Duration
	logger *slog.Logger
	// start is the origin of the keepers' millisecond clock.
	start time.Time
	// majority is NodeOptions.Majority.
	majority func() bool

	mu    sync.Mutex
	owned map[string]*ownership
	// keeping counts the ownerships' goroutines (Close waits for them).
	keeping sync.WaitGroup

	claims, takeovers, claimsRefused    atomic.Uint64
	renewals, renewalFailures, lostKeys atomic.Uint64
	releases, reclaims                  atomic.Uint64
}

var _ server.Cluster = (*Node)(nil)

// NodeOptions configure a Node.
type NodeOptions struct {
	// Name is the node's name in leases (--node-name).
	Name string
	// Store is the cluster's shared store, opened with the same LeaseTTL
	// and with Address set to where this node serves clients.
	Store *jsstore.Store
	// LeaseTTL is the store's Options.LeaseTTL.
	LeaseTTL time.Duration
	// Majority reports whether the node reaches a majority of the
	// cluster's nodes now (lease.Keeper.Observe); nil: never (a lease not
	// renewed in time always stops its session).
	Majority func() bool
	Logger   *slog.Logger
}

// EmbeddedMajority is NodeOptions.Majority for a node embedding srv in a
// cluster of size nodes: it counts the servers it has routes to.
func EmbeddedMajority(srv interface{ NumRemotes() int }, size int) func() bool {
	return func() bool { return srv.NumRemotes()+1 > size/2 }
}

// NewNode returns the node.
func NewNode(o NodeOptions) (*Node, error) {
	if o.Name == "" || o.Store == nil || o.LeaseTTL <= 0 {
		return nil, errors.New("cluster: NodeOptions needs Name, Store and LeaseTTL")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	majority := o.Majority
	if majority == nil {
		majority = func() bool { return false }
	}
	return &Node{name: o.Name, store: o.Store, ttl: o.LeaseTTL, logger: logger, start: time.Now(),
		owned: make(map[string]*ownership), majority: majority}, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Forward returns the address of the session's owner if it is another
// node, "" if nobody owns it or this node does.
func (n *Node) Forward(ctx context.Context, sessionID string) (string, error) {
	lease, err := n.store.CurrentLease(ctx, sessionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case lease.Owner == n.name:
		return "", nil
	case lease.Address == "":
		return "", fmt.Errorf("session %q is owned by node %q, which published no address", sessionID, lease.Owner)
	}
	return lease.Address, nil
}

// ForwardWait is how long an upgrade waits for an unreachable owner: its
// lease runs out within the TTL, unless the leases' JetStream leader died
// with it, and a new one is elected first (at most 9 s in nats-server
// 2.15).
func (n *Node) ForwardWait() time.Duration { return n.ttl + electionMax }

// electionMax is the longest JetStream takes to elect a stream's new
// leader after the leader died (nats-server 2.15: 4 to 9 s).
const electionMax = 9 * time.Second

// Acquire claims the session for this node. A lease in this node's own
// name that it does not hold (this node restarted within the TTL, or an
// ended session's release is still under way) is taken over.
func (n *Node) Acquire(ctx context.Context, sessionID string) (server.Ownership, error) {
	claimed, err := n.store.Claim(ctx, sessionID, n.name)
	if errors.Is(err, jsstore.ErrLeaseHeld) {
		current, currentErr := n.store.CurrentLease(ctx, sessionID)
		if currentErr == nil && current.Owner == n.name {
			claimed, err = n.store.Takeover(ctx, current, n.name)
			if err == nil {
				n.takeovers.Add(1)
			}
		}
	}
	if err != nil {
		n.claimsRefused.Add(1)
		return nil, err
	}
	if time.Since(claimed.Renewed) >= n.ttl-n.driftMargin() {
		// The answer came so late that the lease may have ended already
		// (this node paused meanwhile): another node may own the session.
		n.claimsRefused.Add(1)
		return nil, fmt.Errorf("session %q: the claim (epoch %d) was answered after %v, too late to count on its lease",
			sessionID, claimed.Epoch, time.Since(claimed.Renewed).Round(time.Millisecond))
	}
	n.claims.Add(1)
	o := &ownership{node: n, lease: claimed, lost: make(chan struct{}), released: make(chan struct{}),
		keeper: lease.New(n.ttl.Milliseconds(), n.driftMargin().Milliseconds(), n.millis(claimed.Renewed))}
	n.mu.Lock()
	if previous := n.owned[sessionID]; previous != nil {
		previous.Release() // superseded by the takeover: it stops renewing
	}
	n.owned[sessionID] = o
	n.mu.Unlock()
	n.logger.Debug("session claimed", "session", sessionID, "epoch", claimed.Epoch)
	n.keeping.Add(1)
	go o.keep()
	return o, nil
}

// Close waits until every ownership's goroutine has ended (each ends when
// its session releases it, after giving the lease up, or when it is lost),
// or until ctx ends. Call it after the server's Shutdown, before closing
// the store.
func (n *Node) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		n.keeping.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.logger.Warn("cluster node: some leases were not released in time; they expire by themselves", "owned", n.Owned())
	}
}

// driftMargin is the part of the TTL a node does not count on (lease.Keeper).
func (n *Node) driftMargin() time.Duration { return n.ttl / 10 }

func (n *Node) millis(t time.Time) int64 { return t.Sub(n.start).Milliseconds() }

// Owned returns the number of sessions this node owns.
func (n *Node) Owned() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.owned)
}

// WriteMetrics writes the node's counters (server.Cluster).
func (n *Node) WriteMetrics(w io.Writer) {
	gauge := func(name, help string, value int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, value)
	}
	counter := func(name, help string, value uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, value)
	}
	gauge("metronome_cluster_owned_sessions", "Sessions this node owns (stamps).", int64(n.Owned()))
	counter("metronome_cluster_claims_total", "Session leases this node claimed (including takeovers of its own name's leases).", n.claims.Load())
	counter("metronome_cluster_takeovers_total", "Leases in this node's name it took over (it restarted within the lease TTL).", n.takeovers.Load())
	counter("metronome_cluster_claims_refused_total", "Claims that failed: another node owned the session, or JetStream did not answer.", n.claimsRefused.Load())
	counter("metronome_cluster_lease_renewals_total", "Lease renewals acknowledged.", n.renewals.Load())
	counter("metronome_cluster_lease_renewal_failures_total", "Lease renewals that failed (retried until the lease runs out).", n.renewalFailures.Load())
	counter("metronome_cluster_leases_lost_total", "Leases lost while their session ran: not renewed in time, or taken by another node.", n.lostKeys.Load())
	counter("metronome_cluster_leases_reclaimed_total", "Leases that expired while JetStream could not renew them (a leader election) and that this node claimed again.", n.reclaims.Load())
	counter("metronome_cluster_append_retries_total", "Appends tried again after no answer (a lost connection, a stream electing a leader).", n.store.Retries())
	counter("metronome_cluster_leases_released_total", "Leases given up because their session ended here (idle, or the node is draining).", n.releases.Load())
}

// ownership is one session's lease, kept by its own goroutine (keep).
type ownership struct {
	node   *Node
	keeper *lease.Keeper
	// lease is owned by keep once it runs; lostBy is the renewal error
	// that said the lease is gone.
	lease  Lease
	lostBy error

	lost     chan struct{}
	err      atomic.Pointer[error]
	released chan struct{}
	once     sync.Once
}

// Lease is the store's lease (jsstore.Lease).
type Lease = jsstore.Lease

func (o *ownership) Lost() <-chan struct{} { return o.lost }

func (o *ownership) Err() error {
	if err := o.err.Load(); err != nil {
		return *err
	}
	return nil
}

// Release stops keeping the lease and gives it up (in the background).
func (o *ownership) Release() { o.once.Do(func() { close(o.released) }) }

// keep renews the lease as the keeper says until the session is released
// (then it releases the lease) or the lease is lost (then it closes lost).
func (o *ownership) keep() {
	n := o.node
	defer n.keeping.Done()
	defer func() {
		n.mu.Lock()
		if n.owned[o.lease.Session] == o {
			delete(n.owned, o.lease.Session)
		}
		n.mu.Unlock()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	effects := o.keeper.Observe(n.millis(time.Now()), n.majority())
	for {
		if effects.Stop {
			cause := o.lostBy
			if cause == nil {
				cause = errors.New(effects.Reason)
			}
			o.lose(cause)
			return
		}
		if effects.Renew {
			effects = o.renew()
			continue
		}
		timer.Reset(max(time.Duration(effects.Wake-n.millis(time.Now()))*time.Millisecond, 0))
		select {
		case <-o.released:
			o.release()
			return
		case <-timer.C:
			effects = o.keeper.Observe(n.millis(time.Now()), n.majority())
		}
	}
}

// renew sends one renewal, bounded by the time the lease is counted on,
// and steps its outcome.
func (o *ownership) renew() lease.Effects {
	n := o.node
	sent := time.Now()
	deadline := n.start.Add(time.Duration(o.keeper.ValidUntil()) * time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	renewed, err := n.store.Renew(ctx, o.lease)
	cancel()
	now := n.millis(time.Now())
	if err == nil {
		n.renewals.Add(1)
		o.lease = renewed
		return o.keeper.Renewed(now, n.millis(sent))
	}
	n.renewalFailures.Add(1)
	lost := errors.Is(err, jsstore.ErrLeaseLost)
	if !lost {
		n.logger.Warn("lease renewal failed; retrying", "session", o.lease.Session, "err", err)
		return o.keeper.RenewFailed(now, n.millis(sent), false)
	}
	// The key changed. If it expired while renewals got no answer (an
	// election of the leases' leader) and nobody claimed it since, claim
	// it again: this node never stopped being the only one stamping.
	sent = time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), n.ttl/3)
	claimed, claimErr := n.store.Claim(ctx, o.lease.Session, n.name)
	cancel()
	if claimErr == nil {
		n.reclaims.Add(1)
		n.logger.Warn("session lease expired while it could not be renewed; claimed again", "session", o.lease.Session,
			"epoch", claimed.Epoch, "previous_epoch", o.lease.Epoch)
		o.lease = claimed
		return o.keeper.Reclaimed(n.millis(time.Now()), n.millis(sent))
	}
	o.lostBy = err
	return o.keeper.RenewFailed(n.millis(time.Now()), n.millis(sent), true)
}

func (o *ownership) lose(err error) {
	o.node.lostKeys.Add(1)
	err = fmt.Errorf("session %q: ownership (epoch %d) lost: %w", o.lease.Session, o.lease.Epoch, err)
	o.err.Store(&err)
	o.node.logger.Warn("session ownership lost: the session stops here and its clients reconnect", "err", err)
	close(o.lost)
}

func (o *ownership) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := o.node.store.Release(ctx, o.lease); err != nil {
		o.node.logger.Debug("lease release failed (it expires by itself)", "session", o.lease.Session, "err", err)
		return
	}
	o.node.releases.Add(1)
}
