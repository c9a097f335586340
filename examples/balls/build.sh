#!/usr/bin/env bash
# Builds the balls example's browser app: compiles examples/balls/wasm to
# WebAssembly and assembles a web root with index.html, loader.js, Go's
# wasm_exec.js (copied from the installed Go, which must match the compiler)
# and balls.wasm.
#
#   examples/balls/build.sh [OUTPUT_DIR]    (default: examples/balls/build/web)
#   go run ./cmd/metronome serve --web-root examples/balls/build/web
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build/web}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

goroot="$(go env GOROOT)"
glue="$goroot/lib/wasm/wasm_exec.js"       # Go 1.24 and later
[ -f "$glue" ] || glue="$goroot/misc/wasm/wasm_exec.js"
[ -f "$glue" ] || { echo "build.sh: wasm_exec.js not found under $goroot" >&2; exit 1; }

cd "$here"
GOOS=js GOARCH=wasm go build -trimpath -ldflags='-s -w' -o "$out/balls.wasm.tmp" ./wasm
mv "$out/balls.wasm.tmp" "$out/balls.wasm"
cp "$glue" "$out/wasm_exec.js"
cp web/index.html web/loader.js "$out/"
echo "built $out ($(du -h "$out/balls.wasm" | cut -f1) balls.wasm)"
