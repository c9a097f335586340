package sim

import (
	"fmt"
	"slices"
	"strings"

	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/reflector"
)

// Fault kinds the simulator can inject. Options.Faults enables a subset.
const (
	FaultDelay            = "delay"             // per-frame latency spikes and clogged links
	FaultLoss             = "loss"              // lost packets: retransmitted after a timeout (head-of-line delay)
	FaultDuplicate        = "duplicate"         // duplicated packets: dropped by the transport's reassembly
	FaultReorder          = "reorder"           // packets overtaking each other: reassembled in order
	FaultPartition        = "partition"         // one-way and two-way partitions between a client and the reflector
	FaultReset            = "reset"             // a connection broken by the network; each side learns at its own time
	FaultClientCrash      = "client-crash"      // a client process dies; it may come back as a new view
	FaultReflectorCrash   = "reflector-crash"   // the reflector process dies; it restarts from its store
	FaultTornCommit       = "torn-commit"       // a reflector crash inside a commit: the new record is stored, the drop of covered messages is not
	FaultSlowClient       = "slow-client"       // a client that reads slowly: ticks skipped, closed with 4001 when far behind
	FaultBadInput         = "bad-input"         // rogue clients: malformed, early, forged, flooding or odd frames (sim/client.go rogueActs)
	FaultLateJoin         = "late-join"         // clients that join while the session runs, from a snapshot and replay
	FaultSnapshot         = "snapshot"          // clients upload snapshots; the reflector trims its buffer
	FaultReflectorPaused  = "reflector-paused"  // the reflector stalls (a long GC or a stopped VM), then resumes
	FaultStorageFailure   = "storage-failure"   // a commit or a load fails (full or failing disk): the session restarts from its store
	FaultReflectorRestart = "reflector-restart" // the reflector is stopped gracefully (SIGTERM: sessions persisted, clients asked to reconnect) and restarts
	FaultPersist          = "persist"           // clients save persisted data (SAVE); sessions of the same app started later begin from it
	FaultStorageDamage    = "storage-damage"    // a session's stored data is found damaged when loaded (by the store or by the reflector): quarantined, the session starts on a new timeline
	FaultStorageOutage    = "storage-outage"    // every commit, sync and load fails for up to 20 s (a full disk, freed again): sessions fail, clients are asked to reconnect until it clears
	FaultRetention        = "retention"         // idle stored sessions are deleted by the host's retention code while clients may be rejoining them

	// Faults of cluster mode (Scenario.Nodes > 1, cluster.go).
	FaultNodeCrash          = "node-crash"          // a node process dies: its sessions and connections (forwarded ones too) are gone, its leases expire later
	FaultNodePause          = "node-pause"          // a node stalls, sometimes longer than the lease: its keeper or the fence must stop it when it wakes
	FaultJetStreamPartition = "jetstream-partition" // a node is cut from JetStream: its requests and their answers are lost (timeouts)
	FaultClockSkew          = "clock-skew"          // the nodes' clocks run at different rates (0.97 to 1.03 of JetStream's)
)

// FaultRetentionRefusal counts connections refused because their session
// was being deleted (the retention fault; not a kind of its own).
const FaultRetentionRefusal = "retention-refusal"

// Counters of cluster mode, reported with the faults (not kinds of their
// own): runs in cluster mode, lease claims that succeeded (own-name
// takeovers included), claims that moved a session to another node than
// its last owner, own-name takeovers (a node that finds a lease in its
// own name it does not hold), renewals acknowledged, leases a node lost
// while it held them, appends JetStream fenced, sessions relinquished
// because the keeper said stop, connections forwarded to an owner, and
// upgrades refused with 503, sessions opened with an ownership already
// lost (its claim answered after the lease could have ended), and appends
// JetStream stored from an owner older than the lease's current epoch (not
// fenced because the newer owner had not appended since it loaded).
const (
	CountClusterRun     = "cluster-run"
	CountLeaseClaim     = "lease-claim"
	CountLeaseTakeover  = "lease-takeover"
	CountOwnTakeover    = "lease-own-takeover"
	CountLeaseRenewal   = "lease-renewal"
	CountLeaseLost      = "lease-lost"
	CountFencedCommit   = "fenced-commit"
	CountRelinquished   = "relinquished"
	CountForwarded      = "forwarded"
	CountUpgradeRefused = "upgrade-refused"
	CountOpenedLost     = "opened-lost"
	CountStaleAppend    = "stale-append"
)

