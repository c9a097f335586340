// Package dmath is deterministic floating-point math for replicated
// models: every function returns bit-identical results on amd64 (GOAMD64=v1
// and v3), arm64 and wasm (GOOS=js), so replicas running on different
// machines compute the same model state and the same state hash.
//
// # Why
//
// In replicated computation every participant runs the same model on the
// same inputs and must reach the same state, bit for bit. IEEE 754 makes
// +, -, ×, / and square root exactly rounded, so those agree everywhere. The
// rest does not:
//
//   - math.Exp, math.Log and math.Hypot have assembly versions on amd64
//     (Exp also on arm64) and pure-Go versions elsewhere (wasm), with
//     different rounding of the last bit, and math.Log on amd64 is wrong for
//     subnormal inputs (golang/go#56600).
//   - The Go compiler fuses x*y + z into one fused multiply-add (FMA)
//     instruction on arm64 always and on amd64 when GOAMD64=v3 or higher.
//     FMA rounds once instead of twice, so the pure-Go math functions (Sin,
//     Cos, Pow, Tanh, ...) and any model code with a*b+c differ in the last
//     bit between targets. The Go specification allows this fusion, even
//     across statements and after inlining.
//   - An invalid operation (0/0, Inf-Inf, Sqrt(-1)) produces a NaN whose
//     bits differ: 0xFFF8000000000000 on amd64, 0x7FF8000000000000 on arm64
//     and wasm.
//
// A one-ulp difference is enough: models iterate, differences grow, and the
// replicas' state hashes disagree. scripts/crosstarget.sh shows which math
// functions differ on this machine's targets.
//
// # What is guaranteed
//
// For every input, each function of this package returns the same bits on
// every target. The functions are written in pure Go (no assembly) and port
// classic algorithms: fdlibm for Exp, Log and Pow, Cephes for the
// trigonometric functions and Tanh (the algorithms of Go's own pure-Go
// math fallbacks). Accuracy, measured by the tests against math/big and
// against the math package: Exp, Log and Pow are within 1 ulp of the exact
// result; Sin, Cos, Tan, Atan, Asin, Acos, Tanh and Hypot within 2 (Sin,
// Cos and Tan away from their zeros, see Sin); Sqrt, Floor, Ceil, Trunc,
// Round, Abs, Mod, Min and Max are exact. Sin, Cos, Tan, Atan, Atan2,
// Asin, Exp, Log and Tanh return exactly what Go's pure-Go math fallbacks
// return (within 2 ulp of math on amd64, which uses assembly for Exp and
// Log). Three functions are deliberately better than math: Pow (math.Pow
// loses up to ~100 ulp when |y×log(x)| is large), Acos near ±1 (math.Acos
// cancels: millions of ulp off next to 1) and Log of subnormals.
//
// Every product is wrapped in an explicit float64(...) conversion: the Go
// specification says an explicit conversion rounds to the target type and
// so prevents fusion, and TestNoFusableProducts keeps that true for all of
// the package's code. Whenever a scalar function's result is NaN, it is
// exactly CanonicalNaN(). dmath/internal/crosscheck evaluates every
// function on 100,000 inputs each plus special values and compares a
// SHA-256 of the results with testdata that every target must reproduce
// (scripts/crosstarget.sh runs it on amd64 v1 and v3, arm64 and wasm).
//
// Vec2 and Vec3 methods and Lerp are deterministic too. They are plain
// IEEE arithmetic, so a NaN they produce (from Inf-Inf, say) may carry any
// NaN bits: pass state through Canonicalize before hashing it, which Hash
// does.
//
// # How to use it
//
// Write model code with dmath functions and with the vector types, and
// round every product that feeds an addition yourself:
//
//	type Ball struct{ Position, Velocity dmath.Vec2 }
//
//	func (b *Ball) Step(dt float64) {
//		gravity := dmath.Vec2{X: 0, Y: -9.81}
//		b.Velocity = b.Velocity.Add(gravity.Scale(dt))
//		b.Position = b.Position.Add(b.Velocity.Scale(dt))
//	}
//
//	energy := float64(0.5*mass*speed*speed) + float64(mass*g*height) // not 0.5*m*v*v + m*g*h
//
// Hash model state with Hash (or hash Canonicalize(x) yourself) so that
// NaN bit patterns cannot split replicas that agree.
//
// # What not to do
//
//   - Do not call math.Sin, math.Exp, math.Pow or any other math function in
//     model code. The constants (math.Pi, math.MaxFloat64) and the bit
//     functions (math.Float64bits, math.Float64frombits) are fine.
//   - Do not write a*b + c (or a*b - c, c - a*b) on float64 in model code;
//     write float64(a*b) + c. Storing the product in a variable first does
//     not help: fusion works on the compiled form, across statements.
//   - Do not use math.FMA unless every replica does: it is exact on every
//     target, but mixing fused and unfused forms of one formula diverges.
//   - Do not use float32 arithmetic expecting the same protection without
//     float32(...) conversions, nor convert floats that may exceed the
//     integer's range to integers (the result is target-specific).
//   - Do not iterate over a map to sum floats: addition is not associative
//     and map order is random.
package dmath
