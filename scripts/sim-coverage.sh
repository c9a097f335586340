#!/usr/bin/env bash
# Prints how much of the reflector core and the two hosts (host/ on the
# server side, client/replica on the client side) the simulator reaches:
# it builds metronome with coverage instrumentation of those packages, runs
# `metronome sim --seeds N` (default 200) and reports the statement
# coverage per package, per file and per function.
#
#   ./scripts/sim-coverage.sh [seeds]
#
# A function the simulator never reaches is a path whose bugs it cannot
# find: look at the per-function list for 0.0%.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
module=github.com/metronome-sync/metronome
# The main package is instrumented too: without it the binary writes no
# coverage data at exit. Its figure is not reported.
go build -cover -coverpkg="$module/reflector,$module/host,$module/client/replica,$module/cmd/metronome" -o "$work/metronome" ./cmd/metronome
mkdir "$work/cover"
GOCOVERDIR="$work/cover" "$work/metronome" sim --seeds "$seeds" | tail -n 4
echo
echo "=== statement coverage per package ($seeds seeds)"
go tool covdata percent -i "$work/cover" -pkg "$module/reflector,$module/host,$module/client/replica"
go tool covdata textfmt -i "$work/cover" -pkg "$module/reflector,$module/host,$module/client/replica" -o "$work/profile.txt"
echo
echo "=== per file"
# Each profile line: file:startLine.col,endLine.col statements count
awk -F'[: ,]' 'NR > 1 { file = $1; statements[file] += $(NF-1); if ($NF > 0) covered[file] += $(NF-1) }
  END { for (f in statements) printf "%6.1f%%  %s\n", 100 * covered[f] / statements[f], f }' "$work/profile.txt" | sort -k2
echo
echo "=== per function (not fully covered)"
go tool cover -func "$work/profile.txt" | grep -v '100.0%' || true
