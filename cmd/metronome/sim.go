package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/metronome-sync/metronome/sim"
)

const simUsage = `metronome sim — run the whole system under faults in one deterministic simulation.

Each seed builds a world: the real reflector core behind a simulated shell
and disk, real client links with a small deterministic model each, and a
faulty network between them. The seed chooses the scenario (sessions,
clients, tick rate, fault rates) and every event. Safety invariants (total
order, monotonic time, exactly-once, join correctness, convergence) are
checked after every step; after the fault phase everything heals and every
live client must catch up (liveness). The first violation stops the seed and
prints the invariant, the last events and the command that replays it.

Usage:
  metronome sim [flags]

Examples:
  metronome sim --seeds 1000                 run seeds 1..1000 on every core
  metronome sim --seed 42 --trace            replay seed 42 with every event
  metronome sim --seeds 200 --faults all,-reflector-crash
  metronome sim --seeds 100 --faults none    no faults: a baseline

Fault kinds: ` + "%s" + `
The same seed on the same commit gives the same run; --trace output holds
only simulated data and is byte-identical across replays.

Flags:
`

type simOptions struct {
	seeds, workers, sessions, clients int
	first, seed                       int64
	faults, bug                       string
	trace, jsonOut, keepGoing         bool
	nonDurable                        bool
}

func simCommand(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("sim", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var o simOptions
	flags.IntVar(&o.seeds, "seeds", 100, "number of seeds to run, starting at --first")
	flags.Int64Var(&o.first, "first", 1, "first seed of the range")
	flags.Int64Var(&o.seed, "seed", -1, "run only this seed (replay)")
	flags.StringVar(&o.faults, "faults", "all", "fault kinds to inject: a comma-separated list, \"all\", \"none\", or \"all,-kind\"")
	flags.IntVar(&o.sessions, "sessions", 0, "sessions per run (0: the seed chooses 1-3)")
	flags.IntVar(&o.clients, "clients", 0, "clients per session (0: the seed chooses 2-5)")
	flags.BoolVar(&o.trace, "trace", false, "with --seed: print every event of the run to stdout")
	flags.StringVar(&o.bug, "bug", "", "re-introduce a known bug to see the simulator catch it: "+strings.Join(append(slices.Clone(sim.SimulatorBugs), sim.ReflectorBugs...), ", ")+" (reflector bugs need a build with -tags simbugs)")
	flags.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "seeds run in parallel (each run is single-threaded)")
	flags.BoolVar(&o.jsonOut, "json", false, "print the summary as JSON")
	flags.BoolVar(&o.keepGoing, "keep-going", false, "run every seed even after a violation")
	durable := flags.Bool("durable", true, "simulate the reflector's store as durable (metronome serve's default); with --durable=false a reflector crash is a machine crash that loses what was not yet synced — expect violations")
	usage := fmt.Sprintf(simUsage, strings.Join(sim.AllFaults, ", "))
	if code, done := parseFlags(flags, usage, args, stderr); done {
		return code
	}
	o.nonDurable = !*durable
	faults, err := sim.ParseFaults(o.faults)
	if err != nil {
		fmt.Fprintf(stderr, "metronome sim: --faults: %v\n", err)
		return 2
	}
	if o.trace && o.seed < 0 {
		fmt.Fprintln(stderr, "metronome sim: --trace needs --seed (one run)")
		return 2
	}
	if o.seeds < 1 || o.workers < 1 || o.first < 0 {
		fmt.Fprintln(stderr, "metronome sim: --seeds and --workers must be at least 1, --first at least 0")
		return 2
	}
	if known := append(slices.Clone(sim.SimulatorBugs), sim.ReflectorBugs...); o.bug != "" && !slices.Contains(known, o.bug) {
		fmt.Fprintf(stderr, "metronome sim: --bug %q is not one of %s (reflector bugs need a build with -tags simbugs)\n", o.bug, strings.Join(known, ", "))
		return 2
	}
	base := sim.Options{Faults: faults, Sessions: o.sessions, Clients: o.clients, Bug: o.bug, NonDurable: o.nonDurable}
	if faults == nil {
		base.Faults = []string{}
	}
	seeds := make([]uint64, 0, o.seeds)
	if o.seed >= 0 {
		seeds = append(seeds, uint64(o.seed))
	} else {
		for i := range o.seeds {
			seeds = append(seeds, uint64(o.first)+uint64(i))
		}
	}
	if o.trace {
		options := base
		options.Seed = seeds[0]
		options.Trace = stdout
		result := sim.Run(options)
		return printSimSummary(stdout, stderr, []sim.Result{result}, o, 0)
	}
	return runSimSeeds(stdout, stderr, base, seeds, o)
}

