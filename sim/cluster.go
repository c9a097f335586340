package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/metronome-sync/metronome/cluster/lease"
	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/reflector"
	metronomestore "github.com/metronome-sync/metronome/store"
)

// Cluster mode (docs/cluster.md, docs/simulation.md "Cluster mode"). A
// third of the seeds run several reflector nodes (Scenario.Nodes) instead
// of one. Each node is a simReflector with its own process life (crash,
// pause, drain), its own clock (clock-skew: a rate of 0.97 to 1.03 of
// JetStream's) and the production session host; they share one model of
// JetStream (jetStream below):
//
//   - the sessions stream: one subject per session, one append per
//     committed batch, each carrying the expected last sequence of the
//     subject (what the appending process last appended or loaded: its
//     jsView); an append with another expectation is fenced
//     (store.ErrFenced). An acknowledged append is replicated: no node
//     crash tears or loses it.
//   - the owners bucket: one lease per session, claimed with create (if
//     absent or expired), renewed and taken over with update at the last
//     revision (compare-and-set), released with a delete at the revision;
//     every write has a new revision of the bucket, the epoch of a lease
//     is the revision of its claim, and a key not written for the TTL
//     expires by JetStream's clock (the world's).
//   - the pointers bucket.
//
// Every request of a node takes a latency each way; while the node is cut
// from JetStream (jetstream-partition) its requests and their answers are
// lost, so its callers time out as jsstore's and the server's would; a
// write sent while cut off may still arrive when the cut heals (an
// external NATS client's reconnect buffer), whether its caller still waits
// or not.
//
// The nodes run the rules of package cluster and server/cluster.go, which
// the simulator cannot import (they pull in the server and NATS): the
// lease of each owned session is kept by the production rule
// (cluster/lease.Keeper: renew every TTL/3, stop before TTL minus a tenth,
// retry failures every 100 ms, stop at once when the lease is lost) on the
// node's clock; a node that stops relinquishes the session
// (host.Session.Relinquish). A client connects to a node the load
// balancer picks; that node serves the session if it holds it, claims it
// if nobody owns it (Acquire: create, or take over a lease in its own
// name), forwards the connection to the owner if another node owns it
// (the connection then depends on both nodes), and while the owner cannot
// be reached retries every 100 ms until the lease has expired (at most
// the TTL plus a second, then 503). A forwarded upgrade is served or
// refused, never forwarded again.
//
// The checkers add two invariants. Single writer: the JetStream model
// records which writer (node and epoch) appended each position of a
// session's subject and each message seq; a second writer of either is a
// violation. Lease: when JetStream expires a lease, its owner (unless it
// was paused meanwhile) has stopped counting on it. The others hold
// across failovers: the ledger of positions is shared by every node, and
// time is checked per epoch (check.go).

// Timeouts and delays of the cluster's shells, as in the real ones.
const (
	// jsRequestTimeoutMs is how long an append gets no answer before it
	// fails: jsstore retries one for AppendRetryForDefault.
	jsRequestTimeoutMs = 12_000
	// ownerLookupTimeoutMs bounds the owner lookup of an upgrade
	// (server/cluster.go forwardDialTimeout).
	ownerLookupTimeoutMs = 2_000
	// acquireTimeoutMs bounds a claim (server/session.go acquireTimeout).
	acquireTimeoutMs = 5_000
	// forwardRetryMs is how often a held upgrade asks again
	// (forwardRetryInterval); forwardWaitExtraMs is what it waits beyond
	// the TTL (cluster.Node.ForwardWait: the longest JetStream election).
	forwardRetryMs     = 100
	forwardWaitExtraMs = 9_000
	// forwardHopMaxMs bounds the latency between two nodes.
	forwardHopMaxMs = 5
	// releaseTimeoutMs bounds a lease release (cluster/node.go).
	releaseTimeoutMs = 2_000
	// drainTimeoutMs bounds how long a draining node waits for its
	// sessions to end.
	drainTimeoutMs = 5_000
	// lateWriteChance is the chance that a write sent while the node is
	// cut from JetStream arrives when the cut heals.
	lateWriteChance = 0.3
	// keeperWakeLateMaxMs bounds how late the keeper of a paused node
	// ticks after the pause, behind the sessions' own events.
	keeperWakeLateMaxMs = 20
	// driftMarginDivisor: the keeper does not count on a tenth of the TTL
	// (cluster.Node.driftMargin).
	driftMarginDivisor = 10
)

var (
	// errJetStreamTimeout is what a request gets that JetStream did not
	// answer in time (the node is cut from it).
	errJetStreamTimeout = errors.New("sim jetstream: no answer in time")
	// errLeaseHeld and errLeaseLost are jsstore.ErrLeaseHeld and
	// jsstore.ErrLeaseLost.
	errLeaseHeld = errors.New("sim jetstream: session is owned by another node")
	errLeaseLost = errors.New("sim jetstream: lease lost")
	// errOwnerUnreachable: the owner's process is down (the proxy cannot
	// connect).
	errOwnerUnreachable = errors.New("owner unreachable")
)

