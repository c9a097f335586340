package sim

import (
	"bytes"
	"flag"
	"fmt"
	"strings"
	"testing"
)

var (
	seedsFlag = flag.Int("sim.seeds", 40, "simulator: number of seeds to run (from -sim.first)")
	firstFlag = flag.Uint64("sim.first", 1, "simulator: first seed")
	seedFlag  = flag.Int64("sim.seed", -1, "simulator: run only this seed, with its trace on failure")
)

// report formats a violation the way the CLI does, with the command that
// replays it.
func report(result Result) string {
	v := result.Violation
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s\n  scenario: %s\n  last events:\n", result.Seed, v.Error(), result.Scenario)
	for _, line := range v.Trace {
		b.WriteString("    " + line + "\n")
	}
	fmt.Fprintf(&b, "  replay: go run ./cmd/metronome sim --seed %d --trace", result.Seed)
	return b.String()
}

func TestSimSeeds(t *testing.T) {
	first, count := *firstFlag, uint64(*seedsFlag)
	if *seedFlag >= 0 {
		first, count = uint64(*seedFlag), 1
	}
	if testing.Short() {
		count = min(count, 10)
	}
	var events uint64
	var simulated int64
	for seed := first; seed < first+count; seed++ {
		result := Run(Options{Seed: seed})
		events += result.Events
		simulated += result.SimulatedMs
		if result.Violation != nil {
			t.Fatal(report(result))
		}
	}
	t.Logf("%d seeds, %d events, %d s simulated", count, events, simulated/1000)
}

// TestSimReplaysExactly: the same seed gives a byte-identical trace, with
// one reflector and in cluster mode.
func TestSimReplaysExactly(t *testing.T) {
	for _, options := range []Options{{Seed: 3}, {Seed: 17}, {Seed: 5, Nodes: 3}} {
		var first, second bytes.Buffer
		a, b := options, options
		a.Trace, b.Trace = &first, &second
		ra, rb := Run(a), Run(b)
		if first.Len() == 0 || !bytes.Equal(first.Bytes(), second.Bytes()) || ra.Events != rb.Events {
			t.Fatalf("seed %d (nodes %d): two runs differ (%d and %d trace bytes, %d and %d events)", options.Seed, options.Nodes, first.Len(), second.Len(), ra.Events, rb.Events)
		}
	}
}

// TestSimShowsWhatNonDurableRisks: without durability a machine crash
// loses acknowledged messages, and the simulator must say so.
func TestSimShowsWhatNonDurableRisks(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		result := Run(Options{Seed: seed, NonDurable: true})
		if v := result.Violation; v != nil {
			if v.Invariant != InvariantOrder && v.Invariant != InvariantTime {
				t.Fatalf("seed %d: %s, want a total order or time violation", seed, v.Error())
			}
			return
		}
	}
	t.Fatal("50 seeds without durability found no lost message")
}

// TestSimSpeculates: every other client speculates (client/replica
// speculation.go), and its speculative state is rebuilt and rolled back
// under faults, while the checkers compare its confirmed state with the
// non-speculative replicas' at every position.
func TestSimSpeculates(t *testing.T) {
	var total Stats
	for seed := uint64(1); seed <= 5; seed++ {
		result := Run(Options{Seed: seed})
		if result.Violation != nil {
			t.Fatal(report(result))
		}
		total.Speculated += result.Stats.Speculated
		total.SpeculationKept += result.Stats.SpeculationKept
		total.SpeculationRebuilds += result.Stats.SpeculationRebuilds
		total.SpeculationRollbacks += result.Stats.SpeculationRollbacks
	}
	if total.Speculated == 0 || total.SpeculationKept == 0 || total.SpeculationRebuilds == 0 || total.SpeculationRollbacks == 0 {
		t.Fatalf("speculation not exercised: %d inputs speculated, %d kept, %d rebuilds, %d rollbacks",
			total.Speculated, total.SpeculationKept, total.SpeculationRebuilds, total.SpeculationRollbacks)
	}
	t.Logf("%d inputs speculated, %d kept, %d rebuilds, %d rollbacks", total.Speculated, total.SpeculationKept, total.SpeculationRebuilds, total.SpeculationRollbacks)
}

// TestSimRunsClusterMode: seeds run in cluster mode (cluster.go) with the
// ownership protocol at work — leases claimed and taken over by other
// nodes, lost by paused or cut-off nodes, stale appends fenced, sessions
// relinquished, connections forwarded to owners — while every invariant
// holds. It runs seeds with three nodes until each of these happened.
func TestSimRunsClusterMode(t *testing.T) {
	counters := []string{CountClusterRun, CountLeaseClaim, CountLeaseTakeover, CountOwnTakeover, CountLeaseLost, CountFencedCommit,
		CountRelinquished, CountForwarded, FaultNodeCrash, FaultNodePause, FaultJetStreamPartition, FaultClockSkew}
	const seedsMax = 40
	total := map[string]int{}
	missing := func() []string {
		var zero []string
		for _, counter := range counters {
			if total[counter] == 0 {
				zero = append(zero, counter)
			}
		}
		return zero
	}
	seeds := 0
	for seed := uint64(1); seed <= seedsMax && len(missing()) > 0; seed++ {
		result := Run(Options{Seed: seed, Nodes: 3})
		seeds++
		if result.Violation != nil {
			t.Fatal(report(result))
		}
		for _, counter := range counters {
			total[counter] += result.Faults[counter]
		}
	}
	if zero := missing(); len(zero) > 0 {
		t.Fatalf("%d seeds in cluster mode: never %v (counts %v)", seeds, zero, total)
	}
	t.Logf("%d seeds in cluster mode: %v", seeds, total)
}
