// Package sim is the deterministic simulator: the whole system — the
// production reflector core (package reflector) behind a simulated shell
// and store, the production client link (package client/link) with a small
// deterministic model per client, and a faulty network between them — in
// one thread, on a virtual clock, driven by one seed.
//
// The seed chooses the scenario (sessions, clients, tick rate, fault rates,
// one reflector or a cluster of three nodes sharing a model of JetStream:
// cluster.go) and every event: latencies, lost and duplicated packets,
// partitions, connection resets, client and reflector crashes and
// restarts, torn commits, slow and rogue clients, late joiners, snapshot
// uploads; in cluster mode node crashes and pauses, nodes cut from
// JetStream, lease takeovers and fenced appends. Safety
// invariants are checked after every step; after the fault phase every
// fault heals and every live client must catch up within a budget
// (liveness). A violation stops the run with the seed, the invariant, the
// last events and the command that replays it. The same seed on the same
// commit gives the same run, byte for byte: nothing here reads a clock,
// the operating system or a global random source, and nothing depends on
// map iteration order.
package sim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/host"
)

// BugLostDurableWrite makes the simulated disk lose the last acknowledged
// commit at a reflector crash. The other bugs the self-test re-introduces
// live in the reflector (reflector.InjectBug, -tags simbugs).
const BugLostDurableWrite = "lost-durable-write"

// Bugs in the simulated clients, for the self-test of the checkers that
// watch the client side.
const (
	// BugNoInputDedup: models apply a re-sent input again.
	BugNoInputDedup = "no-input-dedup"
	// BugSnapshotWrongSeq: a client labels its snapshot one message newer
	// than the state it holds, so joiners skip that message.
	BugSnapshotWrongSeq = "snapshot-wrong-seq"
	// BugSnapshotKeepNone: the reflector deletes a replaced snapshot as
	// soon as the SNAP that replaced it is durable, while SYNCs that name
	// it may still be on their way.
	BugSnapshotKeepNone = "snapshot-keep-none"
	// BugSpeculationLeak: speculative clients apply their unconfirmed
	// inputs to the confirmed state instead of a copy of it.
	BugSpeculationLeak = "speculation-leak"
)

// SimulatorBugs lists the bugs any build can re-introduce.
var SimulatorBugs = []string{BugLostDurableWrite, BugNoInputDedup, BugSnapshotWrongSeq, BugSnapshotKeepNone, BugSpeculationLeak}

// Limits of a run.
const (
	// traceLinesKept is how many recent events a violation report shows.
	traceLinesKept = 40
	// eventsPerRunMax stops a runaway run (a livelock is a liveness
	// violation, not a hang).
	eventsPerRunMax = 20_000_000
	// catchUpCheckEveryMs is how often the liveness phase checks whether
	// every live client caught up.
	catchUpCheckEveryMs = 250
	// storeSyncIntervalMs is how often a non-durable store's data reaches
	// the disk (the operating system's write-back interval, shortened).
	storeSyncIntervalMs = 1000
)

// Options configure a run.
type Options struct {
	Seed uint64
	// Faults are the enabled fault kinds (nil: all).
	Faults []string
	// Sessions and Clients override the scenario's counts when non-zero.
	Sessions, Clients int
	// Nodes, when non-zero, sets the number of reflector nodes (1, or
	// several for cluster mode); else the seed draws it.
	Nodes int
	// Bug re-introduces a known bug (BugLostDurableWrite, or a name from
	// reflector.BugNames in builds with -tags simbugs).
	Bug string
	// Trace, when set, receives every event as a line of text.
	Trace io.Writer
	// NonDurable runs the reflector's store as metronome serve
	// --durable=false does: commits are acknowledged before they are
	// synced, the disk syncs every storeSyncIntervalMs, and a reflector
	// crash is a machine crash that loses the unsynced tail. Invariants are
	// expected to break: this shows what that mode risks.
	NonDurable bool
}

// Result is what a run did.
type Result struct {
	Seed        uint64
	Scenario    Scenario
	SimulatedMs int64
	Events      uint64
	// Faults counts injected faults per kind.
	Faults map[string]int
	Stats  Stats
	// CatchUpMs is how long after the faults healed every live client had
	// caught up (-1 if they did not).
	CatchUpMs int64
	Violation *Violation
}

// Stats count what happened in a run.
type Stats struct {
	Stamped, Applied, Inputs, Snapshots, ClientStarts, Reconnects, Resets, SeamlessRejoins, InputsResent int
	// SnapshotsDeleted counts the snapshots the reflector deleted
	// (snapshotgc.go).
	SnapshotsDeleted int
	// Speculation, summed over the speculative clients' last
	// incarnations (client/replica SpeculationStats): inputs speculated,
	// kept in order, speculative states rebuilt, and rollbacks.
	Speculated, SpeculationKept, SpeculationRebuilds, SpeculationRollbacks int
}

