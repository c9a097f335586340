package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/metronome-sync/metronome/bench"
)

const benchUsage = `Usage:
  metronome bench [--scenario latency] [flags]   reflect-latency load against a reflector URL
  metronome bench --scenario idle [flags]        many idle connections: memory, tick CPU
  metronome bench --scenario join [flags]        JOIN → SYNC time with a filled session
  metronome bench --scenario saturation [flags]  ramp the load until p99 or loss breaks: max inputs/s, deliveries/s, CPU per delivery
  metronome bench --scenario failover [flags]    while a cluster node is killed: stall per session, no stamped message lost or doubled
  metronome bench baseline [--addr A]            run the baseline broadcast server (same frames, no reflector)

The latency scenario opens sessions × clients WebSocket connections (session id =
<url>/<prefix>-<n>; --url may list the nodes of a cluster, comma-separated: the
first client of each session joins through the first URL, so that node owns
the session, and the others through the rest in turn), JOINs each, waits for every SYNC, then every client sends
rate SENDs per second for warmup + duration. The clients of a session send at
evenly spread phases (interval/clients apart; --burst: all at once, one burst per
session per interval). Each client measures the latency of
its own messages and checks it received every message of its session exactly
once, in seq order. Progress goes to stderr once per second; the result goes to
stdout as a table (or JSON with --json). Exit status 1 when any message was
lost, duplicated or reordered.

The idle scenario opens --connections connections in sessions of --clients
(default 10 for idle), 64 at a time, each JOINs and waits for SYNC; then all stay
idle for 1 s (settle) + --duration (PULSE every 20 s), counting TICKs in the
--duration window. With --pid: server RSS before connecting, after, at peak, RSS
per connection, CPU in the window. Exit status 1 when any connection fails.

The saturation scenario runs the latency scenario in steps at --sessions ×
--clients (default 100 × 10 for this scenario), --duration and --warmup per step
(default 5 s and 1 s), starting at --start-rate msg/s per client and
multiplying by --factor each step, until the p99 exceeds --p99-bound, a message
is lost, duplicated or reordered, or the generator cannot send the offered load
(reported: then the reflector's limit is higher than measured). It prints every
step (inputs/s, deliveries/s, latency, server CPU and µs per delivery with
--pid, the generator's own CPU) and the highest step that held.

The join scenario fills one session with --messages messages (--writers clients
at --writer-rate msg/s each, under the reflector's 200 frames/s limit), waits
until every writer received all, then --joins clients join one after another,
each timing JOIN → complete SYNC; exit status 1 if a SYNC holds fewer messages.

The failover scenario measures a cluster while someone else kills (or shuts
down) the node that stamps some sessions. --url takes a comma-separated list of
the nodes' URLs; client j of session i starts on URL (i × clients + j) mod the
number of URLs. --sessions × --clients (default 100 × 3 for this scenario) JOIN,
then each sends --rate msg/s (default 5) for --duration (default 20 s) and one
last message at its end. A client whose connection closes with a code that
means "come back" (below 4100, or 4110) or breaks (no close frame, or no frame
for --io-timeout, default 5 s) reconnects after 100 ms (doubling up to 1 s, at
most 600 attempts) to the next URL, round robin, and JOINs again; it checks
that the SYNC and the messages after it continue the seqs it had: same
timeline, no gap (lost), no seq twice (duplicated), no other message under a
seq it had (reused seq). Messages in flight when a connection broke are
counted as unacknowledged sends: never stamped, not sent again. For each
session it reports its longest time without a stamped message, as the
distribution over sessions (p50, p90, p99, max) and the number of sessions
over --stall-bound (default 2 s). The drain (--drain-timeout, default 10 s)
waits for every client to be back and caught up and for every session to
stamp again. Exit status 1 when a message was lost, duplicated or reordered,
a seq was reused, a client gave up or was closed for good, or a session never
stamped again; a stall over the bound alone is reported, not a failure.

Flags:
`