// newCluster builds the nodes and their JetStream.
func (w *World) newCluster(options host.Options, deletionBugs host.Deletions) {
	s := &w.scenario
	w.js = &jetStream{w: w, ttl: s.LeaseTTLMs, latencyMaxMs: s.JetStreamLatencyMaxMs, noFence: bugNoFence(w.options.Bug),
		subjects: map[string]*jsSubject{}, owners: map[string]*jsLease{}, lastHolder: map[string]jsLease{}, pointers: map[string][]byte{}}
	for i := range s.Nodes {
		r := &simReflector{w: w, name: fmt.Sprintf("n%d", i+1), options: options, deletionBugs: deletionBugs,
			clockRate: s.NodeClockPermille[i], flushEventsMax: s.FlushEventsMax, flushHoldMs: s.FlushHoldMs}
		r.js = newJSView(r) // marks the node as a cluster node; start() renews it
		w.nodes = append(w.nodes, r)
		if r.clockRate != 1000 {
			w.count(FaultClockSkew)
		}
	}
	w.reflector = w.nodes[0]
	w.count(CountClusterRun)
}

// balance is the load balancer: the node a new connection reaches (the
// one reflector without drawing).
func (w *World) balance() *simReflector {
	if len(w.nodes) == 1 {
		return w.nodes[0]
	}
	return w.nodes[w.rand.Intn(len(w.nodes))]
}

// pickNode chooses the node a fault strikes.
func (w *World) pickNode() *simReflector { return w.balance() }

// node returns the node of that name, or nil.
func (w *World) node(name string) *simReflector {
	for _, r := range w.nodes {
		if r.name == name {
			return r
		}
	}
	return nil
}

// servingSession is the session clients must catch up with: the one
// reflector's, or the session of the node that owns it (the highest epoch
// among the sessions in memory whose ownership is not lost).
func (w *World) servingSession(id string) *simSession {
	if w.js == nil {
		return w.reflector.sessions[id]
	}
	var best *simSession
	for _, r := range w.nodes {
		if !r.up {
			continue
		}
		s := r.sessions[id]
		if s == nil || s.ownership == nil || s.ownership.lost != nil {
			continue
		}
		if best == nil || s.epoch() > best.epoch() {
			best = s
		}
	}
	return best
}

// clusterFaultLoops schedules the faults of cluster mode.
func (w *World) clusterFaultLoops() {
	if w.js == nil {
		return
	}
	s := &w.scenario
	w.every(s.NodeCrashEveryMs, func() {
		r := w.pickNode()
		if !r.up {
			return
		}
		r.crash(false)
		w.queue.schedule(w.now+w.rand.Between(0, s.NodeDownMaxMs), func() {
			if !r.up {
				r.start()
			}
		})
	})
	w.every(s.NodePauseEveryMs, func() {
		r := w.pickNode()
		if !r.up || w.now < r.pausedUntil {
			return
		}
		pause := w.rand.Between(100, s.NodePauseMaxMs)
		r.pausedUntil = w.now + pause
		w.count(FaultNodePause)
		w.tracef("%s: paused for %d ms (the lease is %d ms)", r.name, pause, s.LeaseTTLMs)
	})
	w.every(s.JetStreamPartitionEveryMs, func() {
		r := w.pickNode()
		if w.now < r.jsCutUntil {
			return
		}
		cut := w.rand.Between(100, s.JetStreamPartitionMaxMs)
		r.jsCutUntil = w.now + cut
		w.count(FaultJetStreamPartition)
		w.tracef("%s: cut from JetStream for %d ms", r.name, cut)
	})
}

// cutFromJS reports whether the node is cut from JetStream now.
func (r *simReflector) cutFromJS() bool { return r.w.now < r.jsCutUntil }

// epoch is the epoch of the ownership the session runs with (0 with one
// reflector).
func (s *simSession) epoch() uint64 {
	if s.ownership == nil {
		return 0
	}
	return s.ownership.lease.epoch
}

// epochOf is the epoch of the node's session's ownership (0: none).
func (r *simReflector) epochOf(id string) uint64 {
	if s := r.sessions[id]; s != nil {
		return s.epoch()
	}
	return 0
}

// writer names who appends for a session of this node: the node and its
// ownership's epoch.
func (r *simReflector) writer(id string) string {
	return fmt.Sprintf("%s (process %d, epoch %d)", r.name, r.incarnation, r.epochOf(id))
}

// --- JetStream ---

// jetStream is the model of what JetStream guarantees the cluster (see
// the top of this file).
type jetStream struct {
	w *World
	// ttl is the owners bucket's TTL; latencyMaxMs bounds each way of a
	// request.
	ttl, latencyMaxMs int64
	// noFence is the self-test's bug: appends are accepted whatever
	// their expected last sequence.
	noFence bool

	// streamSeq is the sessions stream's last sequence (all subjects).
	streamSeq uint64
	subjects  map[string]*jsSubject
	pointers  map[string][]byte
	// ownersRevision is the owners bucket's last revision; owners holds
	// each session's live lease (an expired one is removed when it
	// expires); lastHolder the last lease each session had, for the
	// trace and the takeover count.
	ownersRevision uint64
	owners         map[string]*jsLease
	lastHolder     map[string]jsLease
}