func runSimSeeds(stdout, stderr io.Writer, base sim.Options, seeds []uint64, o simOptions) int {
	start := time.Now()
	var (
		mu       sync.Mutex
		results  []sim.Result
		next     int
		stopped  bool
		simulate int64
	)
	progressDone := make(chan struct{})
	progressStopped := make(chan struct{})
	go func() {
		defer close(progressStopped)
		ticker := time.NewTicker(2 * time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-ticker.C:
				mu.Lock()
				done, simulated := len(results), simulate
				mu.Unlock()
				elapsed := time.Since(start).Seconds()
				fmt.Fprintf(stderr, "  %d/%d seeds, %.0f s simulated, %.1f seeds/s\n", done, len(seeds), float64(simulated)/1000, float64(done)/elapsed)
			}
		}
	}()
	var wg sync.WaitGroup
	for range min(o.workers, len(seeds)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(seeds) || stopped {
					mu.Unlock()
					return
				}
				options := base
				options.Seed = seeds[next]
				next++
				mu.Unlock()
				result := sim.Run(options)
				mu.Lock()
				results = append(results, result)
				simulate += result.SimulatedMs
				if result.Violation != nil && !o.keepGoing {
					stopped = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(progressDone)
	<-progressStopped
	sort.Slice(results, func(i, j int) bool { return results[i].Seed < results[j].Seed })
	return printSimSummary(stdout, stderr, results, o, time.Since(start))
}

// simSummary is the JSON form of a run of seeds.
type simSummary struct {
	Seeds          int            `json:"seeds"`
	Events         uint64         `json:"events"`
	SimulatedMs    int64          `json:"simulatedMs"`
	WallMs         int64          `json:"wallMs"`
	Faults         map[string]int `json:"faults"`
	Stamped        int            `json:"messagesStamped"`
	Applied        int            `json:"messagesApplied"`
	Inputs         int            `json:"inputs"`
	Snapshots      int            `json:"snapshots"`
	Reconnects     int            `json:"reconnects"`
	CatchUpMaxMs   int64          `json:"catchUpMaxMs"`
	Violations     []simViolation `json:"violations"`
	SeedsPerMinute float64        `json:"seedsPerMinute"`
}

type simViolation struct {
	Seed      uint64   `json:"seed"`
	Invariant string   `json:"invariant"`
	Detail    string   `json:"detail"`
	AtMs      int64    `json:"atMs"`
	Scenario  string   `json:"scenario"`
	Trace     []string `json:"trace"`
	Replay    string   `json:"replay"`
}

func replayCommand(seed uint64, o simOptions) string {
	command := fmt.Sprintf("metronome sim --seed %d --trace", seed)
	if o.faults != "all" {
		command += fmt.Sprintf(" --faults %q", o.faults)
	}
	if o.sessions > 0 {
		command += fmt.Sprintf(" --sessions %d", o.sessions)
	}
	if o.clients > 0 {
		command += fmt.Sprintf(" --clients %d", o.clients)
	}
	if o.bug != "" {
		command += " --bug " + o.bug
	}
	if o.nonDurable {
		command += " --durable=false"
	}
	return command
}

func printSimSummary(stdout, stderr io.Writer, results []sim.Result, o simOptions, wall time.Duration) int {
	summary := simSummary{Seeds: len(results), Faults: map[string]int{}, WallMs: wall.Milliseconds(), Violations: []simViolation{}}
	for _, r := range results {
		summary.Events += r.Events
		summary.SimulatedMs += r.SimulatedMs
		for kind, n := range r.Faults {
			summary.Faults[kind] += n
		}
		summary.Stamped += r.Stats.Stamped
		summary.Applied += r.Stats.Applied
		summary.Inputs += r.Stats.Inputs
		summary.Snapshots += r.Stats.Snapshots
		summary.Reconnects += r.Stats.Reconnects
		summary.CatchUpMaxMs = max(summary.CatchUpMaxMs, r.CatchUpMs)
		if v := r.Violation; v != nil {
			summary.Violations = append(summary.Violations, simViolation{Seed: r.Seed, Invariant: v.Invariant, Detail: v.Detail,
				AtMs: v.AtMs, Scenario: r.Scenario.String(), Trace: v.Trace, Replay: replayCommand(r.Seed, o)})
		}
	}
	if wall > 0 {
		summary.SeedsPerMinute = float64(len(results)) / wall.Minutes()
	}
	if o.jsonOut {
		encoder := json.NewEncoder(stdout)
		encoder.SetIndent("", "  ")
		encoder.Encode(summary)
	} else {
		out := stdout
		if o.trace {
			out = stderr // keep the trace on stdout replayable byte for byte
		}
		fmt.Fprintf(out, "\n%d seed(s): %d events, %.0f s simulated", summary.Seeds, summary.Events, float64(summary.SimulatedMs)/1000)
		if wall > 0 {
			fmt.Fprintf(out, " in %.1f s (%.0f seeds/min, %.0fx real time)", wall.Seconds(), summary.SeedsPerMinute, float64(summary.SimulatedMs)/float64(max(1, wall.Milliseconds())))
		}
		fmt.Fprintf(out, "\n  messages stamped %d, applied by models %d, inputs %d, snapshots %d, reconnects %d, slowest catch-up %d ms\n",
			summary.Stamped, summary.Applied, summary.Inputs, summary.Snapshots, summary.Reconnects, summary.CatchUpMaxMs)
		kinds := make([]string, 0, len(summary.Faults))
		for kind := range summary.Faults {
			kinds = append(kinds, kind)
		}
		slices.Sort(kinds)
		fmt.Fprint(out, "  faults injected:")
		if len(kinds) == 0 {
			fmt.Fprint(out, " none")
		}
		for _, kind := range kinds {
			fmt.Fprintf(out, " %s %d", kind, summary.Faults[kind])
		}
		fmt.Fprintf(out, "\n  violations: %d\n", len(summary.Violations))
		for _, v := range summary.Violations {
			fmt.Fprintf(out, "\nseed %d: %s violated at %d ms: %s\n  scenario: %s\n  last events:\n", v.Seed, v.Invariant, v.AtMs, v.Detail, v.Scenario)
			for _, line := range v.Trace {
				fmt.Fprintf(out, "    %s\n", line)
			}
			fmt.Fprintf(out, "  replay: %s\n", v.Replay)
		}
	}
	if len(summary.Violations) > 0 {
		return 1
	}
	return 0
}
