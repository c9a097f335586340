// Package lease is the rule for keeping one ownership lease in cluster
// mode (docs/cluster.md): when to renew it and when to stop stamping. It is
// pure, so that the cluster node (package cluster) and the simulator run
// the same rule.
package lease

// Keeper is the rule for keeping one ownership lease: when to renew it,
// and when the node must stop stamping the session because the lease may
// have run out. It is a pure state machine (no clock, no I/O): times are
// milliseconds of the node's monotonic clock, given with each event, and
// the decisions come back as Effects for the shell (cluster/node.go) to
// execute.
//
// The lease lasts TTL from when the server wrote the last claim or
// renewal, by the server's clock. The node knows only when it sent that
// request (the write came after), so it counts the TTL from the sending
// and stops DriftMargin before the end: a node whose clock runs up to
// DriftMargin/TTL slower than the server's still stops before another
// node can claim the lease. Renewals are sent every TTL/3, so one lost or
// slow renewal leaves two more tries before the end.
//
// That early stop is for a node cut off from the cluster. A node that
// still reaches a majority of the cluster's nodes (Observe) keeps its
// sessions past that point while its renewals get no answer: then
// JetStream itself is electing a leader for the leases (4-9 s after a
// leader died), nobody else can claim the lease either, and stopping
// would only send every client of every session to reconnect. Its
// renewals go on; if the lease expired meanwhile, the shell claims it
// again (Reclaimed) unless another node did.
//
// Stopping early is what keeps a node from serving clients it cannot
// stamp for; it is not what keeps the data safe: a node that stamps after
// its lease ended (a pause the rule cannot see, like SIGSTOP) is fenced by
// the store when it appends (store.ErrFenced).
type Keeper struct {
	// TTL is the lease's time to live and DriftMargin the part of it not
	// counted on (see above), both in milliseconds.
	TTL, DriftMargin int64

	// renewedAt is when the last acknowledged claim or renewal was sent;
	// sentAt when the renewal in flight was (inFlight).
	renewedAt, sentAt int64
	inFlight          bool
	// failedAt is when the last renewal failed without losing the lease
	// (a timeout, a lost connection): the next try waits RetryInterval.
	failedAt int64
	failed   bool
	stopped  bool
	// majority: the node's last observation was that it reaches a
	// majority of the cluster's nodes.
	majority bool
}

// RetryInterval is the least time between a failed renewal and the next,
// in milliseconds.
const RetryInterval = 100

// Effects is what the node must do after a step.
type Effects struct {
	// Renew: send a renewal now, then step Renewed or RenewFailed with
	// the time it was sent.
	Renew bool
	// Stop: stop stamping the session now (the lease ran out, or another
	// node holds it). Given once.
	Stop bool
	// Reason says why, with Stop.
	Reason string
	// Wake is when to step Tick next (ms), unless another event comes
	// first; 0 after Stop.
	Wake int64
}

// NewKeeper starts keeping a lease whose claim was sent at claimedAt.
func New(ttl, driftMargin, claimedAt int64) *Keeper {
	return &Keeper{TTL: ttl, DriftMargin: driftMargin, renewedAt: claimedAt}
}

// Tick is a step at time now with nothing else to report.
func (k *Keeper) Tick(now int64) Effects { return k.decide(now) }

// Renewed reports that the renewal sent at sentAt was acknowledged.
func (k *Keeper) Renewed(now, sentAt int64) Effects {
	k.inFlight, k.failed = false, false
	if sentAt > k.renewedAt {
		k.renewedAt = sentAt
	}
	return k.decide(now)
}

// RenewFailed reports that the renewal sent at sentAt failed; lost means
// the lease is gone for certain (another node holds it, or it expired).
func (k *Keeper) RenewFailed(now, sentAt int64, lost bool) Effects {
	k.inFlight = false
	if lost {
		return k.stop("another node holds the lease, or it expired")
	}
	k.failed, k.failedAt = true, now
	return k.decide(now)
}

// Observe reports whether the node reaches a majority of the cluster's
// nodes now (its routes); until the first observation it is taken not to.
func (k *Keeper) Observe(now int64, majority bool) Effects {
	k.majority = majority
	return k.decide(now)
}

// Reclaimed reports that the lease, lost while the node could not renew
// it, was claimed again by the node with a claim sent at sentAt (no other
// node had claimed it): the keeping goes on from there.
func (k *Keeper) Reclaimed(now, sentAt int64) Effects {
	k.inFlight, k.failed = false, false
	k.renewedAt = sentAt
	return k.decide(now)
}

// Stopped reports whether the keeper told the node to stop.
func (k *Keeper) Stopped() bool { return k.stopped }

// ValidUntil is the time until which the lease is counted on (ms).
func (k *Keeper) ValidUntil() int64 { return k.renewedAt + k.TTL - k.DriftMargin }

func (k *Keeper) decide(now int64) Effects {
	if k.stopped {
		return Effects{}
	}
	expired := now >= k.ValidUntil()
	if expired && !k.majority {
		return k.stop("the lease was not renewed in time, and the node does not reach a majority of the cluster")
	}
	next := k.renewedAt + k.TTL/3
	if k.failed {
		next = max(next, k.failedAt+RetryInterval)
	}
	var effects Effects
	if !k.inFlight && now >= next {
		k.inFlight, k.sentAt = true, now
		effects.Renew = true
	}
	effects.Wake = k.ValidUntil()
	if expired {
		// Kept by the majority rule: look again at the next retry.
		effects.Wake = now + RetryInterval
	}
	if !k.inFlight {
		effects.Wake = min(effects.Wake, next)
	}
	return effects
}

func (k *Keeper) stop(reason string) Effects {
	k.stopped = true
	return Effects{Stop: true, Reason: reason}
}