// jsSubject is one session's subject: the state its appends add up to,
// and who appended what.
type jsSubject struct {
	record   []byte
	messages []metronomestore.Message
	// last is the subject's last stream sequence (0: no message), written
	// by lastWriter.
	last       uint64
	lastWriter string
	// after holds, per subject position (a stream sequence, or 0 for the
	// empty subject), the writer of the append that followed it;
	// seqWriter the writer of each message seq; lastSeq the last message
	// seq appended (anySeq: there was one).
	after     map[uint64]string
	seqWriter map[uint32]string
	lastSeq   uint32
	anySeq    bool
}

// jsLease is a lease as the owners bucket holds it.
type jsLease struct {
	owner     string
	epoch     uint64
	revision  uint64
	writtenAt int64 // JetStream's clock
}

// jsReply is JetStream's answer to a request.
type jsReply struct {
	err   error
	lease jsLease
	seq   uint64
}

func (js *jetStream) latency() int64 { return js.w.rand.Between(1, js.latencyMaxMs) }

// live returns the session's lease if it has not expired.
func (js *jetStream) live(session string) *jsLease {
	l := js.owners[session]
	if l == nil || js.w.now >= l.writtenAt+js.ttl {
		return nil
	}
	return l
}

// write stores a lease at a new revision (a new epoch if epoch is 0) and
// schedules its expiry.
func (js *jetStream) write(session, owner string, epoch uint64) jsLease {
	js.ownersRevision++
	l := &jsLease{owner: owner, epoch: epoch, revision: js.ownersRevision, writtenAt: js.w.now}
	if l.epoch == 0 {
		l.epoch = l.revision
	}
	js.owners[session] = l
	js.w.queue.schedule(l.writtenAt+js.ttl, func() {
		if js.owners[session] == l {
			delete(js.owners, session)
			js.w.tracef("jetstream: session %s: the lease of %s (epoch %d) expired", session, l.owner, l.epoch)
			js.checkKeeper(session, *l)
		}
	})
	return *l
}

// checkKeeper checks the keeper's rule when a lease expires: its owner, if
// it still keeps it and was not paused meanwhile (a pause is what the rule
// cannot see; the fence covers it), has stopped counting on it, whatever
// its clock's drift (up to 3 % here, within the rule's 10 % margin).
func (js *jetStream) checkKeeper(session string, l jsLease) {
	w := js.w
	r := w.node(l.owner)
	if r == nil || !r.up || r.pausedUntil+js.ttl+2*js.latencyMaxMs > w.now {
		return
	}
	o := r.ownerships[session]
	if o == nil || o.stale() || o.lease.revision != l.revision {
		return
	}
	if until := o.keeper.ValidUntil(); r.worldAt(until) > w.now {
		w.violate(InvariantLease, fmt.Sprintf("session %s: JetStream expired the lease of %s (epoch %d), whose keeper still counts on it until %d ms of its clock (now %d ms)",
			session, r.name, l.epoch, until, r.now()))
	}
}

// claimed notes and traces a new epoch of a session's lease.
func (js *jetStream) claimed(session string, l jsLease, how string) {
	w := js.w
	w.count(CountLeaseClaim)
	previous, had := js.lastHolder[session]
	from := ""
	switch {
	case had && previous.owner != l.owner:
		w.count(CountLeaseTakeover)
		from = fmt.Sprintf(", taking the session over from %s (epoch %d)", previous.owner, previous.epoch)
	case had:
		from = fmt.Sprintf(", after its own epoch %d", previous.epoch)
	}
	js.lastHolder[session] = l
	w.tracef("jetstream: session %s: %s by %s: epoch %d%s", session, how, l.owner, l.epoch, from)
}

// create is KV Create: a claim, if nobody holds the lease.
func (js *jetStream) create(session, owner string) jsReply {
	if l := js.live(session); l != nil {
		return jsReply{err: fmt.Errorf("session %q: claim by %q: held by %q (epoch %d): %w", session, owner, l.owner, l.epoch, errLeaseHeld)}
	}
	l := js.write(session, owner, 0)
	js.claimed(session, l, "claimed")
	return jsReply{lease: l}
}

// takeover is KV Update at the current lease's revision with a new owner
// (jsstore.Takeover).
func (js *jetStream) takeover(session, owner string, current jsLease) jsReply {
	if l := js.live(session); l == nil || l.revision != current.revision {
		return jsReply{err: fmt.Errorf("session %q: takeover by %q of epoch %d: the lease changed: %w", session, owner, current.epoch, errLeaseHeld)}
	}
	l := js.write(session, owner, 0)
	js.w.count(CountOwnTakeover)
	js.claimed(session, l, "lease in its own name taken over")
	return jsReply{lease: l}
}

// renew is KV Update at the lease's last revision (jsstore.Renew).
func (js *jetStream) renew(session string, lease jsLease) jsReply {
	if l := js.live(session); l == nil || l.revision != lease.revision {
		return jsReply{err: fmt.Errorf("session %q: renewal by %q of epoch %d at revision %d: %w", session, lease.owner, lease.epoch, lease.revision, errLeaseLost)}
	}
	return jsReply{lease: js.write(session, lease.owner, lease.epoch)}
}

