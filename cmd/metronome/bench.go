package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/metronome-sync/metronome/bench"
)

const benchUsage = `Usage:
  metronome bench [flags]                 reflect-latency load against a reflector URL
  metronome bench baseline [--addr A]     run the baseline broadcast server (same frames, no reflector)

The latency scenario opens sessions × clients WebSocket connections (session id =
<url>/<prefix>-<n>), JOINs each, waits for every SYNC, then every client sends
rate SENDs per second for warmup + duration. Each client measures the latency of
its own messages and checks it received every message of its session exactly
once, in seq order. Progress goes to stderr once per second; the result goes to
stdout as a table (or JSON with --json). Exit status 1 when any message was
lost, duplicated or reordered.

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
	url := flags.String("url", defaults.URL, "reflector WebSocket URL; the session id is appended as the last path segment")
	sessions := flags.Int("sessions", defaults.Sessions, "number of sessions")
	clients := flags.Int("clients", defaults.Clients, "clients (connections) per session")
	rate := flags.Float64("rate", defaults.Rate, "messages per second sent by each client")
	duration := flags.Duration("duration", defaults.Duration, "measured sending time")
	warmup := flags.Duration("warmup", defaults.Warmup, "sending time before the measurement (checked, not measured)")
	payloadBytes := flags.Int("payload-bytes", defaults.PayloadBytes, "bytes of each message payload (at least the ~30-byte header)")
	drainTimeout := flags.Duration("drain-timeout", defaults.DrainTimeout, "wait for outstanding messages after sending stopped")
	pid := flags.Int("pid", 0, "server process id: report its RSS (end, peak) and CPU time from /proc")
	prefix := flags.String("session-prefix", "", `session id prefix (default "bench-<unix ns>", new sessions on every run)`)
	jsonOutput := flags.Bool("json", false, "write the result as JSON")
	if code, done := parseFlags(flags, benchUsage, args, stderr); done {
		return code
	}
	config := defaults
	config.URL, config.Sessions, config.Clients, config.Rate = *url, *sessions, *clients, *rate
	config.Duration, config.Warmup, config.PayloadBytes = *duration, *warmup, *payloadBytes
	config.DrainTimeout, config.PID, config.SessionPrefix = *drainTimeout, *pid, *prefix
	config.Progress = stderr
	if err := config.Validate(); err != nil {
		fmt.Fprintln(stderr, "metronome bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	result, err := bench.RunLatency(ctx, config)
	if err != nil {
		fmt.Fprintln(stderr, "metronome bench:", err)
		return 1
	}
	if *jsonOutput {
		err = result.WriteJSON(stdout)
	} else {
		err = result.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "metronome bench:", err)
		return 1
	}
	if !result.OK {
		fmt.Fprintf(stderr, "metronome bench: FAIL: %d missing, %d duplicate, %d out-of-order, %d unexpected, %d connection errors\n",
			result.Missing, result.Duplicates, result.OutOfOrder, result.Unexpected, result.ConnectionErrs)
		return 1
	}
	return 0
}

// benchBaseline runs the baseline broadcast server until SIGINT/SIGTERM.
func benchBaseline(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("bench baseline", flag.ContinueOnError)
	flags.SetOutput(stderr)
	addr := flags.String("addr", "127.0.0.1:9999", "listen address host:port")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
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
