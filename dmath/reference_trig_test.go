package dmath

import (
	"math"
	"math/big"
	"testing"
)

// bigPi is π to referencePrecision bits (Machin: 16 atan(1/5) - 4 atan(1/239)).
var bigPi = func() *big.Float {
	atanInverse := func(n int64) *big.Float {
		z := new(big.Float).SetPrec(referencePrecision).Quo(newInt(1), newInt(n))
		return bigAtanSeries(z)
	}
	pi := new(big.Float).SetPrec(referencePrecision).Mul(newInt(16), atanInverse(5))
	return pi.Sub(pi, new(big.Float).SetPrec(referencePrecision).Mul(newInt(4), atanInverse(239)))
}()

// bigAtanSeries returns atan(z) = z - z³/3 + z⁵/5 - ... for |z| <= 1/4.
func bigAtanSeries(z *big.Float) *big.Float {
	sum := new(big.Float).SetPrec(referencePrecision).Set(z)
	power := new(big.Float).SetPrec(referencePrecision).Set(z)
	z2 := new(big.Float).SetPrec(referencePrecision).Mul(z, z)
	term := new(big.Float).SetPrec(referencePrecision)
	for n := int64(3); ; n += 2 {
		power.Mul(power, z2)
		power.Neg(power)
		term.Quo(power, newInt(n))
		if term.Sign() == 0 || term.MantExp(nil)-sum.MantExp(nil) < -referencePrecision-8 {
			return sum
		}
		sum.Add(sum, term)
	}
}

// bigAtan returns atan(x), halving the argument with
// atan(x) = 2 atan(x / (1 + sqrt(1 + x²))) until the series converges fast.
func bigAtan(x *big.Float) *big.Float {
	z := new(big.Float).SetPrec(referencePrecision).Set(x)
	doublings := 0
	quarter := big.NewFloat(0.25)
	for new(big.Float).Abs(z).Cmp(quarter) > 0 {
		root := new(big.Float).SetPrec(referencePrecision).Mul(z, z)
		root.Add(root, newInt(1))
		root.Sqrt(root)
		z.Quo(z, root.Add(root, newInt(1)))
		doublings++
	}
	result := bigAtanSeries(z)
	return result.SetMantExp(result, doublings)
}

// bigSinCos returns sin(x) and cos(x) for |x| < 2**30.
func bigSinCos(x *big.Float) (sine, cosine *big.Float) {
	twoPi := new(big.Float).SetPrec(referencePrecision).Mul(bigPi, newInt(2))
	turns, _ := new(big.Float).Quo(x, twoPi).Float64()
	r := new(big.Float).SetPrec(referencePrecision).Sub(x, new(big.Float).SetPrec(referencePrecision).Mul(twoPi, newInt(int64(math.Round(turns)))))
	sine, cosine = newInt(0), newInt(1)
	term := newInt(1)
	for n := int64(1); ; n++ {
		term.Mul(term, r)
		term.Quo(term, newInt(n))
		if term.Sign() == 0 || term.MantExp(nil) < -referencePrecision-8 {
			return sine, cosine
		}
		switch n % 4 {
		case 1:
			sine.Add(sine, term)
		case 2:
			cosine.Sub(cosine, term)
		case 3:
			sine.Sub(sine, term)
		case 0:
			cosine.Add(cosine, term)
		}
	}
}

func bigAsin(x *big.Float) *big.Float {
	if x.Cmp(newInt(1)) == 0 || x.Cmp(newInt(-1)) == 0 {
		half := new(big.Float).SetPrec(referencePrecision).Quo(bigPi, newInt(2))
		if x.Sign() < 0 {
			half.Neg(half)
		}
		return half
	}
	root := new(big.Float).SetPrec(referencePrecision).Mul(x, x)
	root.Sub(newInt(1), root)
	root.Sqrt(root)
	return bigAtan(root.Quo(x, root))
}

// TestTrigAccuracyAgainstReference measures the trigonometric functions
// against math/big. The bounds are what the Cephes algorithms (shared with
// Go's math) achieve away from zeros of the function; the log shows how
// this machine's math package compares.
func TestTrigAccuracyAgainstReference(t *testing.T) {
	inputs := accuracyInputsPerCase / 100
	seed := splitMix64(3)
	type trigCase struct {
		name      string
		input     func() float64
		dmath     func(float64) float64
		math      func(float64) float64
		reference func(*big.Float) *big.Float
		bound     uint64
		// periodic functions lose relative accuracy next to their zeros at
		// multiples of π (see Sin); such inputs are skipped.
		periodic bool
	}
	sin := func(x *big.Float) *big.Float { s, _ := bigSinCos(x); return s }
	cos := func(x *big.Float) *big.Float { _, c := bigSinCos(x); return c }
	tan := func(x *big.Float) *big.Float { s, c := bigSinCos(x); return s.Quo(s, c) }
	acos := func(x *big.Float) *big.Float {
		half := new(big.Float).SetPrec(referencePrecision).Quo(bigPi, newInt(2))
		return half.Sub(half, bigAsin(x))
	}
	cases := []trigCase{
		{"Sin", func() float64 { return seed.uniform(-10, 10) }, Sin, math.Sin, sin, 2, true},
		{"Sin/1e6", func() float64 { return seed.uniform(-1e6, 1e6) }, Sin, math.Sin, sin, 2, true},
		{"Cos", func() float64 { return seed.uniform(-10, 10) }, Cos, math.Cos, cos, 2, true},
		{"Tan", func() float64 { return seed.uniform(-1.5, 1.5) }, Tan, math.Tan, tan, 2, true},
		{"Atan", func() float64 { return seed.magnitude(-30, 30) }, Atan, math.Atan, bigAtan, 2, false},
		{"Asin", func() float64 { return seed.uniform(-1, 1) }, Asin, math.Asin, bigAsin, 2, false},
		{"Acos", func() float64 { return seed.uniform(-1, 1) }, Acos, math.Acos, acos, 2, false},
		{"Acos/near1", func() float64 { return 1 - math.Abs(seed.magnitude(-60, -1)) }, Acos, math.Acos, acos, 2, false},
	}
	for _, c := range cases {
		var ours, theirs referenceStatistics
		for range inputs {
			x := c.input()
			reference := c.reference(newFloat(x))
			if want, _ := reference.Float64(); c.periodic && math.Abs(want) < 1e-3 {
				continue // near a zero the relative error of any reduction grows; see Sin's documentation
			}
			distance := roundedULPs(c.dmath(x), reference)
			ours.add(distance)
			theirs.add(roundedULPs(c.math(x), reference))
			if distance > c.bound {
				want, _ := reference.Float64()
				t.Errorf("%s(%v) = %v, correctly rounded %v: %d ulp (bound %d)", c.name, x, c.dmath(x), want, distance, c.bound)
			}
		}
		t.Logf("%-8s %5d inputs: dmath %5.1f%% correctly rounded, worst %d ulp; this machine's math %5.1f%%, worst %d ulp",
			c.name, ours.total, 100*float64(ours.correctlyRounded)/float64(ours.total), ours.worst,
			100*float64(theirs.correctlyRounded)/float64(theirs.total), theirs.worst)
	}
}