// release is KV Delete at the lease's last revision (jsstore.Release).
func (js *jetStream) release(session string, lease jsLease) jsReply {
	if l := js.live(session); l == nil || l.revision != lease.revision {
		return jsReply{err: fmt.Errorf("session %q: release by %q of epoch %d: %w", session, lease.owner, lease.epoch, errLeaseLost)}
	}
	delete(js.owners, session)
	js.ownersRevision++ // the delete marker
	js.w.tracef("jetstream: session %s: lease of %s (epoch %d) released", session, lease.owner, lease.epoch)
	return jsReply{}
}

// get is KV Get (jsstore.CurrentLease).
func (js *jetStream) get(session string) jsReply {
	l := js.live(session)
	if l == nil {
		return jsReply{err: fmt.Errorf("session %q: no owner: %w", session, metronomestore.ErrNotFound)}
	}
	return jsReply{lease: *l}
}

func (js *jetStream) subject(session string) *jsSubject {
	sub := js.subjects[session]
	if sub == nil {
		sub = &jsSubject{after: map[uint64]string{}, seqWriter: map[uint32]string{}}
		js.subjects[session] = sub
	}
	return sub
}

// append appends a batch to the session's subject if its last sequence is
// expected (else the append is fenced), and checks that nobody wrote the
// same position or message seq before: the single-writer invariant.
func (js *jetStream) append(session, writer string, epoch, expected uint64, batch metronomestore.Batch) jsReply {
	w := js.w
	sub := js.subject(session)
	if expected != sub.last && !js.noFence {
		w.count(CountFencedCommit)
		w.tracef("jetstream: session %s: append by %s fenced: it expects last sequence %d, the subject's is %d (appended by %s)",
			session, writer, expected, sub.last, sub.lastWriter)
		return jsReply{err: fmt.Errorf("sim jetstream: session %q: append expecting last sequence %d (the subject's is %d): %w",
			session, expected, sub.last, metronomestore.ErrFenced)}
	}
	for _, message := range batch.Append {
		if first, ok := sub.seqWriter[message.Seq]; ok {
			err := fmt.Sprintf("session %s: seq %d was appended by %s, and again by %s", session, message.Seq, first, writer)
			w.violate(InvariantSingleWriter, err)
			return jsReply{err: errors.New(err)}
		}
	}
	if first, ok := sub.after[expected]; ok {
		err := fmt.Sprintf("session %s: %s appended after stream sequence %d, which %s had appended after already", session, writer, expected, first)
		w.violate(InvariantSingleWriter, err)
		return jsReply{err: errors.New(err)}
	}
	last, any := sub.lastSeq, sub.anySeq
	for _, message := range batch.Append {
		if any && message.Seq != last+1 {
			err := fmt.Sprintf("jetstream: session %s: %s appends seq %d after %d", session, writer, message.Seq, last)
			w.violate(InvariantOrder, err)
			return jsReply{err: errors.New(err)}
		}
		last, any = message.Seq, true
	}
	if batch.DropFront > len(sub.messages)+len(batch.Append) {
		err := fmt.Sprintf("jetstream: session %s: %s drops %d of %d messages", session, writer, batch.DropFront, len(sub.messages)+len(batch.Append))
		w.violate(InvariantOrder, err)
		return jsReply{err: errors.New(err)}
	}
	sub.messages = append(sub.messages, batch.Append...)
	if batch.DropFront > 0 {
		sub.messages = slices.Clone(sub.messages[batch.DropFront:])
	}
	if batch.Record != nil {
		sub.record = batch.Record
	}
	for _, message := range batch.Append {
		sub.seqWriter[message.Seq] = writer
	}
	sub.lastSeq, sub.anySeq = last, any
	js.streamSeq++
	sub.after[expected] = writer
	sub.last, sub.lastWriter = js.streamSeq, writer
	if holder, ok := js.lastHolder[session]; ok && holder.epoch > epoch {
		// Not fenced: the newer owner has not appended since it loaded.
		w.count(CountStaleAppend)
		w.tracef("jetstream: session %s: append by %s stored although %s claimed epoch %d since (it has not appended since it loaded)",
			session, writer, holder.owner, holder.epoch)
	}
	return jsReply{seq: js.streamSeq}
}

