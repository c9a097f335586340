package main

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/server"
)

func TestHelpTeachesTheFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("serve --help exited %d", code)
	}
	help := stderr.String()
	for _, want := range []string{"--addr", "--data-dir", "--durable", "--web-root", "METRONOME_ADDR", "box:", "127.0.0.1:8888"} {
		if !strings.Contains(help, strings.TrimPrefix(want, "-")) {
			t.Errorf("serve --help does not mention %q:\n%s", want, help)
		}
	}
}

func TestUnknownCommandAndFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"serve", "--no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	stderr.Reset()
	if code := run([]string{"serve", "--log-level", "loud", "--data-dir", ""}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--log-level") {
		t.Errorf("bad log level: exit %d, stderr %q", code, stderr.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "metronome ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout.String())
	}
}

// TestCoalesceMaxFlag: --coalesce-max 0 turns holding off, although the
// zero value of server.Config.CoalesceMax means the default.
func TestCoalesceMaxFlag(t *testing.T) {
	for _, tc := range []struct {
		flag time.Duration
		want time.Duration
	}{
		{0, server.CoalesceOff},
		{server.DefaultCoalesceMax, server.DefaultCoalesceMax},
		{5 * time.Millisecond, 5 * time.Millisecond},
	} {
		if got, err := coalesceMaxConfig(tc.flag); err != nil || got != tc.want {
			t.Errorf("coalesceMaxConfig(%s) = %s, %v; want %s", tc.flag, got, err, tc.want)
		}
	}
	if _, err := coalesceMaxConfig(-time.Millisecond); err == nil {
		t.Errorf("coalesceMaxConfig(-1ms) accepted a negative duration")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--data-dir", "", "--coalesce-max", "-1ns"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--coalesce-max") {
		t.Errorf("serve --coalesce-max -1ns: exit %d, stderr %q; want 2 naming the flag", code, stderr.String())
	}
}

// TestDurableModeHasTwoProcs: one P would stop the whole server during
// every journal sync; the GOMAXPROCS variable still decides if it is set.
func TestDurableModeHasTwoProcs(t *testing.T) {
	previous := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(previous)
	logger := slog.New(slog.DiscardHandler)
	t.Setenv("GOMAXPROCS", "1")
	ensureProcsForDurableSyncs(logger)
	if procs := runtime.GOMAXPROCS(0); procs != 1 {
		t.Errorf("with GOMAXPROCS=1 in the environment: %d Ps, want 1", procs)
	}
	os.Unsetenv("GOMAXPROCS")
	ensureProcsForDurableSyncs(logger)
	if procs := runtime.GOMAXPROCS(0); procs != durableProcsMin {
		t.Errorf("%d Ps, want %d", procs, durableProcsMin)
	}
}

func TestConnectionsWithinFileLimit(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		max   int
		limit uint64
		want  int
	}{
		{50_000, 1_048_576, 50_000},
		{50_000, 1024, 1024 - filesReservedForServer},
		{100, 1024, 100},
		{100, 0, 100},              // unknown limit: as configured
		{100, 200, 1},              // a tiny limit still allows a connection
		{100, math.MaxUint64, 100}, // RLIM_INFINITY: no bound
	} {
		if got := connectionsWithinFileLimit(tc.max, tc.limit, logger); got != tc.want {
			t.Errorf("connectionsWithinFileLimit(%d, %d) = %d, want %d", tc.max, tc.limit, got, tc.want)
		}
	}
	for _, tc := range []struct {
		limit uint64
		want  int
	}{
		{1024, 1024 - filesReservedForServer},
		{200, 1},
		{0, 0},              // unknown: no bound
		{math.MaxUint64, 0}, // RLIM_INFINITY: no bound
	} {
		if got := openConnectionsMax(tc.limit); got != tc.want {
			t.Errorf("openConnectionsMax(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}
