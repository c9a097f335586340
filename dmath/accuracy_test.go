package dmath

import (
	"fmt"
	"math"
	"math/big"
	"testing"
)

// splitMix64 is a small deterministic generator: the same seed gives the
// same inputs on every run and every target.
type splitMix64 uint64

func (s *splitMix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// unit returns a uniform float64 in [0, 1).
func (s *splitMix64) unit() float64 { return float64(s.next()>>11) / (1 << 53) }

// uniform returns a uniform float64 in [low, high).
func (s *splitMix64) uniform(low, high float64) float64 {
	return low + float64(s.unit()*(high-low))
}

// magnitude returns ±2**e with e uniform in [minExponent, maxExponent):
// numbers of every scale in that range, including subnormals if asked.
func (s *splitMix64) magnitude(minExponent, maxExponent float64) float64 {
	x := math.Exp2(s.uniform(minExponent, maxExponent)) // test only: any value will do
	if s.next()&1 == 1 {
		x = -x
	}
	return x
}

// specialValues are the inputs every function is tested on.
var specialValues = []float64{
	0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1),
	math.NaN(), math.Float64frombits(0xFFF8000000000000), math.Float64frombits(0x7FF0000000000001), // quiet, negative, signaling NaN
	math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 0x1p-1022 - 0x1p-1074, 0x1p-1022, -0x1p-1022,
	math.MaxFloat64, -math.MaxFloat64, 1, -1, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 2, -2, 3, 10, -10,
	math.Pi, -math.Pi, math.Pi / 2, math.Pi / 4, 3 * math.Pi / 4, 2 * math.Pi, 1e-300, 1e-10, 0x1p-28, 0x1p-29,
	0x1p29, 0x1p29 - 1, 0x1p52, 0x1p52 + 0.5, 0x1p53, 0x1p63, 1e22, 1e300, -1e300, 709.78, 709.79, -745.13, -745.14,
	0.625, -0.625, 0.66, 0.7, 2.414213562373095, 1 - 0x1p-53, 1 + 0x1p-52, 44.014845965556525, 44.02,
}

// ulpDistance returns how many representable float64 values lie between a
// and b (0 if they are identical; -0 and +0 are 1 apart).
func ulpDistance(a, b float64) uint64 {
	ordered := func(x float64) int64 {
		bits := int64(math.Float64bits(x))
		if bits < 0 {
			return math.MinInt64 - bits // negative numbers: reverse the order below zero
		}
		return bits
	}
	d := ordered(a) - ordered(b)
	if d < 0 {
		d = -d
	}
	return uint64(d)
}

type unaryCase struct {
	name      string
	dmath     func(float64) float64
	reference func(float64) float64
	input     func(*splitMix64) float64
	maxULP    uint64
}