// jsRequest sends a request from node r to JetStream: apply runs at
// JetStream when it arrives and makes the answer, done runs on the node
// (in the process that sent it, deferred while it is paused) when the
// answer arrives, or with errJetStreamTimeout at the deadline (world
// time). write: a write, which a cut may deliver late (lateWriteChance).
func (r *simReflector) jsRequest(what string, deadline int64, write bool, apply func() jsReply, done func(jsReply)) {
	w, js := r.w, r.w.js
	incarnation := r.incarnation
	answered := false
	answer := func(reply jsReply) {
		var run func()
		run = func() {
			if answered || !r.up || r.incarnation != incarnation {
				return
			}
			if r.deferred(run) {
				return
			}
			answered = true
			done(reply)
		}
		run()
	}
	w.queue.schedule(max(deadline, w.now), func() {
		answer(jsReply{err: fmt.Errorf("%s: %w", what, errJetStreamTimeout)})
	})
	arrive := func() {
		if r.cutFromJS() {
			return // lost on the way
		}
		reply := apply()
		w.queue.schedule(w.now+js.latency(), func() {
			if !r.cutFromJS() {
				answer(reply)
			}
		})
	}
	switch {
	case !r.cutFromJS():
		w.queue.schedule(w.now+js.latency(), arrive)
	case write && w.rand.Chance(lateWriteChance):
		w.queue.schedule(r.jsCutUntil, func() {
			if r.up && r.incarnation == incarnation {
				w.tracef("%s: a write sent while cut from JetStream goes out now (%s)", r.name, what)
				w.queue.schedule(w.now+js.latency(), arrive)
			}
		})
	}
}

// --- a node's view of JetStream: its store ---

// jsView is one node process's store (jsstore.Store as the node's host
// sees it): it remembers, per session, the subject's last sequence it
// appended or loaded, which its next append expects. It is a
// host.PipelinedStore so that an append can take its time: the batch is
// answered (durable or failed) when JetStream's answer arrives, and the
// node sends one batch of a session at a time (simReflector.flush), as
// the server's actor waits in Commit.
type jsView struct {
	r        *simReflector
	expected map[string]uint64
}

var _ host.PipelinedStore = (*jsView)(nil)

func newJSView(r *simReflector) *jsView { return &jsView{r: r, expected: map[string]uint64{}} }

// LoadSession reads the session (at once; a node cut from JetStream fails
// at once rather than after jsstore's timeout).
func (v *jsView) LoadSession(_ context.Context, id string) (metronomestore.Session, error) {
	r := v.r
	if r.cutFromJS() {
		delete(v.expected, id)
		return metronomestore.Session{}, fmt.Errorf("session %q: reading its last message: %w", id, errJetStreamTimeout)
	}
	sub := r.w.js.subjects[id]
	if sub == nil || sub.last == 0 {
		delete(v.expected, id)
		return metronomestore.Session{}, fmt.Errorf("session %q: %w", id, metronomestore.ErrNotFound)
	}
	v.expected[id] = sub.last
	return metronomestore.Session{Record: slices.Clone(sub.record), Messages: slices.Clone(sub.messages)}, nil
}

// Submit sends the batch as one append expecting the remembered last
// sequence, and reports it durable or failed when JetStream answers (or
// fails it with a timeout after jsRequestTimeoutMs). After a failure the
// view forgets the session, as jsstore does: an append that timed out
// may have been stored.
func (v *jsView) Submit(_ context.Context, id string, batch metronomestore.Batch, durable func(error)) (bool, error) {
	r := v.r
	expected, writer, epoch := v.expected[id], r.writer(id), r.epochOf(id)
	copied := metronomestore.Batch{Append: slices.Clone(batch.Append), DropFront: batch.DropFront, Record: slices.Clone(batch.Record)}
	r.jsRequest("append to session "+id, r.w.now+jsRequestTimeoutMs, true,
		func() jsReply { return r.w.js.append(id, writer, epoch, expected, copied) },
		func(reply jsReply) {
			if reply.err != nil {
				delete(v.expected, id)
			} else {
				v.expected[id] = reply.seq
			}
			durable(reply.err)
		})
	return false, nil
}

// Commit appends at once (the host uses Submit; Commit completes the
// host.Store interface).
func (v *jsView) Commit(_ context.Context, id string, batch metronomestore.Batch) error {
	r := v.r
	if r.cutFromJS() {
		delete(v.expected, id)
		return fmt.Errorf("session %q: append: %w", id, errJetStreamTimeout)
	}
	copied := metronomestore.Batch{Append: slices.Clone(batch.Append), DropFront: batch.DropFront, Record: slices.Clone(batch.Record)}
	reply := r.w.js.append(id, r.writer(id), r.epochOf(id), v.expected[id], copied)
	if reply.err != nil {
		delete(v.expected, id)
		return reply.err
	}
	v.expected[id] = reply.seq
	return nil
}

// PutPointer stores a persisted-data pointer in the pointers bucket.
func (v *jsView) PutPointer(_ context.Context, key string, value []byte) error {
	if v.r.cutFromJS() {
		return fmt.Errorf("pointer %q: %w", key, errJetStreamTimeout)
	}
	v.r.w.js.pointers[key] = slices.Clone(value)
	return nil
}

// GetPointer reads a persisted-data pointer.
func (v *jsView) GetPointer(_ context.Context, key string) ([]byte, error) {
	if v.r.cutFromJS() {
		return nil, fmt.Errorf("pointer %q: %w", key, errJetStreamTimeout)
	}
	value, ok := v.r.w.js.pointers[key]
	if !ok {
		return nil, metronomestore.ErrNotFound
	}
	return slices.Clone(value), nil
}

// --- ownership: cluster/node.go's Acquire and keep ---

