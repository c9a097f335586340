#!/usr/bin/env bash
# Runs every test: go vet, the Go tests under the race detector, then the
# compatibility tests with the real Croquet 2.0.4 client in Node.js and in
# headless Chromium. Installs what is missing (npm packages; Debian's
# chromium when running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "go vet"
go vet ./...

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tests/js/node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go test -race ./..."
go test -race -count=1 ./...
step "fault injection: the real server on ext4 loop images (root; skipped otherwise)"; go test -count=1 ./tests/faults/

step "simulator: 500 seeds under every fault, and the self-test that it finds known bugs"
go run ./cmd/metronome sim --seeds 500
go test -tags simbugs -count=1 -run 'TestSimFindsKnownBugs|TestSimWithoutBugsIsClean' ./sim
step "dmath: bit-identical on amd64 v1/v3, arm64 (qemu), wasm (Node)"; ./scripts/crosstarget.sh
step "metronome vet: the examples' models (views and bots may use time and goroutines)"; go run ./cmd/metronome vet ./examples/*/model
step "metronome vet: the pure cores (reflector, client link and island replay the same on every platform)"; go run ./cmd/metronome vet ./reflector ./client/link ./client/island

step "JS compatibility tests (@croquet/croquet 2.0.4 in Node.js and Chromium)"
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
cd tests/js
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund
fi
npm test