// World is one simulated run.
type World struct {
	options  Options
	scenario Scenario
	rand     *Rand
	now      int64
	queue    queue
	events   uint64

	// reflector is the one reflector process, or in cluster mode the first
	// of nodes; js is the cluster's JetStream (nil with one reflector).
	reflector *simReflector
	nodes     []*simReflector
	js        *jetStream
	clients   []*client
	conns     map[uint64]*conn
	nextConn  uint64
	files     map[string][]byte // the file server: snapshots, durable across crashes
	// fileStoredAt is when each file was uploaded, deletedFiles what the
	// reflector deleted (snapshotgc.go).
	fileStoredAt map[string]int64
	deletedFiles map[string]deletedFile
	checker      *checker
	app          island.App[simModel]

	healing   bool
	faults    map[string]int
	stats     Stats
	recent    []string
	violation *Violation
	catchUpMs int64
}

// Run runs one seed.
func Run(options Options) Result {
	w, err := newWorld(options)
	if err != nil {
		return Result{Seed: options.Seed, Violation: &Violation{Invariant: "setup", Detail: err.Error()}}
	}
	return w.run()
}

func newWorld(options Options) (*World, error) {
	faults := options.Faults
	if faults == nil {
		faults = AllFaults
	}
	root := NewRand(options.Seed)
	scenarioRand := root.Fork()
	w := &World{
		options:      options,
		rand:         root.Fork(),
		conns:        map[uint64]*conn{},
		files:        map[string][]byte{},
		fileStoredAt: map[string]int64{},
		deletedFiles: map[string]deletedFile{},
		faults:       map[string]int{},
		catchUpMs:    -1,
	}
	w.scenario = chooseScenario(scenarioRand, faults, options.Sessions, options.Clients, options.Nodes)
	w.checker = newChecker(w)
	snapshotIntervalMs := w.scenario.SnapshotEveryMs
	if snapshotIntervalMs <= 0 {
		snapshotIntervalMs = 1 << 50 // snapshots off
	}
	w.app = simApp(snapshotIntervalMs)
	config, err := w.scenario.reflectorConfig()
	if err != nil {
		return nil, err
	}
	hostOptions := host.Options{Config: config}
	var deletionBugs host.Deletions
	if options.Bug != "" && !slices.Contains(SimulatorBugs, options.Bug) {
		if err := injectBug(&hostOptions, &deletionBugs, options.Bug); err != nil {
			return nil, err
		}
	}
	if w.scenario.Nodes > 1 {
		w.newCluster(hostOptions, deletionBugs) // cluster.go
		return w, nil
	}
	w.reflector = &simReflector{w: w, options: hostOptions, deletionBugs: deletionBugs, store: newStore(w), clockRate: 1000,
		flushEventsMax: w.scenario.FlushEventsMax, flushHoldMs: w.scenario.FlushHoldMs}
	w.nodes = []*simReflector{w.reflector}
	w.reflector.store.nonDurable = options.NonDurable
	if !options.NonDurable {
		w.reflector.store.syncDelayMaxMs = w.scenario.SyncDelayMaxMs
	}
	w.reflector.store.failChance = w.scenario.StorageFailureChance
	w.reflector.store.damageChance = w.scenario.StorageDamageChance
	return w, nil
}