// AllFaults lists every fault kind.
var AllFaults = []string{
	FaultDelay, FaultLoss, FaultDuplicate, FaultReorder, FaultPartition, FaultReset, FaultClientCrash,
	FaultReflectorCrash, FaultTornCommit, FaultSlowClient, FaultBadInput, FaultLateJoin, FaultSnapshot, FaultReflectorPaused,
	FaultStorageFailure, FaultPersist, FaultReflectorRestart, FaultStorageDamage, FaultStorageOutage, FaultRetention,
	FaultNodeCrash, FaultNodePause, FaultJetStreamPartition, FaultClockSkew,
}

// ParseFaults parses a comma-separated list of fault kinds; "all" and
// "none" are accepted, and "all,-loss" removes a kind.
func ParseFaults(list string) ([]string, error) {
	var faults []string
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "" || item == "none":
		case item == "all":
			faults = append(faults, AllFaults...)
		case strings.HasPrefix(item, "-"):
			if !slices.Contains(AllFaults, item[1:]) {
				return nil, fmt.Errorf("unknown fault kind %q (known: %s)", item[1:], strings.Join(AllFaults, ", "))
			}
			faults = slices.DeleteFunc(faults, func(f string) bool { return f == item[1:] })
		default:
			if !slices.Contains(AllFaults, item) {
				return nil, fmt.Errorf("unknown fault kind %q (known: %s)", item, strings.Join(AllFaults, ", "))
			}
			faults = append(faults, item)
		}
	}
	slices.Sort(faults)
	return slices.Compact(faults), nil
}

// Scenario is what a seed chooses before the run: the shape of the world
// and the rates of every fault.
type Scenario struct {
	Sessions          int
	ClientsPerSession []int
	TickMs            int64
	FaultPhaseMs      int64 // faults and inputs happen during this phase
	LivenessBudgetMs  int64 // then faults heal; every live client must catch up within this

	LatencyMinMs, LatencyMaxMs int64   // one-way frame latency range
	SpikeChance                float64 // per frame: an extra delay up to SpikeMaxMs
	SpikeMaxMs                 int64
	LossChance                 float64 // per packet transmission
	DuplicateChance            float64
	ReorderChance              float64
	RetransmitMs               int64 // first retransmission timeout (doubles per loss)

	// Mean times between faults, in ms of simulated time (0: never).
	PartitionEveryMs      int64
	PartitionMaxMs        int64
	ResetEveryMs          int64
	ClientCrashEveryMs    int64
	ReflectorCrashEveryMs int64
	ReflectorPauseEveryMs int64
	// ReflectorRestartEveryMs: graceful restarts (reflector-restart).
	ReflectorRestartEveryMs int64
	// JoinDelayMs is the JOINs' ticks.delay: the reflector stamps
	// messages in batches this long (0: at once).
	JoinDelayMs        int64
	TornCommitChance   float64 // per reflector crash
	ClientDownMaxMs    int64
	ReflectorDownMaxMs int64

	SlowClients     int
	SlowFrameGapMs  int64 // a slow client takes this long per frame
	RogueClients    int
	LateJoiners     int   // clients per session that start later in the fault phase
	InputEveryMs    int64 // mean time between inputs of one client
	SnapshotEveryMs int64 // session time between snapshots (the model's snapshot interval)
	// SnapshotKeepMs is the reflector's keep margin for replaced
	// snapshots (server.Config.SnapshotKeepMin, shortened): it deletes
	// them this long after the SNAP that replaced them (snapshotgc.go).
	SnapshotKeepMs int64

	// Persist: the sessions are versions of one application (one
	// persistentId); clients save persisted data with every snapshot, and
	// a session started later begins from the latest (its SYNC names it).
	Persist bool
	// SessionStartMs is when each session's first clients start.
	SessionStartMs []int64

	// Limits of the reflector, shrunk per seed so that the paths behind
	// them are reached (0: the default): the message buffer (REQU, INFO,
	// rejected messages and their re-send), tallies, users batching, the
	// time lease and the debounce table.
	BufferMax       int
	TallyTimeoutMs  int64
	UsersIntervalMs int64
	TimeLeaseMs     int64
	DebounceKeysMax int
	TalliesOpenMax  int

	// StorageFailureChance is the chance that one commit or load of a
	// session fails.
	StorageFailureChance float64
	// StorageDamageChance is the chance that loading a stored session
	// finds it damaged (store.ErrCorrupt).
	StorageDamageChance float64
	// FlushEventsMax is how many events a session steps at most before
	// one flush (its group commit), FlushHoldMs how long it holds effects
	// for more events to join.
	FlushEventsMax int
	FlushHoldMs    int64
	// SyncDelayMaxMs, when positive, pipelines the commits (the server's
	// durable mode, host/pipeline.go): a batch becomes durable at the
	// store's next sync round, up to this long after it was submitted.
	SyncDelayMaxMs int64
	// StorageOutageEveryMs is the mean time between storage outages
	// (0: none), StorageOutageMaxMs their longest duration.
	StorageOutageEveryMs int64
	StorageOutageMaxMs   int64
	// RetentionSweepEveryMs is the mean time between retention sweeps
	// (0: none); a sweep deletes the stored sessions unchanged for
	// RetentionMs that are not in memory, each deletion taking up to
	// RetentionDeleteMaxMs.
	RetentionSweepEveryMs int64
	RetentionMs           int64
	RetentionDeleteMaxMs  int64

	// Nodes is the number of reflector nodes: 1, or 3 in cluster mode
	// (cluster.go), where the nodes share one JetStream model and one node
	// at a time, the owner, stamps a session. The fields below are for
	// cluster mode only.
	Nodes int
	// LeaseTTLMs is the ownership lease (--cluster-lease, shortened so
	// that takeovers happen often).
	LeaseTTLMs int64
	// JetStreamLatencyMaxMs bounds each way of a request to JetStream.
	JetStreamLatencyMaxMs int64
	// NodeClockPermille is each node's clock rate against JetStream's
	// (1000: exact; the clock-skew fault draws 970 to 1030).
	NodeClockPermille []int64
	// Mean times between node crashes, node pauses and partitions of a
	// node from JetStream (0: never), and their longest durations.
	NodeCrashEveryMs          int64
	NodeDownMaxMs             int64
	NodePauseEveryMs          int64
	NodePauseMaxMs            int64
	JetStreamPartitionEveryMs int64
	JetStreamPartitionMaxMs   int64
}

