#!/usr/bin/env bash
# Cluster benchmarks (docs/benchmarks.md, "Cluster mode"): three
# `metronome serve` nodes in cluster mode on this machine against one
# durable single node, with the generator on core 1 and the servers either
# all pinned to core 0 (taskset -c 0) or unpinned. Prints one line per run.
#
#   scripts/cluster-bench.sh latency [RUNS]    100 × 10 × 5: single node; cluster
#                                              with every client on the owner; cluster
#                                              with 9 of 10 clients forwarded
#   scripts/cluster-bench.sh failover [RUNS]   100 sessions × 3 clients over the three
#                                              nodes; kill -9 of the owner of the most
#                                              sessions 5 s in: the stall distribution
#   scripts/cluster-bench.sh saturation        deliveries/s: single node vs cluster
#                                              (LAYOUTS="unpinned" for one layout)
#
# RUNS defaults to 3. Every run starts fresh data directories.
set -euo pipefail
WHAT=${1:?usage: scripts/cluster-bench.sh latency|failover|saturation [RUNS]}
RUNS=${2:-3}
command -v taskset >/dev/null || { echo "cluster-bench: needs taskset (util-linux)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'pkill -f "$WORK/" 2>/dev/null || true; rm -rf "$WORK"' EXIT
go build -o "$WORK/metronome" ./cmd/metronome
BIN="$WORK/metronome"
ROUTES=nats://127.0.0.1:7611,nats://127.0.0.1:7612,nats://127.0.0.1:7613

start_cluster() { # layout
	local pin=()
	[ "$1" = pinned ] && pin=(taskset -c 0)
	rm -rf "$WORK/n1" "$WORK/n2" "$WORK/n3"
	for i in 1 2 3; do
		"${pin[@]}" "$BIN" serve --addr 127.0.0.1:760$i --admin-addr 127.0.0.1:762$i --log-level warn \
			--data-dir "$WORK/n$i" --cluster-name bench --node-name n$i --cluster-listen 127.0.0.1:761$i \
			--cluster-routes "$ROUTES" >"$WORK/n$i.log" 2>&1 &
	done
	for _ in $(seq 120); do
		if curl -fs 127.0.0.1:7601/healthz >/dev/null && curl -fs 127.0.0.1:7602/healthz >/dev/null &&
			curl -fs 127.0.0.1:7603/healthz >/dev/null; then
			return
		fi
		sleep 0.5
	done
	echo "cluster-bench: the cluster did not start" >&2
	tail -n 20 "$WORK"/n*.log >&2
	exit 1
}

start_single() { # layout
	local pin=()
	[ "$1" = pinned ] && pin=(taskset -c 0)
	rm -rf "$WORK/single"
	"${pin[@]}" "$BIN" serve --addr 127.0.0.1:7601 --admin-addr off --log-level warn --data-dir "$WORK/single" \
		>"$WORK/single.log" 2>&1 &
	for _ in $(seq 40); do
		curl -fs 127.0.0.1:7601/healthz >/dev/null && return
		sleep 0.25
	done
	echo "cluster-bench: the single node did not start" >&2
	exit 1
}

stop_all() {
	pkill -f "$WORK/metronome serve" 2>/dev/null || true
	sleep 1
}

latency_line() { # label layout run json
	python3 - "$@" <<'PY'
import json, sys
label, layout, run, path = sys.argv[1:5]
try:
    r = json.load(open(path)); l = r["latency"]
    print(f'{label:22} {layout:8} {run} {l["p50_us"]:7} {l["p99_us"]:7} {l["p99_9_us"]:7} {r["delivered"]:7} {r["missing"]}')
except Exception as e:
    print(f'{label:22} {layout:8} {run} failed: {e}')
PY
}

latency() {
	local url=ws://127.0.0.1:760
	echo "setup                  layout   run  p50_us  p99_us p99.9_us delivered missing"
	for layout in pinned unpinned; do
		for r in $(seq "$RUNS"); do
			start_single "$layout"
			taskset -c 1 "$BIN" bench --url "${url}1/reflector" --sessions 100 --clients 10 --rate 5 \
				--duration 10s --warmup 2s --json 2>/dev/null >"$WORK/out.json" || true
			stop_all
			latency_line single-node "$layout" "$r" "$WORK/out.json"
			start_cluster "$layout"
			taskset -c 1 "$BIN" bench --url "${url}1/reflector" --sessions 100 --clients 10 --rate 5 \
				--duration 10s --warmup 2s --json 2>/dev/null >"$WORK/out.json" || true
			latency_line cluster-on-owner "$layout" "$r" "$WORK/out.json"
			taskset -c 1 "$BIN" bench --url "${url}1/reflector,${url}2/reflector,${url}3/reflector" \
				--sessions 100 --clients 10 --rate 5 --duration 10s --warmup 2s --json 2>/dev/null >"$WORK/out.json" || true
			latency_line cluster-9of10-forwarded "$layout" "$r" "$WORK/out.json"
			stop_all
		done
	done
}

failover() {
	local url=ws://127.0.0.1:760
	for layout in pinned unpinned; do
		for r in $(seq "$RUNS"); do
			start_cluster "$layout"
			taskset -c 1 "$BIN" bench --scenario failover --url "${url}1/reflector,${url}2/reflector,${url}3/reflector" \
				--sessions 100 --clients 3 --rate 5 --duration 20s --json 2>"$WORK/failover.err" >"$WORK/out.json" &
			local bench=$!
			sleep 7 # 2 s of joining, 5 s of sending
			local victim="" most=-1
			for i in 1 2 3; do
				local owned
				owned=$(curl -fs 127.0.0.1:762$i/sessions | wc -l)
				if [ "$owned" -gt "$most" ]; then most=$owned victim=$i; fi
			done
			pkill -9 -f "$WORK/n$victim " || true
			wait "$bench" || true
			stop_all
			python3 - "$layout" "$r" "$victim" "$most" "$WORK/out.json" <<'PY'
import json, sys
layout, run, victim, owned, path = sys.argv[1:6]
try:
    r = json.load(open(path)); s = r["stall"]
    ms = lambda us: f'{us/1000:.0f}'
    print(f'failover {layout:8} run {run}: killed n{victim} (owner of {owned} of 100 sessions): longest stall per session p50 {ms(s["p50_us"])} ms, p90 {ms(s["p90_us"])} ms, p99 {ms(s["p99_us"])} ms, max {ms(s["max_us"])} ms; over 2 s {r["sessions_over_stall_bound"]}; lost {r["lost"]}, duplicated {r["duplicated"]}, reused seq {r["reused_seq"]}, never stamped again {r["sessions_never_stamped_again"]}, ok {r["ok"]}')
except Exception as e:
    print(f'failover {layout} run {run}: failed: {e}')
PY
		done
	done
}

saturation() {
	local url=ws://127.0.0.1:760
	for layout in ${LAYOUTS:-pinned unpinned}; do
		start_single "$layout"
		echo "== single node, $layout"
		taskset -c 1 "$BIN" bench --scenario saturation --url "${url}1/reflector" 2>/dev/null | tail -n 4 || true
		stop_all
		start_cluster "$layout"
		echo "== cluster (sessions spread: first client of each on n1, the rest forwarded), $layout"
		taskset -c 1 "$BIN" bench --scenario saturation --url "${url}1/reflector,${url}2/reflector,${url}3/reflector" \
			2>/dev/null | tail -n 4 || true
		stop_all
	done
}

"$WHAT"
