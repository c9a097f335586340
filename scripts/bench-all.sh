#!/usr/bin/env bash
# Runs every measurement of docs/benchmarks.md ("Results") against a fresh
# server per run: metronome in memory, metronome durable on disk, and the
# baseline broadcast server, with the same generator. Results go to OUT
# (JSON for the latency runs, tables for the rest). About 20 minutes on
# 2 cores; the machine should be otherwise idle.
#
# Latency runs use the default phases (each client of a session at its own
# phase), then --burst (a session's clients together), then the reference's
# layout: the generator pinned to the second core (needs taskset).
#
#   scripts/bench-all.sh [OUT]      (default OUT: ./bench-results)
set -euo pipefail
OUT=${1:-bench-results}
mkdir -p "$OUT"
BIN=$(mktemp -d)/metronome
go build -o "$BIN" ./cmd/metronome
DATA=$(mktemp -d)
ulimit -n 20000 2>/dev/null || echo "bench-all: could not raise ulimit -n (5,000 idle connections need ~5,100 descriptors per side)" >&2

PID=
start_metronome() { # port, serve flags...
	"$BIN" serve --addr "127.0.0.1:$1" --log-level error "${@:2}" >/dev/null 2>&1 &
	PID=$!
	sleep 1
}
start_baseline() { # port
	"$BIN" bench baseline --addr "127.0.0.1:$1" >/dev/null 2>&1 &
	PID=$!
	sleep 1
}
stop() {
	kill "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
}
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
step() { echo "bench-all: $(date +%T) $*" >&2; }

for run in 1 2 3; do
	for load in "1 2 20" "1 50 10" "100 10 5"; do
		read -r sessions clients rate <<<"$load"
		name="${sessions}x${clients}x${rate}-$run"
		step "latency $name"
		start_metronome 7201 --data-dir=
		"$BIN" bench --url ws://127.0.0.1:7201/reflector --sessions "$sessions" --clients "$clients" --rate "$rate" \
			--duration 10s --warmup 2s --pid "$PID" --json >"$OUT/lat-met-$name.json" 2>/dev/null || true
		stop
		start_baseline 7202
		"$BIN" bench --url ws://127.0.0.1:7202/reflector --sessions "$sessions" --clients "$clients" --rate "$rate" \
			--duration 10s --warmup 2s --pid "$PID" --json >"$OUT/lat-base-$name.json" 2>/dev/null || true
		stop
	done
	step "latency durable 100x10x5-$run"
	rm -rf "${DATA:?}"/*
	start_metronome 7203 --data-dir "$DATA"
	"$BIN" bench --url ws://127.0.0.1:7203/reflector --sessions 100 --clients 10 --rate 5 \
		--duration 10s --warmup 2s --pid "$PID" --json >"$OUT/lat-durable-100x10x5-$run.json" 2>/dev/null || true
	stop
done
for layout in burst pinned; do
	for run in 1 2 3; do
		step "latency 100x10x5 $layout run $run"
		flags=() gen=()
		if [ "$layout" = burst ]; then
			flags=(--burst)
		elif command -v taskset >/dev/null; then
			gen=(taskset -c 1)
		else
			echo "bench-all: no taskset, skipping the pinned runs" >&2
			break
		fi
		start_metronome 7211 --data-dir=
		"${gen[@]}" "$BIN" bench --url ws://127.0.0.1:7211/reflector --sessions 100 --clients 10 --rate 5 "${flags[@]}" \
			--duration 10s --warmup 2s --pid "$PID" --json >"$OUT/lat-met-100x10x5-$layout-$run.json" 2>/dev/null || true
		stop
		start_baseline 7212
		"${gen[@]}" "$BIN" bench --url ws://127.0.0.1:7212/reflector --sessions 100 --clients 10 --rate 5 "${flags[@]}" \
			--duration 10s --warmup 2s --pid "$PID" --json >"$OUT/lat-base-100x10x5-$layout-$run.json" 2>/dev/null || true
		stop
	done
done
# Saturation: each client at its own phase (ramp x1.25 from 8 msg/s per
# client), then --burst, where a session's inputs arrive together and
# coalesce by themselves (ramp x1.1 from 17).
for layout in spread burst; do
	if [ "$layout" = spread ]; then
		ramp=(--start-rate 8 --factor 1.25 --steps 8)
	else
		ramp=(--burst --start-rate 17 --factor 1.1 --steps 8)
	fi
	for run in 1 2 3; do
		step "saturation 100x10 $layout run $run"
		start_metronome 7204 --data-dir=
		"$BIN" bench --scenario saturation --url ws://127.0.0.1:7204/reflector --pid "$PID" \
			"${ramp[@]}" >"$OUT/sat-met-100x10-$layout-$run.txt" 2>/dev/null || true
		stop
		start_baseline 7205
		"$BIN" bench --scenario saturation --url ws://127.0.0.1:7205/reflector --pid "$PID" \
			"${ramp[@]}" >"$OUT/sat-base-100x10-$layout-$run.txt" 2>/dev/null || true
		stop
	done
done
step "saturation 1x50"
start_metronome 7206 --data-dir=
"$BIN" bench --scenario saturation --url ws://127.0.0.1:7206/reflector --pid "$PID" --sessions 1 --clients 50 \
	--start-rate 40 --factor 1.4 --steps 9 >"$OUT/sat-met-1x50.txt" 2>/dev/null || true
stop
start_baseline 7207
"$BIN" bench --scenario saturation --url ws://127.0.0.1:7207/reflector --pid "$PID" --sessions 1 --clients 50 \
	--start-rate 40 --factor 1.4 --steps 9 >"$OUT/sat-base-1x50.txt" 2>/dev/null || true
stop
for run in 1 2 3; do
	for connections in 1000 5000; do
		step "idle $connections run $run"
		start_metronome 7208 --data-dir=
		"$BIN" bench --scenario idle --url ws://127.0.0.1:7208/reflector --connections "$connections" \
			--duration 10s --pid "$PID" >"$OUT/idle-$connections-$run.txt" 2>/dev/null || true
		stop
	done
done
for messages in 0 10000; do
	step "join $messages"
	start_metronome 7209 --data-dir=
	"$BIN" bench --scenario join --url ws://127.0.0.1:7209/reflector --messages "$messages" --joins 10 \
		--pid "$PID" >"$OUT/join-$messages.txt" 2>/dev/null || true
	stop
done
for run in 1 2 3; do
	step "join 50000 run $run"
	start_metronome 7210 --data-dir=
	"$BIN" bench --scenario join --url ws://127.0.0.1:7210/reflector --messages 50000 --joins 10 \
		--pid "$PID" >"$OUT/join-50000-$run.txt" 2>/dev/null || true
	stop
done
step "done: results in $OUT"
