// Command crosscheck evaluates every dmath function on a large fixed set
// of inputs and prints one SHA-256 per function, so that runs of the same
// program built for different targets (amd64 v1/v3, arm64, wasm) can be
// compared: scripts/crosstarget.sh does that and fails if any dmath hash
// differs between targets or from testdata/dmath.sha256.
//
// With -math it also prints the hashes of the math package's functions
// (and of naive vector code in which the compiler may fuse a*b+c) on the
// same inputs, to show which of them differ across targets. Those are
// information, not a failure: they are why dmath exists.
//
// Usage:
//
//	go run ./dmath/internal/crosscheck [-n 100000] [-math]
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/metronome-sync/metronome/dmath"
)

// defaultInputsPerFunction is how many generated inputs each function is
// evaluated on, on top of the special values.
const defaultInputsPerFunction = 100_000

// generatorSeed fixes the inputs; changing it changes every hash.
const generatorSeed = 0x6d65_7472_6f6e_6f6d // "metronom"

func main() {
	inputsPerFunction := flag.Int("n", defaultInputsPerFunction, "generated inputs per function")
	withMath := flag.Bool("math", false, "also print hashes of the math package and of naive (fusable) vector code")
	flag.Parse()
	if err := run(os.Stdout, *inputsPerFunction, *withMath); err != nil {
		fmt.Fprintln(os.Stderr, "crosscheck:", err)
		os.Exit(1)
	}
}

// run prints "dmath <name> <sha256>" for every function, then (if
// withMath) "math <name> <sha256>" for the math package's counterparts.
func run(w io.Writer, inputsPerFunction int, withMath bool) error {
	for _, f := range functions {
		if _, err := fmt.Fprintf(w, "dmath %s %x\n", f.name, f.hash(f.dmath, inputsPerFunction, true)); err != nil {
			return err
		}
	}
	if !withMath {
		return nil
	}
	for _, f := range functions {
		if f.math == nil {
			continue
		}
		if _, err := fmt.Fprintf(w, "math %s %x\n", f.name, f.hash(f.math, inputsPerFunction, false)); err != nil {
			return err
		}
	}
	// The NaN that an invalid operation produces is itself target-specific.
	zero := 0.0
	_, err := fmt.Fprintf(w, "math 0/0-bits %#016x\n", math.Float64bits(zero/zero))
	return err
}

// evaluator computes one function on an argument vector (1 to 6 values,
// depending on the function) and returns its results.
type evaluator func(arguments []float64, results []float64) []float64

type function struct {
	name string
	// arity is how many float64 arguments the evaluator takes.
	arity int
	// input draws one argument in the function's interesting domain.
	input func(*generator) float64
	dmath evaluator
	// math is the same computation with the math package, or nil.
	math evaluator
	// canonicalize hashes NaN results as CanonicalNaN: dmath's scalar
	// functions guarantee canonical NaNs themselves and are hashed raw;
	// vector methods are plain arithmetic whose NaN bits are unspecified.
	canonicalize bool
}

// hash evaluates e on the special values (all combinations for binary
// functions) and on inputsPerFunction generated argument vectors, and
// returns the SHA-256 of the results' bits.
func (f function) hash(e evaluator, inputsPerFunction int, isDmath bool) [sha256.Size]byte {
	h := sha256.New()
	buffer := make([]byte, 0, 8*64*1024)
	var results []float64
	add := func(arguments []float64) {
		results = e(arguments, results[:0])
		for _, r := range results {
			if f.canonicalize || !isDmath {
				r = dmath.Canonicalize(r)
			}
			buffer = binary.LittleEndian.AppendUint64(buffer, math.Float64bits(r))
		}
		if len(buffer) > cap(buffer)-8*16 {
			h.Write(buffer)
			buffer = buffer[:0]
		}
	}
	arguments := make([]float64, f.arity)
	// Special values: every value in every position (pairs for binary
	// functions; for vectors, each value broadcast to all components).
	for _, x := range specialValues {
		for i := range arguments {
			arguments[i] = x
		}
		add(arguments)
		if f.arity == 2 {
			for _, y := range specialValues {
				arguments[1] = y
				add(arguments)
			}
		}
	}
	g := newGenerator(generatorSeed)
	for range inputsPerFunction {
		for i := range arguments {
			arguments[i] = g.mixed(f.input)
		}
		add(arguments)
	}
	h.Write(buffer)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// specialValues are evaluated by every function before the generated
// inputs: signed zeros, infinities, NaNs with various bits, subnormals,
// extremes, and points where the algorithms switch branches.
var specialValues = []float64{
	0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1),
	math.Float64frombits(0x7FF8000000000000), math.Float64frombits(0xFFF8000000000000),
	math.Float64frombits(0x7FF0000000000001), math.Float64frombits(0x7FF8DEADBEEF0001),
	5e-324, -5e-324, 0x1p-1022 - 0x1p-1074, 0x1p-1022, -0x1p-1022, 1e-310,
	math.MaxFloat64, -math.MaxFloat64, 1, -1, 0.5, -0.5, 1.5, -2.5, 2, 3, -3, 10,
	math.Pi, -math.Pi, math.Pi / 2, math.Pi / 4, 2 * math.Pi, 1e-300, 1e-10, 0x1p-28, 0x1p-29,
	0x1p29, 0x1p29 - 1, 0x1p52, 0x1p52 + 0.5, 0x1p53, 0x1p63, 1e22, 1e300, -1e300,
	709.78, 709.79, -745.13, -745.14, 0.625, 0.66, 0.7, 2.414213562373095, 1 - 0x1p-53, 1 + 0x1p-52, 44.02,
}

// generator is SplitMix64: small, fast, and the same on every target.
type generator struct{ state uint64 }

func newGenerator(seed uint64) *generator { return &generator{state: seed} }

func (g *generator) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// uniform returns a float64 in [low, high), computed only with operations
// that are exactly rounded (so the inputs are identical on every target).
func (g *generator) uniform(low, high float64) float64 {
	unit := float64(g.next()>>11) / (1 << 53)
	return low + float64(unit*(high-low))
}

// magnitude returns ±m × 2**e for a random 53-bit mantissa m in [1, 2) and
// e uniform in [minExponent, maxExponent]: every scale, built from bits.
func (g *generator) magnitude(minExponent, maxExponent int) float64 {
	e := minExponent + int(g.next()%uint64(maxExponent-minExponent+1))
	bits := g.next()
	if e < -1022 { // subnormal: fewer mantissa bits
		bits = bits >> 12 >> uint(-1022-e)
		if bits == 0 {
			bits = 1
		}
	} else {
		bits = bits>>12 | uint64(e+1023)<<52
	}
	x := math.Float64frombits(bits &^ (1 << 63))
	if g.next()&1 == 1 {
		x = -x
	}
	return x
}

// mixed draws from the function's own domain 3 times out of 4, from all
// scales otherwise, and now and then any bit pattern at all.
func (g *generator) mixed(domain func(*generator) float64) float64 {
	switch g.next() % 16 {
	case 0:
		return math.Float64frombits(g.next())
	case 1, 2, 3:
		return g.magnitude(-1074, 1023)
	}
	return domain(g)
}