// unaryCases compares each function with the math package on amd64, where
// Sin, Cos, Tan, Atan, Asin, Acos and Tanh use the same algorithms (so the
// distance is 0 on GOAMD64=v1) while Exp, Log and Floor use assembly.
var unaryCases = []unaryCase{
	{"Sin", Sin, math.Sin, func(s *splitMix64) float64 { return s.uniform(-20, 20) }, 1},
	{"Sin/large", Sin, math.Sin, func(s *splitMix64) float64 { return s.magnitude(-30, 1023) }, 1},
	{"Cos", Cos, math.Cos, func(s *splitMix64) float64 { return s.uniform(-20, 20) }, 1},
	{"Cos/large", Cos, math.Cos, func(s *splitMix64) float64 { return s.magnitude(-30, 1023) }, 1},
	{"Tan", Tan, math.Tan, func(s *splitMix64) float64 { return s.uniform(-20, 20) }, 1},
	{"Tan/large", Tan, math.Tan, func(s *splitMix64) float64 { return s.magnitude(-30, 1023) }, 1},
	{"Atan", Atan, math.Atan, func(s *splitMix64) float64 { return s.magnitude(-1074, 1023) }, 1},
	{"Atan/near1", Atan, math.Atan, func(s *splitMix64) float64 { return s.uniform(-4, 4) }, 1},
	{"Asin", Asin, math.Asin, func(s *splitMix64) float64 { return s.uniform(-1, 1) }, 1},
	{"Acos", Acos, math.Acos, func(s *splitMix64) float64 { return s.uniform(-0.5, 0.5) }, 1}, // beyond ±0.5 math.Acos cancels; see Acos
	{"Exp", Exp, mathExp, func(s *splitMix64) float64 { return s.uniform(-750, 712) }, 2},
	{"Exp/small", Exp, mathExp, func(s *splitMix64) float64 { return s.magnitude(-40, 3) }, 2},
	{"Log", Log, mathLog, func(s *splitMix64) float64 { return math.Abs(s.magnitude(-1074, 1024)) }, 1},
	{"Log/near1", Log, mathLog, func(s *splitMix64) float64 { return s.uniform(0.5, 2) }, 1},
	{"Tanh", Tanh, math.Tanh, func(s *splitMix64) float64 { return s.uniform(-25, 25) }, 2},
	{"Tanh/small", Tanh, math.Tanh, func(s *splitMix64) float64 { return s.magnitude(-1074, 0) }, 1},
	{"Sqrt", Sqrt, math.Sqrt, func(s *splitMix64) float64 { return math.Abs(s.magnitude(-1074, 1024)) }, 0},
	{"Abs", Abs, math.Abs, func(s *splitMix64) float64 { return math.Float64frombits(s.next()) }, 0},
	{"Floor", Floor, math.Floor, func(s *splitMix64) float64 { return s.magnitude(-3, 60) }, 0},
	{"Ceil", Ceil, math.Ceil, func(s *splitMix64) float64 { return s.magnitude(-3, 60) }, 0},
	{"Trunc", Trunc, math.Trunc, func(s *splitMix64) float64 { return s.magnitude(-3, 60) }, 0},
	{"Round", Round, math.Round, func(s *splitMix64) float64 { return s.magnitude(-3, 60) }, 0},
	{"Round/halves", Round, math.Round, func(s *splitMix64) float64 { return float64(s.next()%2000000)/2 - 500000 }, 0},
	{"Floor/bits", Floor, math.Floor, func(s *splitMix64) float64 { return math.Float64frombits(s.next()) }, 0},
	{"Round/bits", Round, math.Round, func(s *splitMix64) float64 { return math.Float64frombits(s.next()) }, 0},
}

// The math package on amd64 has two known bugs in its assembly, which
// dmath does not share; where they apply, the test compares with math's
// pure-Go algorithm instead (reached through identities that avoid the
// assembly paths) or skips the input:
//   - math.Log (log_amd64.s) does not normalize subnormal inputs:
//     math.Log(5e-324) = -709.09 instead of -744.44 (golang/go#56600).
//   - math.Exp (exp_amd64.s) returns +Inf for x a little below the
//     overflow threshold 709.78...: math.Exp(709.78) = +Inf, the true
//     value is 1.79e308.
const subnormalLimit = 0x1p-1022

func mathLog(x float64) float64 {
	if x > 0 && x < subnormalLimit {
		return math.Log(float64(x*0x1p54)) - float64(54*math.Ln2) // exact scaling, then ≤1 ulp more
	}
	return math.Log(x)
}

func mathExp(x float64) float64 {
	if x > 709 && x <= 709.782712893384 {
		return float64(math.Exp(x-1) * math.E) // finite, within a few ulp; limit raised below
	}
	return math.Exp(x)
}

type binaryCase struct {
	name      string
	dmath     func(float64, float64) float64
	reference func(float64, float64) float64
	input     func(*splitMix64) (float64, float64)
	maxULP    uint64
}

var binaryCases = []binaryCase{
	{"Atan2", Atan2, math.Atan2, func(s *splitMix64) (float64, float64) { return s.magnitude(-60, 60), s.magnitude(-60, 60) }, 1},
	{"Hypot", Hypot, math.Hypot, func(s *splitMix64) (float64, float64) { return s.magnitude(-1074, 1024), s.magnitude(-1074, 1024) }, 1},
	{"Hypot/close", Hypot, math.Hypot, func(s *splitMix64) (float64, float64) { return s.uniform(-10, 10), s.uniform(-10, 10) }, 1},
	{"Mod", Mod, math.Mod, func(s *splitMix64) (float64, float64) { return s.magnitude(-20, 80), s.magnitude(-20, 20) }, 0},
	{"Mod/bits", Mod, math.Mod, func(s *splitMix64) (float64, float64) {
		return math.Float64frombits(s.next()), math.Float64frombits(s.next())
	}, 0},
	{"Min", Min, func(x, y float64) float64 { return min(x, y) }, func(s *splitMix64) (float64, float64) { return s.magnitude(-5, 5), s.magnitude(-5, 5) }, 0},
	{"Max", Max, func(x, y float64) float64 { return max(x, y) }, func(s *splitMix64) (float64, float64) { return s.magnitude(-5, 5), s.magnitude(-5, 5) }, 0},
}

