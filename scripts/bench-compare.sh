#!/usr/bin/env bash
# Compares two builds of metronome with the same generator: BASE (a git
# ref) and the working tree, at 100 sessions × 10 clients × 5 msg/s, in
# memory and durable, in the two layouts users run: the server pinned to
# core 0 (taskset -c 0, like a 1-CPU container) and unpinned; the
# generator always on core 1. Runs alternate BASE and HEAD so that a
# change in the machine's load hits both. Prints one line per run:
#
#   build mode layout run p50_us p99_us p99_9_us delivered missing
#
#   scripts/bench-compare.sh BASE [RUNS] [MODES]
#
# RUNS defaults to 3, MODES to "memory durable"; each run takes about 14 s,
# so the default is about 6 minutes.
set -euo pipefail
BASE=${1:?usage: scripts/bench-compare.sh BASE-REF [RUNS]}
RUNS=${2:-3}
MODES=${3:-memory durable}
command -v taskset >/dev/null || { echo "bench-compare: needs taskset (util-linux)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'pkill -f "$WORK/" 2>/dev/null || true; git worktree remove --force "$WORK/base" 2>/dev/null || true; rm -rf "$WORK"' EXIT
git worktree add --detach "$WORK/base" "$BASE" >/dev/null 2>&1
(cd "$WORK/base" && go build -o "$WORK/metronome-base" ./cmd/metronome)
go build -o "$WORK/metronome-head" ./cmd/metronome
GEN=("$WORK/metronome-head" bench) # one generator for both builds

run() { # build mode layout run
	local bin="$WORK/metronome-$1" data=() pin=()
	[ "$2" = durable ] && { rm -rf "$WORK/data"; data=(--data-dir "$WORK/data"); } || data=(--data-dir=)
	[ "$3" = pinned ] && pin=(taskset -c 0)
	"${pin[@]}" "$bin" serve --addr 127.0.0.1:7401 --log-level error "${data[@]}" >/dev/null 2>&1 &
	local pid=$!
	sleep 1
	taskset -c 1 "${GEN[@]}" --url ws://127.0.0.1:7401/reflector --sessions 100 --clients 10 --rate 5 \
		--duration 10s --warmup 2s --json 2>/dev/null >"$WORK/out.json" || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	python3 - "$@" "$WORK/out.json" <<'PY'
import json, sys
build, mode, layout, run, path = sys.argv[1:6]
try:
    r = json.load(open(path)); l = r["latency"]
    print(f'{build:4} {mode:7} {layout:8} {run} {l["p50_us"]:7} {l["p99_us"]:7} {l["p99_9_us"]:7} {r["delivered"]:7} {r["missing"]}')
except Exception as e:
    print(f'{build:4} {mode:7} {layout:8} {run} failed: {e}')
PY
}

echo "build mode    layout   run  p50_us  p99_us p99.9_us delivered missing"
for mode in $MODES; do
	for layout in pinned unpinned; do
		for r in $(seq "$RUNS"); do
			run base "$mode" "$layout" "$r"
			run head "$mode" "$layout" "$r"
		done
	done
done