// benchCommand runs "metronome bench ..." and returns the exit status.
func benchCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "baseline" {
		return benchBaseline(args[1:], stdout, stderr)
	}
	defaults := bench.DefaultLatencyConfig()
	flags := flag.NewFlagSet("bench", flag.ContinueOnError)
	flags.SetOutput(stderr)
	url := flags.String("url", defaults.URL, "reflector WebSocket URL; the session id is appended as the last path segment (failover: a comma-separated list of the nodes' URLs)")
	sessions := flags.Int("sessions", defaults.Sessions, "number of sessions")
	clients := flags.Int("clients", defaults.Clients, "clients (connections) per session (idle: 10 unless set)")
	rate := flags.Float64("rate", defaults.Rate, "messages per second sent by each client")
	duration := flags.Duration("duration", defaults.Duration, "measured sending time")
	warmup := flags.Duration("warmup", defaults.Warmup, "sending time before the measurement (checked, not measured)")
	payloadBytes := flags.Int("payload-bytes", defaults.PayloadBytes, "bytes of each message payload (at least the ~30-byte header)")
	drainTimeout := flags.Duration("drain-timeout", defaults.DrainTimeout, "wait for outstanding messages after sending stopped (failover: 10s unless set; also for clients to rejoin and sessions to stamp again)")
	burst := flags.Bool("burst", false, "latency, saturation: the clients of a session send at the same instant (one burst per session per interval); default: every client at its own phase, evenly spread")
	pid := flags.Int("pid", 0, "server process id: report its RSS (end, peak) and CPU time from /proc")
	prefix := flags.String("session-prefix", "", `session id prefix (default "bench-<unix ns>", new sessions on every run)`)
	jsonOutput := flags.Bool("json", false, "write the result as JSON")
	scenario := flags.String("scenario", "latency", "latency, idle, join, saturation or failover")
	saturationDefaults := bench.DefaultSaturationConfig()
	startRate := flags.Float64("start-rate", saturationDefaults.StartRate, "saturation: messages per second per client of the first step")
	factor := flags.Float64("factor", saturationDefaults.Factor, "saturation: rate multiplier from one step to the next")
	steps := flags.Int("steps", saturationDefaults.StepsMax, "saturation: most steps")
	p99Bound := flags.Duration("p99-bound", saturationDefaults.P99Bound, "saturation: a step holds while p99 latency stays within this")
	idleDefaults, joinDefaults := bench.DefaultIdleConfig(), bench.DefaultJoinConfig()
	connections := flags.Int("connections", idleDefaults.Connections, "idle: number of connections")
	messages := flags.Int("messages", joinDefaults.Messages, "join: messages in the session before the joins")
	joins := flags.Int("joins", joinDefaults.Joins, "join: joiners, one after another")
	writers := flags.Int("writers", 0, "join: writer connections (0: ceil(messages/2000), at most 10)")
	writerRate := flags.Float64("writer-rate", joinDefaults.WriterRate, "join: messages per second per writer (≤ 190)")
	cpuProfile := flags.String("cpuprofile", "", "write the generator's own CPU profile to this file (go tool pprof), to see where the generator spends its time")
	ioTimeout := flags.Duration("io-timeout", 0, "idle, join, failover: per-connection dial / SYNC / write timeout; failover: also the silence after which a connection counts as broken (0: 10s idle, 30s join, 5s failover)")
	failoverDefaults := bench.DefaultFailoverConfig()
	stallBound := flags.Duration("stall-bound", failoverDefaults.StallBound, "failover: report the sessions whose longest time without stamping exceeds this (not a failure by itself)")
	if code, done := parseFlags(flags, benchUsage, args, stderr); done {
		return code
	}
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "metronome bench: --cpuprofile:", err)
			return 2
		}
		defer stopProfile()
	}
	switch *scenario {
	case "latency":
	case "idle":
		config := idleDefaults
		config.URL, config.Connections, config.Duration, config.PID, config.SessionPrefix = *url, *connections, *duration, *pid, *prefix
		if set["clients"] {
			config.Clients = *clients
		}
		if *ioTimeout > 0 {
			config.IOTimeout = *ioTimeout
		}
		config.Progress = stderr
		return runScenario(stdout, stderr, *jsonOutput, config.Validate, func(ctx context.Context) (scenarioResult, error) {
			return bench.RunIdle(ctx, config)
		})
	case "join":
		config := joinDefaults
		config.URL, config.Messages, config.Joins, config.Writers, config.WriterRate = *url, *messages, *joins, *writers, *writerRate
		config.PayloadBytes, config.PID, config.SessionPrefix = *payloadBytes, *pid, *prefix
		if *ioTimeout > 0 {
			config.IOTimeout = *ioTimeout
		}
		config.Progress = stderr
		return runScenario(stdout, stderr, *jsonOutput, config.Validate, func(ctx context.Context) (scenarioResult, error) {
			return bench.RunJoin(ctx, config)
		})
	case "saturation":
		config := saturationDefaults
		step := &config.Step
		step.URL, step.PayloadBytes, step.DrainTimeout, step.PID, step.SessionPrefix = *url, *payloadBytes, *drainTimeout, *pid, *prefix
		step.Burst = *burst
		if set["sessions"] {
			step.Sessions = *sessions
		}
		if set["clients"] {
			step.Clients = *clients
		}
		if set["duration"] {
			step.Duration = *duration
		}
		if set["warmup"] {
			step.Warmup = *warmup
		}
		config.StartRate, config.Factor, config.StepsMax, config.P99Bound = *startRate, *factor, *steps, *p99Bound
		step.Progress = stderr
		return runScenario(stdout, stderr, *jsonOutput, config.Validate, func(ctx context.Context) (scenarioResult, error) {
			return bench.RunSaturation(ctx, config)
		})
	case "failover":
		config := failoverDefaults
		config.URLs = bench.SplitURLs(*url)
		config.PayloadBytes, config.SessionPrefix, config.StallBound = *payloadBytes, *prefix, *stallBound
		// The shared flags' defaults are the latency scenario's; the
		// failover scenario has its own unless they are set.
		if set["sessions"] {
			config.Sessions = *sessions
		}
		if set["clients"] {
			config.Clients = *clients
		}
		if set["rate"] {
			config.Rate = *rate
		}
		if set["duration"] {
			config.Duration = *duration
		}
		if set["drain-timeout"] {
			config.DrainTimeout = *drainTimeout
		}
		if *ioTimeout > 0 {
			config.IOTimeout = *ioTimeout
		}
		config.Progress = stderr
		return runScenario(stdout, stderr, *jsonOutput, config.Validate, func(ctx context.Context) (scenarioResult, error) {
			return bench.RunFailover(ctx, config)
		})
	default:
		fmt.Fprintf(stderr, "metronome bench: --scenario %q: want latency, idle, join, saturation or failover\n", *scenario)
		return 2
	}
	config := defaults
	config.URL, config.Sessions, config.Clients, config.Rate = *url, *sessions, *clients, *rate
	config.Duration, config.Warmup, config.PayloadBytes = *duration, *warmup, *payloadBytes
	config.DrainTimeout, config.PID, config.SessionPrefix = *drainTimeout, *pid, *prefix
	config.Burst = *burst
	config.Progress = stderr
	return runScenario(stdout, stderr, *jsonOutput, config.Validate, func(ctx context.Context) (scenarioResult, error) {
		return bench.RunLatency(ctx, config)
	})
}