// chooseScenario draws a scenario from r, with the kinds in faults enabled.
// nodesOverride, when positive, sets the number of nodes (else a third of
// the seeds run in cluster mode).
func chooseScenario(r *Rand, faults []string, sessionsOverride, clientsOverride, nodesOverride int) Scenario {
	on := func(kind string) bool { return slices.Contains(faults, kind) }
	s := Scenario{
		Sessions:         int(r.Between(1, 3)),
		TickMs:           []int64{50, 100, 200, 500}[r.Intn(4)],
		FaultPhaseMs:     r.Between(20_000, 120_000),
		LivenessBudgetMs: 120_000,
		LatencyMinMs:     r.Between(0, 5),
		RetransmitMs:     200,
		InputEveryMs:     r.Between(200, 3000),
		ClientDownMaxMs:  30_000,
	}
	if sessionsOverride > 0 {
		s.Sessions = sessionsOverride
	}
	s.LatencyMaxMs = s.LatencyMinMs + r.Between(0, 40)
	for range s.Sessions {
		clients := int(r.Between(2, 5))
		if clientsOverride > 0 {
			clients = clientsOverride
		}
		s.ClientsPerSession = append(s.ClientsPerSession, clients)
	}
	if on(FaultDelay) {
		s.SpikeChance = 0.01 * r.Float64()
		s.SpikeMaxMs = r.Between(50, 3000)
	}
	if on(FaultLoss) {
		s.LossChance = 0.05 * r.Float64()
	}
	if on(FaultDuplicate) {
		s.DuplicateChance = 0.05 * r.Float64()
	}
	if on(FaultReorder) {
		s.ReorderChance = 0.1 * r.Float64()
	}
	if on(FaultPartition) && r.Chance(0.7) {
		s.PartitionEveryMs = r.Between(5_000, 60_000)
		s.PartitionMaxMs = r.Between(1_000, 90_000)
	}
	if on(FaultReset) && r.Chance(0.7) {
		s.ResetEveryMs = r.Between(3_000, 60_000)
	}
	if on(FaultClientCrash) && r.Chance(0.6) {
		s.ClientCrashEveryMs = r.Between(10_000, 90_000)
	}
	if on(FaultReflectorCrash) && r.Chance(0.6) {
		s.ReflectorCrashEveryMs = r.Between(10_000, 90_000)
		s.ReflectorDownMaxMs = r.Between(0, 20_000)
		if on(FaultTornCommit) {
			s.TornCommitChance = 0.5 * r.Float64()
		}
	}
	if on(FaultReflectorPaused) && r.Chance(0.4) {
		s.ReflectorPauseEveryMs = r.Between(10_000, 60_000)
	}
	if on(FaultSlowClient) && r.Chance(0.4) {
		s.SlowClients = 1
		s.SlowFrameGapMs = r.Between(5, 100)
	}
	if on(FaultBadInput) && r.Chance(0.3) {
		s.RogueClients = int(r.Between(1, 4))
	}
	if on(FaultLateJoin) {
		s.LateJoiners = int(r.Between(0, 2))
	}
	if on(FaultSnapshot) {
		s.SnapshotEveryMs = r.Between(5_000, 20_000)
	}
	if on(FaultStorageFailure) && r.Chance(0.3) {
		s.StorageFailureChance = 0.01 * r.Float64()
	}
	if on(FaultSnapshot) && r.Chance(0.5) {
		s.BufferMax = int(r.Between(40, 400))
	}
	if r.Chance(0.5) {
		s.TallyTimeoutMs = r.Between(100, 2000)
		s.UsersIntervalMs = r.Between(1, 500)
		s.TimeLeaseMs = r.Between(500, 5000)
		s.DebounceKeysMax = int(r.Between(1, 8))
		s.TalliesOpenMax = int(r.Between(1, 4))
	}
	if on(FaultReflectorRestart) && r.Chance(0.4) {
		s.ReflectorRestartEveryMs = r.Between(10_000, 60_000)
	}
	if r.Chance(0.3) {
		s.JoinDelayMs = r.Between(1, 100)
	}
	s.SessionStartMs = make([]int64, s.Sessions)
	if on(FaultPersist) && on(FaultSnapshot) && r.Chance(0.5) {
		s.Persist = true
		for i := 1; i < s.Sessions; i++ {
			s.SessionStartMs[i] = r.Between(0, s.FaultPhaseMs/2)
		}
	}
	// Group commit: one event per flush (every step flushed at once), a
	// few, or the server's batch; held up to a few milliseconds.
	s.FlushEventsMax = []int{1, 2, 8, 256}[r.Intn(4)]
	if s.FlushEventsMax > 1 {
		s.FlushHoldMs = r.Between(0, 5)
	}
	if on(FaultStorageDamage) && r.Chance(0.3) {
		s.StorageDamageChance = 0.2 * r.Float64()
	}
	if r.Chance(0.6) {
		s.SyncDelayMaxMs = []int64{1, 3, 20}[r.Intn(3)]
	}
	if on(FaultStorageOutage) && r.Chance(0.3) {
		s.StorageOutageEveryMs = r.Between(10_000, 60_000)
		s.StorageOutageMaxMs = r.Between(500, storageOutageMaxMs)
	}
	if on(FaultRetention) && r.Chance(0.4) {
		s.RetentionSweepEveryMs = r.Between(1_000, 10_000)
		// None (every stored session not in memory goes), shorter than a
		// time lease (sessions in memory look idle: only the in-memory
		// rule protects them), or up to twice the session's 10 s
		// keep-alive.
		s.RetentionMs = []int64{0, r.Between(0, 2_000), r.Between(2_000, 20_000)}[r.Intn(3)]
		s.RetentionDeleteMaxMs = r.Between(0, 5_000)
	}
	if on(FaultSnapshot) {
		// Longer than a client waits for its SYNC (link.SyncTimeoutMsDefault,
		// 5 s), after which a simulated client downloads at once.
		s.SnapshotKeepMs = r.Between(snapshotKeepMinMs, 30_000)
	}
	// Cluster mode is drawn last, so that the draws above (and so every
	// single-node run) are the same with or without it.
	s.Nodes = 1
	if r.Chance(clusterChance) {
		s.Nodes = clusterNodes
	}
	if nodesOverride > 0 {
		s.Nodes = nodesOverride
	}
	if s.Nodes > 1 {
		s.chooseCluster(r, on)
	}
	return s
}

