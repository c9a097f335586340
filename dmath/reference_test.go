package dmath

import (
	"math"
	"math/big"
	"testing"
)

// This file measures true accuracy: it compares dmath (and, for contrast,
// the math package of the machine running the test) with values computed
// in math/big at 300+ bits and rounded once to float64.

const referencePrecision = 320

func newFloat(x float64) *big.Float {
	return new(big.Float).SetPrec(referencePrecision).SetFloat64(x)
}

func newInt(i int64) *big.Float { return new(big.Float).SetPrec(referencePrecision).SetInt64(i) }

// bigAtanhSeries returns atanh(z) = z + z³/3 + z⁵/5 + ... for |z| <= 1/2.
func bigAtanhSeries(z *big.Float) *big.Float {
	sum := new(big.Float).SetPrec(referencePrecision).Set(z)
	power := new(big.Float).SetPrec(referencePrecision).Set(z)
	z2 := new(big.Float).SetPrec(referencePrecision).Mul(z, z)
	term := new(big.Float).SetPrec(referencePrecision)
	for n := int64(3); ; n += 2 {
		power.Mul(power, z2)
		term.Quo(power, newInt(n))
		if term.Sign() == 0 || term.MantExp(nil)-sum.MantExp(nil) < -referencePrecision-8 {
			return sum
		}
		sum.Add(sum, term)
	}
}

var bigLn2 = func() *big.Float {
	third := new(big.Float).SetPrec(referencePrecision).Quo(newInt(1), newInt(3))
	return new(big.Float).SetPrec(referencePrecision).Mul(newInt(2), bigAtanhSeries(third))
}()

// bigLog returns log(x) for x > 0.
func bigLog(x *big.Float) *big.Float {
	mantissa := new(big.Float).SetPrec(referencePrecision)
	exponent := x.MantExp(mantissa) // x = mantissa × 2**exponent, mantissa in [0.5, 1)
	numerator := new(big.Float).SetPrec(referencePrecision).Sub(mantissa, newInt(1))
	denominator := new(big.Float).SetPrec(referencePrecision).Add(mantissa, newInt(1))
	result := bigAtanhSeries(numerator.Quo(numerator, denominator))
	result.Mul(result, newInt(2))
	return result.Add(result, new(big.Float).SetPrec(referencePrecision).Mul(bigLn2, newInt(int64(exponent))))
}

// bigExp returns e**x for |x| < 2**20.
func bigExp(x *big.Float) *big.Float {
	quotient, _ := new(big.Float).Quo(x, bigLn2).Float64()
	k := int64(math.Round(quotient))
	r := new(big.Float).SetPrec(referencePrecision).Sub(x, new(big.Float).SetPrec(referencePrecision).Mul(bigLn2, newInt(k)))
	sum := newInt(1)
	term := newInt(1)
	for n := int64(1); ; n++ {
		term.Mul(term, r)
		term.Quo(term, newInt(n))
		if term.Sign() == 0 || term.MantExp(nil) < -referencePrecision-8 {
			break
		}
		sum.Add(sum, term)
	}
	return sum.SetMantExp(sum, int(k))
}

func bigTanh(x *big.Float) *big.Float {
	e := bigExp(new(big.Float).SetPrec(referencePrecision).Mul(x, newInt(2)))
	numerator := new(big.Float).SetPrec(referencePrecision).Sub(e, newInt(1))
	return numerator.Quo(numerator, e.Add(e, newInt(1)))
}

// roundedULPs returns the distance in ulps between got and the correctly
// rounded reference.
func roundedULPs(got float64, reference *big.Float) uint64 {
	want, _ := reference.Float64()
	return ulpDistance(got, want)
}

type referenceStatistics struct {
	total, correctlyRounded int
	worst                   uint64
}

func (s *referenceStatistics) add(distance uint64) {
	s.total++
	if distance == 0 {
		s.correctlyRounded++
	}
	s.worst = max(s.worst, distance)
}