func (w *World) run() Result {
	s := &w.scenario
	w.tracef("seed %d: %s", w.options.Seed, s)
	for _, r := range w.nodes {
		r.start()
	}
	for i := range s.Sessions {
		session := "s" + strconv.Itoa(i+1)
		for j := range s.ClientsPerSession[i] + s.LateJoiners {
			// Every other client speculates (chosen without a random draw,
			// so runs of a seed are the same with and without speculation).
			c := &client{w: w, name: fmt.Sprintf("%sc%d", session, j+1), session: session, speculative: j%2 == 1}
			w.link(c)
			w.clients = append(w.clients, c)
			at := s.SessionStartMs[i] + w.rand.Between(0, 2000)
			if j >= s.ClientsPerSession[i] {
				at = s.SessionStartMs[i] + w.rand.Between(5_000, max(5_000, s.FaultPhaseMs))
				w.count(FaultLateJoin)
			}
			if j == 0 && i < s.SlowClients {
				c.slow = true
			}
			w.queue.schedule(at, w.startClient(c))
		}
		for j := range s.RogueClients {
			c := &client{w: w, name: fmt.Sprintf("%srogue%d", session, j+1), session: session, rogue: true,
				rogueAct: w.rand.Intn(len(rogueActs))}
			w.link(c)
			w.clients = append(w.clients, c)
			w.queue.schedule(w.rand.Between(1000, max(1000, s.FaultPhaseMs)), func() { c.start() })
		}
	}
	w.faultLoops()
	if w.options.NonDurable && w.js == nil {
		w.syncLoop()
	}
	w.queue.schedule(s.FaultPhaseMs, w.heal)
	end := s.FaultPhaseMs + s.LivenessBudgetMs
	for w.violation == nil {
		e, ok := w.queue.next()
		if !ok || e.at > end {
			break
		}
		w.now = e.at
		w.events++
		if w.events > eventsPerRunMax {
			w.violate(InvariantLiveness, fmt.Sprintf("more than %d events (eventsPerRunMax): a livelock", eventsPerRunMax))
			break
		}
		e.run()
		if w.catchUpMs >= 0 {
			break
		}
	}
	if w.violation == nil && w.catchUpMs < 0 {
		w.now = end
		w.violate(InvariantLiveness, "not every live client caught up within the budget: "+w.lagging())
	}
	if w.violation == nil {
		w.checkExactlyOnce()
	}
	for _, c := range w.clients {
		if c.link != nil {
			st := c.link.Stats()
			w.stats.Reconnects += st.Connects - 1
			w.stats.Resets += st.Resets
			w.stats.SeamlessRejoins += st.SeamlessRejoins
			w.stats.InputsResent += st.InputsResent
			spec := c.replica.SpeculationStats()
			w.stats.Speculated += spec.Speculated
			w.stats.SpeculationKept += spec.Kept
			w.stats.SpeculationRebuilds += spec.Rebuilds
			w.stats.SpeculationRollbacks += spec.Rollbacks
		}
	}
	return Result{Seed: w.options.Seed, Scenario: w.scenario, SimulatedMs: w.now, Events: w.events,
		Faults: w.faults, Stats: w.stats, CatchUpMs: w.catchUpMs, Violation: w.violation}
}

// syncLoop flushes a non-durable store periodically.
func (w *World) syncLoop() {
	w.queue.schedule(w.now+storeSyncIntervalMs, func() {
		w.reflector.store.sync()
		w.syncLoop()
	})
}

// link draws a client's own delay distribution: a base latency and a
// jitter range inside the scenario's bounds.
func (w *World) link(c *client) {
	s := &w.scenario
	c.latencyMinMs = w.rand.Between(s.LatencyMinMs, s.LatencyMaxMs)
	c.latencyMaxMs = w.rand.Between(c.latencyMinMs, s.LatencyMaxMs)
}

func (w *World) startClient(c *client) func() {
	return func() {
		if w.violation == nil {
			w.stats.ClientStarts++
			c.start()
			w.inputLoop(c, c.incarnation)
		}
	}
}

// inputLoop submits inputs at random intervals while c lives and faults
// are on (the liveness phase lets the system quiesce).
func (w *World) inputLoop(c *client, incarnation int) {
	if c.rogue {
		return
	}
	w.queue.schedule(w.now+w.rand.Exponential(w.scenario.InputEveryMs), func() {
		if w.healing || !c.alive || c.incarnation != incarnation {
			return
		}
		c.submitInput()
		w.inputLoop(c, incarnation)
	})
}

// every runs f at exponentially distributed intervals with the given mean
// during the fault phase.
func (w *World) every(meanMs int64, f func()) {
	if meanMs <= 0 {
		return
	}
	w.queue.schedule(w.now+w.rand.Exponential(meanMs), func() {
		if w.healing {
			return
		}
		f()
		w.every(meanMs, f)
	})
}

func (w *World) liveClients() []*client {
	var live []*client
	for _, c := range w.clients {
		if c.alive && !c.rogue {
			live = append(live, c)
		}
	}
	return live
}

func (w *World) pick(clients []*client) *client {
	if len(clients) == 0 {
		return nil
	}
	return clients[w.rand.Intn(len(clients))]
}