// startCPUProfile profiles this process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		file.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		file.Close()
	}, nil
}

// scenarioResult is what every scenario returns; its table says why a run failed.
type scenarioResult interface {
	WriteTable(io.Writer) error
	WriteJSON(io.Writer) error
	Passed() bool
}

// runScenario validates, runs and prints a scenario; exit status 1 when
// the run failed or its result is not OK.
func runScenario(stdout, stderr io.Writer, jsonOutput bool, validate func() error, run func(context.Context) (scenarioResult, error)) int {
	if err := validate(); err != nil {
		fmt.Fprintln(stderr, "metronome bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	result, err := run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "metronome bench: FAIL:", err)
		return 1
	}
	if jsonOutput {
		err = result.WriteJSON(stdout)
	} else {
		err = result.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "metronome bench:", err)
		return 1
	}
	if !result.Passed() {
		fmt.Fprintln(stderr, "metronome bench: FAIL")
		return 1
	}
	return 0
}

const baselineUsage = `Usage: metronome bench baseline [--addr host:port]

Runs the simplest WebSocket broadcast server with the reflector's frame shapes
(JOIN -> SYNC, SEND -> RECV to every room member, no ticks or persistence), so
that "metronome bench --url ws://ADDR/reflector" measures this machine's limit
with the same client. Stops on SIGINT/SIGTERM.

Flags:
`

// benchBaseline runs the baseline broadcast server until SIGINT/SIGTERM.
func benchBaseline(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("bench baseline", flag.ContinueOnError)
	flags.SetOutput(stderr)
	addr := flags.String("addr", "127.0.0.1:9999", "listen address host:port")
	if code, done := parseFlags(flags, baselineUsage, args, stderr); done {
		return code
	}
	baseline, err := bench.ListenBaseline(*addr)
	if err != nil {
		fmt.Fprintln(stderr, "metronome bench baseline:", err)
		return 1
	}
	fmt.Fprintf(stdout, "baseline broadcast server on ws://%s/<room> (pid %d)\n", baseline.Addr(), os.Getpid())
	served := make(chan error, 1)
	go func() { served <- baseline.Serve() }()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	select {
	case <-signals:
	case err = <-served:
		fmt.Fprintln(stderr, "metronome bench baseline:", err)
		return 1
	}
	if err := baseline.Close(); err != nil {
		fmt.Fprintln(stderr, "metronome bench baseline:", err)
		return 1
	}
	return 0
}
