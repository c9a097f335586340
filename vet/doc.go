// Package vet is a static analyzer that finds nondeterminism in the model
// packages of replicated simulations.
//
// In replicated computation every client runs the same model on the same
// stream of reflector-stamped messages; the replicas stay identical only if
// the model computes the same result from the same inputs on every machine,
// operating system and architecture (amd64, arm64, wasm). One call to
// time.Now, one range over a map or one goroutine makes the replicas
// diverge, usually long after the cause and on someone else's machine.
// [Analyzer] reports those constructs before the code runs:
//
//   - range over a map, maps.Keys/Values/All not fed to slices.Sorted, and
//     reflect.Value.MapKeys/MapRange: Go randomizes map iteration order;
//   - go statements, channel types, sends, receives and select: the
//     scheduler orders goroutines differently on each replica;
//   - the time package except time.Duration and its units: wall clocks and
//     timers differ between replicas; session time comes with the messages;
//   - imports of math/rand, math/rand/v2, crypto/rand and hash/maphash: use
//     the session's seeded random source;
//   - imports of os, net, syscall, io/ioutil, runtime, sync, sync/atomic and
//     unsafe (and their subpackages): host state, I/O and concurrency;
//   - transcendental functions of package math (Sin, Exp, Pow, ...), whose
//     last bit differs between architectures: use the equivalents in
//     github.com/metronome-sync/metronome/dmath;
//   - floating-point multiply-add, which the compiler may fuse into one FMA
//     instruction on some targets (arm64, ppc64le, s390x, riscv64, amd64 v3)
//     and not on others (wasm, amd64 v1): x*y + z and -(x*y) + z, and also a
//     product that reaches the addition through local variables (p := x*y;
//     x = p + z) or from a small function of the package that the compiler
//     inlines (mul(x, y) + z), found on the SSA form; an explicit conversion,
//     float64(x*y) or float64(p), rounds the product and forbids the fusion;
//   - conversions from a float to an integer type, whose result for NaN,
//     infinities and values out of range differs between targets, unless the
//     operand is a constant in range or every path to the conversion
//     compares it with constants so that it is not NaN and in range;
//   - pointer addresses: fmt's %p verb, pointer-to-uintptr conversions and
//     reflect.Value.Pointer/UnsafePointer/UnsafeAddr.
//
// Every message names the construct, why it breaks determinism, and what to
// use instead.
//
// A finding that is deterministic after all (a map range that only sums, say)
// is suppressed by a line comment on the offending line or on the line
// before it:
//
//	for _, v := range counts { //metronome:allow summing is order-independent
//
// The reason is required; an allow comment without a reason, or one that
// suppresses nothing, is itself reported.
//
// The analyzer is syntactic, type-based and, for products and conversions,
// follows values within one function; it is not a proof. It cannot see
// nondeterminism in code outside the packages it is given (other packages,
// assembly, files excluded by build constraints), map order that arrives as
// a function value, package variables that handlers change, products that
// pass through memory (fields, slices, pointers, package variables, captured
// variables) or through functions of other packages, complex multiplication,
// range checks in other functions or on another value than the converted
// one, or the bits of NaNs.
// Keep model packages small and their imports few. The "metronome vet"
// command runs it on a set of packages and lists these limits in its help.
package vet