// faultLoops schedules the recurring faults of the scenario.
func (w *World) faultLoops() {
	s := &w.scenario
	w.every(s.PartitionEveryMs, func() {
		c := w.pick(w.liveClients())
		if c == nil || c.partitionUp || c.partitionDown {
			return
		}
		kind := w.rand.Intn(3)
		c.partitionUp, c.partitionDown = kind != 2, kind != 1
		duration := w.rand.Between(100, s.PartitionMaxMs)
		w.count(FaultPartition)
		w.tracef("%s: partitioned (%s) for %d ms", c.viewID, []string{"two-way", "client to reflector", "reflector to client"}[kind], duration)
		w.queue.schedule(w.now+duration, func() { w.healPartition(c) })
	})
	w.every(s.ResetEveryMs, func() {
		c := w.pick(w.liveClients())
		if c == nil || c.current == nil || c.current.clientClosed {
			return
		}
		w.count(FaultReset)
		w.tracef("%s: connection %d reset by the network", c.viewID, c.current.id)
		w.reset(c.current.toServer)
		w.reset(c.current.toClient)
	})
	w.every(s.ClientCrashEveryMs, func() {
		c := w.pick(w.liveClients())
		if c == nil {
			return
		}
		if c.replica != nil && w.rand.Chance(0.3) {
			c.leave()
		} else {
			c.crash()
		}
		if w.rand.Chance(0.8) {
			w.queue.schedule(w.now+w.rand.Between(0, s.ClientDownMaxMs), func() {
				if !c.alive && !w.healing {
					w.startClient(c)()
				}
			})
		}
	})
	w.every(s.ReflectorCrashEveryMs, func() {
		if !w.reflector.up {
			return
		}
		w.reflector.crash(w.rand.Chance(s.TornCommitChance))
		w.queue.schedule(w.now+w.rand.Between(0, s.ReflectorDownMaxMs), func() {
			if !w.reflector.up {
				w.reflector.start()
			}
		})
	})
	w.every(s.ReflectorRestartEveryMs, func() {
		r := w.pickNode()
		if !r.up || w.now < r.pausedUntil || r.draining {
			return
		}
		r.shutdown()
		var restart func()
		restart = func() {
			if r.draining { // a node drains its sessions first (cluster.go)
				w.queue.schedule(w.now+100, restart)
				return
			}
			if !r.up {
				r.start()
			}
		}
		w.queue.schedule(w.now+w.rand.Between(0, 5_000), restart)
	})
	w.every(s.StorageOutageEveryMs, func() {
		st := w.reflector.store
		if st.outage() {
			return
		}
		duration := w.rand.Between(100, s.StorageOutageMaxMs)
		st.outageUntil = w.now + duration
		w.count(FaultStorageOutage)
		w.tracef("store: storage outage for %d ms: every commit, sync and load fails", duration)
	})
	w.every(s.RetentionSweepEveryMs, func() { w.reflector.sweepRetention() })
	w.every(s.ReflectorPauseEveryMs, func() {
		if w.now < w.reflector.pausedUntil {
			return
		}
		pause := w.rand.Between(100, 10_000)
		w.reflector.pausedUntil = w.now + pause
		w.count(FaultReflectorPaused)
		w.tracef("reflector: paused for %d ms", pause)
	})
	w.clusterFaultLoops() // cluster.go
}

func (w *World) healPartition(c *client) {
	if !c.partitionUp && !c.partitionDown {
		return
	}
	c.partitionUp, c.partitionDown = false, false
	w.tracef("%s: partition healed", c.name)
	w.resume(c)
}

// heal ends the fault phase: partitions heal, the reflector runs, crashed
// clients come back; from now on no fault is injected and no input is
// submitted, and every live client must catch up.
func (w *World) heal() {
	w.healing = true
	w.tracef("faults heal; every live client must catch up within %d ms", w.scenario.LivenessBudgetMs)
	for _, r := range w.nodes {
		if !r.up {
			r.start()
		}
	}
	if w.js == nil {
		w.reflector.pausedUntil = min(w.reflector.pausedUntil, w.now)
		w.reflector.store.outageUntil = min(w.reflector.store.outageUntil, w.now)
	}
	// A node's pause and its cut from JetStream end by themselves (within
	// 10 s): what the node deferred runs when it wakes, in order.
	for _, c := range w.clients {
		if c.rogue {
			continue
		}
		w.healPartition(c)
		if !c.alive && c.incarnation > 0 {
			w.startClient(c)()
		}
	}
	w.catchUpLoop(w.now)
}

func (w *World) catchUpLoop(healedAt int64) {
	w.queue.schedule(w.now+catchUpCheckEveryMs, func() {
		if w.lagging() == "" {
			w.catchUpMs = w.now - healedAt
			w.tracef("every live client caught up %d ms after the faults healed", w.catchUpMs)
			return
		}
		w.catchUpLoop(healedAt)
	})
}