// clusterChance is the share of seeds that run in cluster mode, with
// clusterNodes nodes.
const (
	clusterChance = 1.0 / 3
	clusterNodes  = 3
)

// chooseCluster draws the cluster's lease, latencies and faults. What a
// cluster does not have is switched off: the local disk's faults (the
// sessions live in JetStream, replicated: a node's crash tears or loses
// nothing), the pipelined disk, the retention and the snapshot garbage
// collection (both off in cluster mode, docs/cluster.md), and the single
// reflector's crashes and pauses (node-crash and node-pause instead). A
// graceful restart (reflector-restart) drains one node.
func (s *Scenario) chooseCluster(r *Rand, on func(string) bool) {
	s.ReflectorCrashEveryMs, s.ReflectorDownMaxMs, s.TornCommitChance, s.ReflectorPauseEveryMs = 0, 0, 0, 0
	s.StorageFailureChance, s.StorageDamageChance, s.StorageOutageEveryMs, s.StorageOutageMaxMs = 0, 0, 0, 0
	s.RetentionSweepEveryMs, s.RetentionMs, s.RetentionDeleteMaxMs = 0, 0, 0
	s.SyncDelayMaxMs, s.SnapshotKeepMs = 0, 0
	s.LeaseTTLMs = r.Between(1_000, 3_000)
	s.JetStreamLatencyMaxMs = r.Between(1, 10)
	s.NodeClockPermille = make([]int64, s.Nodes)
	skew := on(FaultClockSkew) && r.Chance(0.7)
	for i := range s.NodeClockPermille {
		s.NodeClockPermille[i] = 1000
		if skew {
			s.NodeClockPermille[i] = r.Between(970, 1030)
		}
	}
	if on(FaultNodeCrash) && r.Chance(0.6) {
		s.NodeCrashEveryMs = r.Between(10_000, 60_000)
		s.NodeDownMaxMs = r.Between(0, 20_000)
	}
	if on(FaultNodePause) && r.Chance(0.7) {
		s.NodePauseEveryMs = r.Between(5_000, 30_000)
		// Up to several leases: the node's sessions are taken over while
		// it sleeps, and it wakes up with effects to flush.
		s.NodePauseMaxMs = r.Between(s.LeaseTTLMs, 10_000)
	}
	if on(FaultJetStreamPartition) && r.Chance(0.5) {
		s.JetStreamPartitionEveryMs = r.Between(10_000, 60_000)
		s.JetStreamPartitionMaxMs = r.Between(500, 10_000)
	}
}

