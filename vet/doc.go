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
//   - floating-point multiply-add written as x*y + z, which the compiler may
//     fuse into one FMA instruction on some targets and not on others;
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
// The analyzer is syntactic and type-based, not a proof: it cannot see
// nondeterminism hidden behind calls into other packages, a function-valued
// iterator over a map, or a product stored in a variable and added later
// (which the compiler may also fuse). Keep model packages small and their
// imports few. The "metronome vet" command runs it on a set of packages.
package vet