// simOwnership is a node's ownership of one session: the lease it holds
// and the production rule that keeps it (cluster/lease.Keeper), on the
// node's clock.
type simOwnership struct {
	r           *simReflector
	incarnation int
	session     string
	lease       jsLease
	keeper      *lease.Keeper
	// tick is the token of the scheduled keeper tick; renewing: a renewal
	// is on its way (the keeper waits for its answer, as keep does).
	tick     uint64
	renewing bool
	// lostBy is the renewal error that said the lease is gone; lost is
	// set when the keeper said stop; released when the session ended here.
	lostBy   error
	lost     error
	released bool
}

// holdsSession: the node has the session in memory, or owns it
// (server.holdsSession).
func (r *simReflector) holdsSession(id string) bool {
	return r.sessions[id] != nil || r.ownerships[id] != nil
}

// acquire claims the session for this node (cluster.Node.Acquire): KV
// create; if another holds it and that holder is this node's own name (it
// restarted within the TTL, or an ended session's release is on its way),
// a takeover at the lease's revision.
func (r *simReflector) acquire(session string, done func(error)) {
	w, js := r.w, r.w.js
	deadline := w.now + acquireTimeoutMs
	sent := r.now()
	r.jsRequest("claim of session "+session, deadline, true, func() jsReply { return js.create(session, r.name) }, func(reply jsReply) {
		switch {
		case reply.err == nil:
			r.own(session, reply.lease, sent)
			done(nil)
		case errors.Is(reply.err, errLeaseHeld):
			r.jsRequest("lease lookup of session "+session, deadline, false, func() jsReply { return js.get(session) }, func(current jsReply) {
				if current.err != nil || current.lease.owner != r.name {
					done(reply.err)
					return
				}
				sent := r.now()
				r.jsRequest("takeover of session "+session, deadline, true, func() jsReply { return js.takeover(session, r.name, current.lease) }, func(taken jsReply) {
					if taken.err != nil {
						done(taken.err)
						return
					}
					r.own(session, taken.lease, sent)
					done(nil)
				})
			})
		default:
			done(reply.err)
		}
	})
}

// own starts keeping a lease whose claim was sent at sentAt.
func (r *simReflector) own(session string, l jsLease, sentAt int64) {
	o := &simOwnership{r: r, incarnation: r.incarnation, session: session, lease: l,
		keeper: lease.New(r.w.js.ttl, r.w.js.ttl/driftMarginDivisor, sentAt)}
	if previous := r.ownerships[session]; previous != nil {
		previous.release() // superseded (cluster.Node.Acquire)
	}
	r.ownerships[session] = o
	o.step(o.keeper.Tick(r.now()))
}

// stale reports whether the ownership's keeping is over.
func (o *simOwnership) stale() bool {
	r := o.r
	return o.lost != nil || o.released || !r.up || r.incarnation != o.incarnation
}

// step does what the keeper says: stop, renew, or tick later.
func (o *simOwnership) step(effects lease.Effects) {
	r := o.r
	if o.stale() {
		return
	}
	if effects.Stop {
		cause := o.lostBy
		if cause == nil {
			cause = errors.New(effects.Reason)
		}
		o.lose(cause)
		return
	}
	if effects.Renew {
		o.renew()
		return
	}
	o.tick++
	token := o.tick
	var run func()
	run = func() {
		if o.tick != token || o.stale() {
			return
		}
		if r.w.now < r.pausedUntil {
			// A process that resumes runs its goroutines in no
			// particular order: the keeper may tick after the sessions
			// stepped and flushed what waited.
			r.w.queue.schedule(r.pausedUntil+r.w.rand.Between(0, keeperWakeLateMaxMs), run)
			return
		}
		o.step(o.keeper.Tick(r.now()))
	}
	r.w.queue.schedule(max(r.w.now, r.worldAt(effects.Wake)), run)
}

// renew sends one renewal, bounded by the time the lease is counted on,
// and steps its outcome (cluster/node.go renew).
func (o *simOwnership) renew() {
	r, w := o.r, o.r.w
	sent := r.now()
	o.renewing = true
	current := o.lease
	r.jsRequest("renewal of session "+o.session, r.worldAt(o.keeper.ValidUntil()), true,
		func() jsReply { return w.js.renew(o.session, current) },
		func(reply jsReply) {
			o.renewing = false
			if reply.err == nil {
				o.lease = reply.lease
			}
			if o.released {
				o.sendRelease()
				return
			}
			if o.stale() {
				return
			}
			now := r.now()
			if reply.err == nil {
				w.count(CountLeaseRenewal)
				w.tracef("%s: session %s: lease renewed (epoch %d, revision %d)", r.name, o.session, o.lease.epoch, o.lease.revision)
				o.step(o.keeper.Renewed(now, sent))
				return
			}
			lost := errors.Is(reply.err, errLeaseLost)
			if lost {
				o.lostBy = reply.err
			}
			w.tracef("%s: session %s: lease renewal failed (epoch %d): %v", r.name, o.session, o.lease.epoch, reply.err)
			o.step(o.keeper.RenewFailed(now, sent, lost))
		})
}