// snapshotKeepMinMs is the shortest keep margin the simulator chooses:
// just above the time within which a client uses a SYNC or gives up.
const snapshotKeepMinMs = link.SyncTimeoutMsDefault + 1

// storageOutageMaxMs bounds the duration of a storage outage.
const storageOutageMaxMs = 20_000

// String describes the scenario in one line.
func (s Scenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d session(s) with %v clients, tick %d ms, faults for %d ms then %d ms to heal; latency %d-%d ms",
		s.Sessions, s.ClientsPerSession, s.TickMs, s.FaultPhaseMs, s.LivenessBudgetMs, s.LatencyMinMs, s.LatencyMaxMs)
	add := func(format string, args ...any) { b.WriteString("; "); fmt.Fprintf(&b, format, args...) }
	if s.SpikeChance > 0 {
		add("spikes %.2f%% up to %d ms", 100*s.SpikeChance, s.SpikeMaxMs)
	}
	if s.LossChance > 0 {
		add("loss %.2f%%", 100*s.LossChance)
	}
	if s.DuplicateChance > 0 {
		add("duplicates %.2f%%", 100*s.DuplicateChance)
	}
	if s.ReorderChance > 0 {
		add("reorder %.2f%%", 100*s.ReorderChance)
	}
	if s.PartitionEveryMs > 0 {
		add("partition every ~%d ms for up to %d ms", s.PartitionEveryMs, s.PartitionMaxMs)
	}
	if s.ResetEveryMs > 0 {
		add("connection reset every ~%d ms", s.ResetEveryMs)
	}
	if s.ClientCrashEveryMs > 0 {
		add("client crash every ~%d ms", s.ClientCrashEveryMs)
	}
	if s.ReflectorCrashEveryMs > 0 {
		add("reflector crash every ~%d ms (down up to %d ms, torn %.0f%%)", s.ReflectorCrashEveryMs, s.ReflectorDownMaxMs, 100*s.TornCommitChance)
	}
	if s.ReflectorPauseEveryMs > 0 {
		add("reflector pause every ~%d ms", s.ReflectorPauseEveryMs)
	}
	if s.SlowClients > 0 {
		add("%d slow client(s), %d ms per frame", s.SlowClients, s.SlowFrameGapMs)
	}
	if s.RogueClients > 0 {
		add("%d rogue client(s)", s.RogueClients)
	}
	if s.LateJoiners > 0 {
		add("%d late joiner(s) per session", s.LateJoiners)
	}
	if s.SnapshotEveryMs > 0 {
		add("snapshot every ~%d ms", s.SnapshotEveryMs)
	}
	if s.SnapshotKeepMs > 0 {
		add("replaced snapshots kept %d ms", s.SnapshotKeepMs)
	}
	if s.ReflectorRestartEveryMs > 0 {
		add("graceful reflector restart every ~%d ms", s.ReflectorRestartEveryMs)
	}
	if s.JoinDelayMs > 0 {
		add("messages stamped in batches of %d ms", s.JoinDelayMs)
	}
	if s.BufferMax > 0 {
		add("message buffer %d", s.BufferMax)
	}
	if s.TallyTimeoutMs > 0 {
		add("tally timeout %d ms, users every %d ms, time lease %d ms, %d debounce keys, %d open tallies",
			s.TallyTimeoutMs, s.UsersIntervalMs, s.TimeLeaseMs, s.DebounceKeysMax, s.TalliesOpenMax)
	}
	if s.StorageDamageChance > 0 {
		add("stored sessions damaged at %.1f%% of loads", 100*s.StorageDamageChance)
	}
	if s.StorageFailureChance > 0 {
		add("storage failures %.2f%%", 100*s.StorageFailureChance)
	}
	if s.StorageOutageEveryMs > 0 {
		add("storage outage every ~%d ms for up to %d ms", s.StorageOutageEveryMs, s.StorageOutageMaxMs)
	}
	if s.RetentionSweepEveryMs > 0 {
		add("retention sweep every ~%d ms: sessions idle %d ms deleted (each within %d ms)", s.RetentionSweepEveryMs, s.RetentionMs, s.RetentionDeleteMaxMs)
	}
	if s.Persist {
		add("persisted data; sessions start at %v ms", s.SessionStartMs)
	}
	if s.Nodes > 1 {
		add("cluster of %d nodes: lease %d ms, JetStream latency up to %d ms each way, clocks %s", s.Nodes, s.LeaseTTLMs, s.JetStreamLatencyMaxMs, clockRates(s.NodeClockPermille))
		if s.NodeCrashEveryMs > 0 {
			add("node crash every ~%d ms (down up to %d ms)", s.NodeCrashEveryMs, s.NodeDownMaxMs)
		}
		if s.NodePauseEveryMs > 0 {
			add("node pause every ~%d ms for up to %d ms", s.NodePauseEveryMs, s.NodePauseMaxMs)
		}
		if s.JetStreamPartitionEveryMs > 0 {
			add("node cut from JetStream every ~%d ms for up to %d ms", s.JetStreamPartitionEveryMs, s.JetStreamPartitionMaxMs)
		}
	}
	add("flush after %d event(s) or %d ms", s.FlushEventsMax, s.FlushHoldMs)
	if s.SyncDelayMaxMs > 0 {
		add("pipelined commits, durable within %d ms", s.SyncDelayMaxMs)
	}
	return b.String()
}

