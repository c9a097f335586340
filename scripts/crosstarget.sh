#!/usr/bin/env bash
# Proves that package dmath computes bit-identical results on every target
# we ship to: builds dmath/internal/crosscheck for amd64 (GOAMD64=v1 and,
# if this CPU can run it, v3), arm64 (run under qemu-aarch64-static) and
# wasm (GOOS=js, run under Node.js), runs each, and fails if any target's
# dmath hashes differ from dmath/internal/crosscheck/testdata/dmath.sha256.
#
# Then proves the same of a whole model run: builds
# client/island/internal/crossrun (a physics model replaying a recorded
# trace of reflected messages through the island, with a snapshot and a
# restored second island halfway) for the same targets, and fails if any
# target's output (state hashes every 500 messages, snapshot hash, effect
# digests, final hash) differs from
# client/island/internal/crossrun/testdata/expected.txt, or if the two
# islands disagree on any target (crossrun exits non-zero).
#
# It also prints, as information, which functions of the plain math
# package (and naive a*b+c vector code) differ between the targets: that
# is why dmath exists.
#
# A target that cannot run here (no qemu, no node, no AVX2/FMA/BMI2 for
# v3) is skipped with a loud message; set CROSSTARGET_REQUIRE_ALL=1 to make
# a skip fail instead. Installs qemu-user-static with apt-get when running
# as root and it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

package=./dmath/internal/crosscheck
golden=dmath/internal/crosscheck/testdata/dmath.sha256
run_package=./client/island/internal/crossrun
run_golden=client/island/internal/crossrun/testdata/expected.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
targets=()
skipped=0
run_failed=()

skip() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! crosstarget: SKIPPING %s\n' "$*"
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
  skipped=$((skipped + 1))
}

# build_target NAME GOOS GOARCH [GOAMD64]: builds $work/NAME (crosscheck)
# and $work/NAME.crossrun.
build_target() {
  local name=$1 goos=$2 goarch=$3 goamd64=${4:-}
  GOOS=$goos GOARCH=$goarch GOAMD64=${goamd64:-v1} go build -o "$work/$name" "$package"
  GOOS=$goos GOARCH=$goarch GOAMD64=${goamd64:-v1} go build -o "$work/$name.crossrun" "$run_package"
}

# run_target NAME RUNNER... : runs $work/NAME (output $work/NAME.out) and
# $work/NAME.crossrun (output $work/NAME.crossrun.out) under RUNNER (none
# for native binaries).
run_target() {
  local name=$1
  shift
  local t0=$SECONDS
  "$@" "$work/$name" -math >"$work/$name.out"
  targets+=("$name")
  echo "ran crosscheck on $name in $((SECONDS - t0))s"
  t0=$SECONDS
  if ! "$@" "$work/$name.crossrun" >"$work/$name.crossrun.out" 2>"$work/$name.crossrun.err"; then
    run_failed+=("$name")
    echo "FAIL: crossrun on $name exited non-zero:"
    cat "$work/$name.crossrun.err"
  fi
  echo "ran crossrun on $name in $((SECONDS - t0))s"
}

hostarch=$(go env GOHOSTARCH)
if [ "$hostarch" != amd64 ]; then
  skip "amd64 targets: this host is $hostarch (the script runs amd64 natively only)"
else
  build_target amd64-v1 linux amd64 v1
  run_target amd64-v1
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  if [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* && " $flags " == *" bmi2 "* ]]; then
    build_target amd64-v3 linux amd64 v3
    run_target amd64-v3
  else
    skip "amd64 GOAMD64=v3: this CPU lacks avx2, fma or bmi2 (see /proc/cpuinfo)"
  fi
fi

if [ "$hostarch" = arm64 ]; then
  build_target arm64 linux arm64
  run_target arm64
else
  if ! command -v qemu-aarch64-static >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing qemu-user-static for the arm64 run"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null) ||
      echo "apt-get install qemu-user-static failed"
  fi
  if command -v qemu-aarch64-static >/dev/null; then
    build_target arm64 linux arm64
    run_target arm64 qemu-aarch64-static
  else
    skip "arm64: qemu-aarch64-static is not installed (Debian package qemu-user-static; run as root to install it automatically)"
  fi
fi

# Go 1.24 moved the wasm support files from misc/wasm to lib/wasm.
goroot=$(go env GOROOT)
wasm_exec=""
for candidate in "$goroot/lib/wasm/go_js_wasm_exec" "$goroot/misc/wasm/go_js_wasm_exec"; do
  if [ -x "$candidate" ]; then wasm_exec=$candidate; break; fi
done
if ! command -v node >/dev/null; then
  skip "wasm: node is not installed"
elif [ -z "$wasm_exec" ]; then
  skip "wasm: go_js_wasm_exec not found under $goroot/lib/wasm or $goroot/misc/wasm"
else
  build_target wasm js wasm
  run_target wasm "$wasm_exec"
fi

echo
status=0
for name in "${targets[@]}"; do
  if diff <(grep '^dmath ' "$work/$name.out") "$golden" >"$work/$name.diff"; then
    echo "dmath on $name: all $(wc -l <"$golden") hashes equal $golden"
  else
    echo "FAIL: dmath on $name differs from $golden:"
    cat "$work/$name.diff"
    status=1
  fi
done

# A whole model run: every target's output must equal the checked-in one
# (and so each other's).
for name in "${targets[@]}"; do
  if [[ " ${run_failed[*]} " == *" $name "* ]]; then
    echo "FAIL: crossrun on $name: the islands disagreed or the run failed (see above)"
    status=1
  elif diff "$work/$name.crossrun.out" "$run_golden" >"$work/$name.crossrun.diff"; then
    echo "crossrun on $name: output equals $run_golden (final $(grep '^final ' "$work/$name.crossrun.out" | cut -c7-22)...)"
  else
    echo "FAIL: crossrun on $name differs from $run_golden:"
    cat "$work/$name.crossrun.diff"
    status=1
  fi
done

# Information: the plain math package across the same targets.
if [ "${#targets[@]}" -gt 1 ]; then
  echo
  echo "For information (not a failure) — plain math / naive float code across ${targets[*]}:"
  first=${targets[0]}
  while read -r _ name _; do
    differing=()
    for name2 in "${targets[@]:1}"; do
      if [ "$(grep "^math $name " "$work/$first.out")" != "$(grep "^math $name " "$work/$name2.out")" ]; then
        differing+=("$name2")
      fi
    done
    if [ "${#differing[@]}" -gt 0 ]; then
      printf '  math %-24s differs: %s vs %s\n' "$name" "$first" "${differing[*]}"
    fi
  done < <(grep '^math ' "$work/$first.out")
fi

echo
echo "crosstarget: ${#targets[@]} targets (${targets[*]}), $skipped skipped, $((SECONDS - start))s"
if [ "$skipped" -gt 0 ] && [ "${CROSSTARGET_REQUIRE_ALL:-0}" = 1 ]; then
  echo "FAIL: CROSSTARGET_REQUIRE_ALL=1 and $skipped target(s) skipped"
  status=1
fi
if [ "${#targets[@]}" -lt 2 ]; then
  echo "WARNING: fewer than two targets ran; only the checked-in hashes were compared"
fi
exit $status