// TestAccuracyAgainstReference checks that dmath is within its documented
// bound of the correctly rounded result and logs how math compares.
func TestAccuracyAgainstReference(t *testing.T) {
	inputs := accuracyInputsPerCase / 100
	seed := splitMix64(2)
	type referenceCase struct {
		name      string
		arguments func() []float64
		dmath     func([]float64) float64
		math      func([]float64) float64
		reference func([]float64) *big.Float
		bound     uint64
	}
	cases := []referenceCase{
		{"Exp", func() []float64 { return []float64{seed.uniform(-700, 700)} },
			func(a []float64) float64 { return Exp(a[0]) }, func(a []float64) float64 { return math.Exp(a[0]) },
			func(a []float64) *big.Float { return bigExp(newFloat(a[0])) }, 1},
		{"Log", func() []float64 { return []float64{math.Abs(seed.magnitude(-1022, 1023))} },
			func(a []float64) float64 { return Log(a[0]) }, func(a []float64) float64 { return math.Log(a[0]) },
			func(a []float64) *big.Float { return bigLog(newFloat(a[0])) }, 1},
		{"Log/near1", func() []float64 { return []float64{seed.uniform(0.7, 1.4)} },
			func(a []float64) float64 { return Log(a[0]) }, func(a []float64) float64 { return math.Log(a[0]) },
			func(a []float64) *big.Float { return bigLog(newFloat(a[0])) }, 1},
		{"Tanh", func() []float64 { return []float64{seed.uniform(-20, 20)} },
			func(a []float64) float64 { return Tanh(a[0]) }, func(a []float64) float64 { return math.Tanh(a[0]) },
			func(a []float64) *big.Float { return bigTanh(newFloat(a[0])) }, 2},
		{"Pow", func() []float64 { return []float64{seed.uniform(0, 10), seed.uniform(-30, 30)} },
			func(a []float64) float64 { return Pow(a[0], a[1]) }, func(a []float64) float64 { return math.Pow(a[0], a[1]) },
			func(a []float64) *big.Float {
				return bigExp(new(big.Float).Mul(newFloat(a[1]), bigLog(newFloat(a[0]))))
			}, 64},
		{"Pow/wide", func() []float64 { return []float64{math.Abs(seed.magnitude(-300, 300)), seed.uniform(-2, 2)} },
			func(a []float64) float64 { return Pow(a[0], a[1]) }, func(a []float64) float64 { return math.Pow(a[0], a[1]) },
			func(a []float64) *big.Float {
				return bigExp(new(big.Float).Mul(newFloat(a[1]), bigLog(newFloat(a[0]))))
			}, 64},
		{"Hypot", func() []float64 { return []float64{seed.magnitude(-500, 500), seed.magnitude(-500, 500)} },
			func(a []float64) float64 { return Hypot(a[0], a[1]) }, func(a []float64) float64 { return math.Hypot(a[0], a[1]) },
			func(a []float64) *big.Float {
				p, q := newFloat(a[0]), newFloat(a[1])
				sum := new(big.Float).SetPrec(referencePrecision).Add(p.Mul(p, p), q.Mul(q, q))
				return sum.Sqrt(sum)
			}, 2},
	}
	for _, c := range cases {
		var ours, theirs referenceStatistics
		for range inputs {
			arguments := c.arguments()
			reference := c.reference(arguments)
			distance := roundedULPs(c.dmath(arguments), reference)
			ours.add(distance)
			theirs.add(roundedULPs(c.math(arguments), reference))
			if distance > c.bound {
				want, _ := reference.Float64()
				t.Errorf("%s%v = %v, correctly rounded %v: %d ulp (bound %d)", c.name, arguments, c.dmath(arguments), want, distance, c.bound)
			}
		}
		t.Logf("%-10s %5d inputs: dmath %5.1f%% correctly rounded, worst %d ulp; this machine's math %5.1f%%, worst %d ulp",
			c.name, ours.total, 100*float64(ours.correctlyRounded)/float64(ours.total), ours.worst,
			100*float64(theirs.correctlyRounded)/float64(theirs.total), theirs.worst)
	}
}