// clockRates formats the nodes' clock rates ("[0.981 1.000 1.027]").
func clockRates(permille []int64) string {
	rates := make([]string, len(permille))
	for i, p := range permille {
		rates[i] = fmt.Sprintf("%d.%03d", p/1000, p%1000)
	}
	return "[" + strings.Join(rates, " ") + "]"
}

// reflectorConfig is the reflector's configuration for the scenario: the
// scenario's shrunk limits, every other field its default, filled and
// validated as the server fills and validates its own.
func (s *Scenario) reflectorConfig() (reflector.Config, error) {
	config := reflector.Config{ReflectorName: "sim"}
	if s.BufferMax > 0 {
		config.MessagesSinceSnapshotMax = s.BufferMax
		config.MessagesRequestSnapshotFrom = s.BufferMax / 2
		// Room for the snapshot flow of a full buffer: a poll, a vote per
		// client, the tally, users messages.
		config.MessagesSnapshotReserve = 20
	}
	if s.TallyTimeoutMs > 0 {
		config.TallyTimeoutMs = s.TallyTimeoutMs
		config.UsersIntervalMs = s.UsersIntervalMs
		config.TimeLeaseMs = s.TimeLeaseMs
		config.DebounceKeysMax = s.DebounceKeysMax
		config.TalliesOpenMax = s.TalliesOpenMax
	}
	config = config.WithDefaults()
	return config, config.Validate()
}