// lose ends the ownership: the node stops stamping the session. The
// session relinquishes it at once, or, if a batch of it is on its way to
// JetStream (the server's actor waits in Commit), when that is answered.
func (o *simOwnership) lose(cause error) {
	r, w := o.r, o.r.w
	o.lost = fmt.Errorf("session %q: ownership (epoch %d) lost: %w", o.session, o.lease.epoch, cause)
	w.count(CountLeaseLost)
	w.tracef("%s: session %s: ownership (epoch %d) lost: %v", r.name, o.session, o.lease.epoch, cause)
	if s := r.sessions[o.session]; s != nil && s.ownership == o {
		r.stopSession(s)
	}
	// Else the ownership was just claimed for an upgrade (its claim was
	// answered too late): as in the server, the upgrade goes on and the
	// session opens with it, and stops soon after (session).
}

// stopSession makes a session whose ownership is lost relinquish it: at
// once, or, if a batch of it is on its way to JetStream (the server's
// actor waits in Commit), when that is answered.
func (r *simReflector) stopSession(s *simSession) {
	if r.sessions[s.id] != s || s.host.Ended() {
		return
	}
	if s.host.Pending().Waiting > 0 {
		s.lostBy = s.ownership.lost
		return
	}
	r.relinquish(s, s.ownership.lost)
}

// openedLost handles a session that opened with an ownership already lost
// (its claim was answered after the lease could have ended): the server's
// actor selects between its events and the ownership's Lost channel, in
// no particular order, so the session may step (and flush) a little
// before it stops.
func (r *simReflector) openedLost(s *simSession) {
	r.w.count(CountOpenedLost)
	r.w.tracef("%s: session %s opened with an ownership already lost (epoch %d): its claim was answered too late", r.name, s.id, s.epoch())
	incarnation := r.incarnation
	var run func()
	run = func() {
		if !r.up || r.incarnation != incarnation {
			return
		}
		if r.deferred(run) {
			return
		}
		r.stopSession(s)
	}
	r.w.queue.schedule(r.w.now+r.w.rand.Between(0, keeperWakeLateMaxMs), run)
}

// relinquish ends a session whose ownership was lost
// (host.Session.Relinquish): nothing more is stored or sent, and its
// clients are asked to reconnect.
func (r *simReflector) relinquish(s *simSession, err error) {
	s.lostBy = nil
	r.w.count(CountRelinquished)
	r.w.tracef("%s: session %s relinquished: its clients are asked to reconnect", r.name, s.id)
	s.host.Relinquish(err)
	r.flushed(s)
}

// endOwnership gives up the ownership of a session that ended here
// (server.endOwnership).
func (r *simReflector) endOwnership(o *simOwnership) {
	if r.ownerships[o.session] == o {
		delete(r.ownerships, o.session)
	}
	o.release()
}

// dropUnused gives up an ownership claimed for an upgrade that did not
// lead to a session (server.dropUnusedOwnership).
func (r *simReflector) dropUnused(session string) {
	if r.sessions[session] != nil {
		return
	}
	if o := r.ownerships[session]; o != nil {
		delete(r.ownerships, session)
		o.release()
	}
}

// release stops keeping the lease and gives it up (once its renewal in
// flight, if any, is answered). A lost lease is not released.
func (o *simOwnership) release() {
	if o.released || o.lost != nil {
		return
	}
	o.released = true
	if !o.renewing {
		o.sendRelease()
	}
}

func (o *simOwnership) sendRelease() {
	r := o.r
	current := o.lease
	if !r.up || r.incarnation != o.incarnation {
		return
	}
	r.jsRequest("release of session "+o.session, r.w.now+releaseTimeoutMs, true,
		func() jsReply { return r.w.js.release(o.session, current) }, func(jsReply) {})
}

// --- upgrades: server/cluster.go forwardUpgrade ---

// upgrade is a connection's upgrade at the node the load balancer chose
// (or that a forwarding node passed it to): served here, claimed, or
// forwarded to the owner; held while the owner cannot be reached.
type upgrade struct {
	r           *simReflector
	k           *conn
	incarnation int
	deadline    int64 // the node's clock
}

// route handles the upgrade of connection k at the node.
func (r *simReflector) route(k *conn) {
	u := &upgrade{r: r, k: k, incarnation: r.incarnation, deadline: r.now() + r.w.js.ttl + forwardWaitExtraMs}
	u.attempt()
}

func (u *upgrade) alive() bool { return u.r.up && u.r.incarnation == u.incarnation }