// compare records one result: NaN results must be exactly CanonicalNaN and
// NaN exactly when the reference is NaN; others must be within maxULP.
type comparison struct {
	maxULP, worstULP uint64
	differing, total int
	failures         int
}

func (c *comparison) check(t *testing.T, name string, got, want float64, inputs ...float64) {
	t.Helper()
	c.total++
	if want != want || got != got {
		if math.Float64bits(got) != CanonicalNaNBits || want == want {
			c.fail(t, "%s%v = %v (%#016x), want %v", name, inputs, got, math.Float64bits(got), want)
		}
		return
	}
	distance := ulpDistance(got, want)
	if distance == 0 {
		return
	}
	c.differing++
	if distance > c.worstULP {
		c.worstULP = distance
	}
	if distance > c.maxULP || IsInf(got, 0) != IsInf(want, 0) || (got == 0) != (want == 0) {
		c.fail(t, "%s%v = %v, math gives %v: %d ulp apart (limit %d)", name, inputs, got, want, distance, c.maxULP)
	}
}

func (c *comparison) fail(t *testing.T, format string, arguments ...any) {
	t.Helper()
	c.failures++
	if c.failures <= 10 {
		t.Errorf(format, arguments...)
	}
}

func TestAccuracyAgainstMath(t *testing.T) {
	seed := splitMix64(1)
	for _, unary := range unaryCases {
		c := comparison{maxULP: unary.maxULP}
		for _, x := range specialValues {
			c.check(t, unary.name, unary.dmath(x), unary.reference(x), x)
		}
		for range accuracyInputsPerCase {
			x := unary.input(&seed)
			c.check(t, unary.name, unary.dmath(x), unary.reference(x), x)
		}
		t.Logf("%-13s %7d inputs, %6d differ from math, worst %d ulp", unary.name, c.total, c.differing, c.worstULP)
	}
	for _, binary := range binaryCases {
		c := comparison{maxULP: binary.maxULP}
		for _, x := range specialValues {
			for _, y := range specialValues {
				c.check(t, binary.name, binary.dmath(x, y), binary.reference(x, y), x, y)
			}
		}
		for range accuracyInputsPerCase {
			x, y := binary.input(&seed)
			c.check(t, binary.name, binary.dmath(x, y), binary.reference(x, y), x, y)
		}
		t.Logf("%-13s %7d inputs, %6d differ from math, worst %d ulp", binary.name, c.total, c.differing, c.worstULP)
	}
}

// TestPowSpecialValues checks Pow on every pair of special values against
// math.Pow: the same NaN, infinity, zero and sign. (Finite results differ
// where math.Pow is inaccurate; TestAccuracyAgainstReference measures
// both against exact values.)
func TestPowSpecialValues(t *testing.T) {
	classify := func(x float64) string {
		switch {
		case x != x:
			return "NaN"
		case IsInf(x, 0), x == 0:
			return fmt.Sprint(x)
		case x < 0:
			return "negative"
		}
		return "positive"
	}
	for _, x := range specialValues {
		for _, y := range specialValues {
			got, want := Pow(x, y), math.Pow(x, y)
			if x > 0 && x < subnormalLimit {
				continue // math.Pow is wrong for subnormal x on amd64 (see mathLog)
			}
			if classify(got) != classify(want) || (got == 0 && Signbit(got) != Signbit(want)) {
				t.Errorf("Pow(%v, %v) = %v, math.Pow gives %v", x, y, got, want)
			}
			if got != got && math.Float64bits(got) != CanonicalNaNBits {
				t.Errorf("Pow(%v, %v) = NaN with bits %#x, want CanonicalNaN", x, y, math.Float64bits(got))
			}
		}
	}
}

// TestPowIntegersAreExact checks fdlibm's promise: an integer to an
// integer power is exact whenever the result is representable.
func TestPowIntegersAreExact(t *testing.T) {
	for base := int64(-30); base <= 30; base++ {
		exact := big.NewInt(1)
		for exponent := int64(0); exponent <= 64; exponent++ {
			if exponent > 0 {
				exact.Mul(exact, big.NewInt(base))
			}
			if exact.BitLen() > 53 {
				break
			}
			want := float64(exact.Int64())
			if got := Pow(float64(base), float64(exponent)); got != want {
				t.Errorf("Pow(%d, %d) = %v, want %v", base, exponent, got, want)
			}
		}
	}
}