// lagging describes the live clients that have not caught up ("" if none):
// joined, at the reflector's latest seq of their session, no input
// waiting, and every connection it holds open is the current one.
func (w *World) lagging() string {
	var lag []string
	for _, c := range w.liveClients() {
		if c.link == nil {
			continue
		}
		session := w.servingSession(c.session)
		timeline, seq, _, ok := c.link.Position()
		switch {
		case !c.link.Joined():
			lag = append(lag, fmt.Sprintf("%s is %s (joined: %v)", c.viewID, c.link.Phase(), c.joined))
		case session == nil:
			lag = append(lag, fmt.Sprintf("%s: session %s is not running", c.viewID, c.session))
		case session.host.Core() == nil:
			lag = append(lag, fmt.Sprintf("%s: session %s failed: %v", c.viewID, c.session, session.host.Failed()))
		case !ok || timeline != session.host.Core().Record().Timeline || seq != session.host.Core().Record().Seq:
			record := session.host.Core().Record()
			lag = append(lag, fmt.Sprintf("%s at %s/%d, reflector at %s/%d", c.viewID, timeline, seq, record.Timeline, record.Seq))
		case c.link.PendingInputs() > 0:
			lag = append(lag, fmt.Sprintf("%s has %d inputs not seen reflected", c.viewID, c.link.PendingInputs()))
		}
	}
	return strings.Join(lag, "; ")
}

// checkExactlyOnce: every input a live client submitted took effect exactly
// once in every replica of its session (the replicas agree, so one model
// per session is checked against every live client's submissions).
func (w *World) checkExactlyOnce() {
	for _, c := range w.liveClients() {
		if c.model() == nil {
			continue
		}
		for _, sender := range w.liveClients() {
			if sender.session != c.session || sender.submitted == 0 {
				continue
			}
			applied := c.model().Model().Applied[sender.viewID]
			if sender.submittedBeforeDamage > 0 {
				// The session lost its stored data: only the inputs
				// submitted since must all have taken effect.
				if missing := missingInputs(applied, sender.submittedBeforeDamage+1, sender.submitted); missing != 0 {
					w.violate(InvariantExactlyOnce, fmt.Sprintf("%s submitted inputs 1..%d, %d..%d after its session's storage was damaged; %s's model applied %s, not %d",
						sender.viewID, sender.submitted, sender.submittedBeforeDamage+1, sender.submitted, c.viewID, describeApplied(applied), missing))
					return
				}
				continue
			}
			if applied == nil || applied.Set.Watermark != sender.submitted || len(applied.Set.Above) > 0 || applied.Applications != sender.submitted {
				w.violate(InvariantExactlyOnce, fmt.Sprintf("%s submitted inputs 1..%d; %s's model applied %s",
					sender.viewID, sender.submitted, c.viewID, describeApplied(applied)))
				return
			}
		}
	}
}

// missingInputs returns the first input in from..to that a did not apply,
// or 0.
func missingInputs(a *appliedInputs, from, to uint64) uint64 {
	for input := from; input <= to; input++ {
		if a == nil || (input > a.Set.Watermark && !slices.Contains(a.Set.Above, input)) {
			return input
		}
	}
	return 0
}

func describeApplied(a *appliedInputs) string {
	if a == nil {
		return "none"
	}
	return fmt.Sprintf("1..%d and %v, taking effect %d times", a.Set.Watermark, a.Set.Above, a.Applications)
}

func (w *World) count(kind string) { w.faults[kind]++ }

// persistentID is the persistentId of a session's JOINs: one for all
// sessions when they are versions of one application (Scenario.Persist).
func (w *World) persistentID(session string) string {
	if w.scenario.Persist {
		return "app"
	}
	return session
}

func (w *World) sortedConns() []*conn {
	ids := make([]uint64, 0, len(w.conns))
	for id := range w.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	conns := make([]*conn, len(ids))
	for i, id := range ids {
		conns[i] = w.conns[id]
	}
	return conns
}

// tracef records an event line (simulated data only, so traces of one
// seed are byte-identical).
func (w *World) tracef(format string, args ...any) {
	line := fmt.Sprintf("%9d ms  ", w.now) + fmt.Sprintf(format, args...)
	if w.options.Trace != nil {
		io.WriteString(w.options.Trace, line+"\n")
	}
	if len(w.recent) == traceLinesKept {
		copy(w.recent, w.recent[1:])
		w.recent = w.recent[:traceLinesKept-1]
	}
	w.recent = append(w.recent, line)
}

// violate stops the run at the first broken invariant.
func (w *World) violate(invariant, detail string) {
	if w.violation != nil {
		return
	}
	w.tracef("VIOLATION of %s: %s", invariant, detail)
	w.violation = &Violation{Invariant: invariant, Detail: detail, AtMs: w.now, Trace: slices.Clone(w.recent)}
}