func (u *upgrade) attempt() {
	r, k := u.r, u.k
	if !u.alive() {
		return
	}
	if k.abandoned {
		r.dropUnused(k.session)
		return
	}
	if r.draining {
		u.refuse("the node is shutting down")
		return
	}
	if r.holdsSession(k.session) {
		r.accept(k)
		return
	}
	if k.forwarded {
		// Forwarded here: serve or refuse, never forward again.
		r.claimSession(k.session, func(err error) {
			if !u.alive() {
				return
			}
			if err != nil {
				u.refuse("session owner changed, retry: " + err.Error())
				return
			}
			u.serve()
		})
		return
	}
	js := r.w.js
	r.jsRequest("owner lookup of session "+k.session, r.w.now+ownerLookupTimeoutMs, false, func() jsReply { return js.get(k.session) }, func(reply jsReply) {
		switch {
		case reply.err != nil && !errors.Is(reply.err, metronomestore.ErrNotFound):
			u.retry(fmt.Errorf("looking up the session's owner: %w", reply.err))
		case reply.err != nil || reply.lease.owner == r.name:
			// Nobody owns it (or this node's name does): claim it before
			// the upgrade.
			r.claimSession(k.session, func(err error) {
				if !u.alive() {
					return
				}
				if err != nil {
					u.retry(fmt.Errorf("claiming the session: %w", err))
					return
				}
				u.serve()
			})
		default:
			u.forward(reply.lease)
		}
	})
}

// serve accepts the connection here, unless the client gave up meanwhile.
func (u *upgrade) serve() {
	switch {
	case u.k.abandoned:
		u.r.dropUnused(u.k.session)
	case u.r.draining:
		u.refuse("the node is shutting down")
	default:
		u.r.accept(u.k)
	}
}

// retry asks again in forwardRetryMs, until the deadline (then 503).
func (u *upgrade) retry(err error) {
	r := u.r
	if r.now() >= u.deadline {
		u.refuse("session owner unavailable, retry: " + err.Error())
		return
	}
	var run func()
	run = func() {
		if !u.alive() {
			return
		}
		if r.deferred(run) {
			return
		}
		u.attempt()
	}
	r.w.queue.schedule(max(r.w.now, r.worldAt(r.now()+forwardRetryMs)), run)
}

// refuse answers the upgrade with 503: the client's connection fails and
// it tries again later.
func (u *upgrade) refuse(reason string) {
	r, k := u.r, u.k
	r.w.count(CountUpgradeRefused)
	r.w.tracef("%s: connection %d for session %s refused (503): %s", r.name, k.id, k.session, reason)
	r.w.send(k.toClient, packet{kind: packetRefused})
	r.dropUnused(k.session)
}

// forward passes the upgrade on to the owner (a reverse proxy): the
// connection is the owner's from now on, through this node.
func (u *upgrade) forward(l jsLease) {
	r, k, w := u.r, u.k, u.r.w
	owner := w.node(l.owner)
	if owner == nil || !owner.up {
		u.retry(fmt.Errorf("%w: %s (epoch %d)", errOwnerUnreachable, l.owner, l.epoch))
		return
	}
	w.count(CountForwarded)
	w.tracef("%s: connection %d for session %s forwarded to its owner %s (epoch %d)", r.name, k.id, k.session, l.owner, l.epoch)
	k.via, k.viaIncarnation, k.node, k.forwarded = r, r.incarnation, owner, true
	ownerIncarnation := owner.incarnation
	w.queue.schedule(w.now+w.rand.Between(0, forwardHopMaxMs), func() {
		if !u.alive() || k.via != r {
			return // this node went down: the connection broke
		}
		if !owner.up || owner.incarnation != ownerIncarnation {
			// The owner died before it answered: nothing was written to
			// the client; hold the upgrade and ask again.
			k.via, k.node, k.forwarded = nil, r, false
			u.retry(fmt.Errorf("%w: %s", errOwnerUnreachable, l.owner))
			return
		}
		owner.receive(k, packet{kind: packetOpen})
	})
}

// claimSession makes this node the session's owner unless it is already
// (server.claimSession); claims of one session on a node take turns.
func (r *simReflector) claimSession(session string, done func(error)) {
	if waiting, busy := r.claiming[session]; busy {
		r.claiming[session] = append(waiting, func() { r.claimSession(session, done) })
		return
	}
	if r.holdsSession(session) {
		done(nil)
		return
	}
	r.claiming[session] = nil
	r.acquire(session, func(err error) {
		waiting := r.claiming[session]
		delete(r.claiming, session)
		done(err)
		for _, next := range waiting {
			next()
		}
	})
}

// --- draining: a graceful stop of a node ---

// drain stops the node as SIGTERM does in cluster mode: it refuses new
// upgrades, every session steps Shutdown (its exact state is appended,
// its clients are asked to reconnect) and ends, which releases its lease;
// then the process exits (after drainTimeoutMs at most).
func (r *simReflector) drain() {
	w := r.w
	r.draining = true
	w.count(FaultReflectorRestart)
	w.tracef("%s: draining: sessions store their state, clients are asked to reconnect, leases are released", r.name)
	for _, id := range sortedKeys(r.sessions) {
		s := r.sessions[id]
		s.host.Step(r.now(), reflector.Shutdown{})
		r.flush(s)
	}
	incarnation := r.incarnation
	until := w.now + drainTimeoutMs
	var wait func()
	wait = func() {
		if !r.up || r.incarnation != incarnation {
			return
		}
		if r.deferred(wait) {
			return
		}
		if len(r.sessions) > 0 && w.now < until {
			w.queue.schedule(w.now+10, wait)
			return
		}
		r.down()
		w.tracef("%s: process %d shut down", r.name, r.incarnation)
	}
	wait()
}
