package dmath

import (
	"math"
	"math/big"
	"testing"
)

// TestFourOverPiTable recomputes the 1280 bits of 4/π that Payne–Hanek
// reduction uses, from Machin's formula π = 16 atan(1/5) - 4 atan(1/239),
// and compares them with the table in trig.go.
func TestFourOverPiTable(t *testing.T) {
	const precision = uint(64*len(fourOverPi) + 128)
	atanInverse := func(n int64) *big.Float { // atan(1/n) = Σ (-1)^k / ((2k+1) n^(2k+1))
		sum := new(big.Float).SetPrec(precision)
		power := new(big.Float).SetPrec(precision).Quo(big.NewFloat(1), new(big.Float).SetInt64(n))
		nSquared := new(big.Float).SetPrec(precision).SetInt64(n * n)
		term := new(big.Float).SetPrec(precision)
		for k := int64(0); power.MantExp(nil) > -int(precision)-16; k++ {
			term.Quo(power, new(big.Float).SetInt64(2*k+1))
			if k%2 == 0 {
				sum.Add(sum, term)
			} else {
				sum.Sub(sum, term)
			}
			power.Quo(power, nSquared)
		}
		return sum
	}
	pi := new(big.Float).SetPrec(precision).Mul(big.NewFloat(16), atanInverse(5))
	pi.Sub(pi, new(big.Float).SetPrec(precision).Mul(big.NewFloat(4), atanInverse(239)))
	fourOverPiBig := new(big.Float).SetPrec(precision).Quo(big.NewFloat(4), pi)
	scaled, _ := fourOverPiBig.SetMantExp(fourOverPiBig, 64*(len(fourOverPi)-1)).Int(nil)
	mask := new(big.Int).SetUint64(math.MaxUint64)
	for i := len(fourOverPi) - 1; i >= 0; i-- {
		word := new(big.Int).And(scaled, mask).Uint64()
		if word != fourOverPi[i] {
			t.Errorf("fourOverPi[%d] = %#016x, 4/π gives %#016x", i, fourOverPi[i], word)
		}
		scaled.Rsh(scaled, 64)
	}
}

// TestTrigIdentities spot-checks values whose results are known exactly
// or to the last bit.
func TestTrigIdentities(t *testing.T) {
	cases := []struct {
		name      string
		got, want float64
	}{
		{"Sin(-0)", Sin(math.Copysign(0, -1)), math.Copysign(0, -1)},
		{"Tan(-0)", Tan(math.Copysign(0, -1)), math.Copysign(0, -1)},
		{"Cos(0)", Cos(0), 1},
		{"Sin(π/2)", Sin(math.Pi / 2), 1},
		{"Sin(π)", Sin(math.Pi), 1.2246467991473515e-16}, // exact 1.2246467991473532e-16: Cephes reduction, as in Go, is 7 ulp off at this zero
		{"Cos(π)", Cos(math.Pi), -1},
		{"Atan(1)", Atan(1), math.Pi / 4},
		{"Atan(+Inf)", Atan(math.Inf(1)), math.Pi / 2},
		{"Atan2(1, 1)", Atan2(1, 1), math.Pi / 4},
		{"Atan2(-0, -1)", Atan2(math.Copysign(0, -1), -1), -math.Pi},
		{"Asin(1)", Asin(1), math.Pi / 2},
		{"Acos(-1)", Acos(-1), math.Pi},
		{"Acos(1)", Acos(1), 0},
		{"Exp(0)", Exp(0), 1},
		{"Exp(1)", Exp(1), math.E},
		{"Exp(-Inf)", Exp(math.Inf(-1)), 0},
		{"Exp(-745.1)", Exp(-745.1), 5e-324},
		{"Log(1)", Log(1), 0},
		{"Log(e)", Log(math.E), 1},
		{"Log(0)", Log(0), math.Inf(-1)},
		{"Log(5e-324)", Log(5e-324), -744.4400719213812},
		{"Tanh(+Inf)", Tanh(math.Inf(1)), 1},
		{"Tanh(-Inf)", Tanh(math.Inf(-1)), -1},
		{"Hypot(3, 4)", Hypot(3, 4), 5},
		{"Hypot(NaN, Inf)", Hypot(math.NaN(), math.Inf(-1)), math.Inf(1)},
		{"Pow(2, -1074)", Pow(2, -1074), 5e-324},
		{"Pow(2, 1023.5)", Pow(2, 1023.5), 1.2711610061536462e+308},
		{"Pow(-2, 3)", Pow(-2, 3), -8},
		{"Pow(-8, 1.0/3)", Pow(-8, 1.0/3), CanonicalNaN()},
		{"Pow(10, 22)", Pow(10, 22), 1e22},
		{"Pow(-0, -3)", Pow(math.Copysign(0, -1), -3), math.Inf(-1)},
		{"Pow(-Inf, 3)", Pow(math.Inf(-1), 3), math.Inf(-1)},
		{"Pow(-10, 309)", Pow(-10, 309), math.Inf(-1)},
		{"Pow(-10, -400)", Pow(-10, -400), 0},
		{"Pow(-10, -401)", Pow(-10, -401), math.Copysign(0, -1)},
		{"Pow(1+2**-30, 2**40)", Pow(1+0x1p-30, 0x1p40), math.Inf(1)}, // e**1024 after the near-1 branch
		{"Pow(1+2**-30, -2**40)", Pow(1+0x1p-30, -0x1p40), 0},
		{"Mod(7, -3)", Mod(7, -3), 1},
		{"Mod(-7, 3)", Mod(-7, 3), -1},
		{"Mod(5, Inf)", Mod(5, math.Inf(1)), 5},
		{"Mod(1e300, 3)", Mod(1e300, 3), math.Mod(1e300, 3)},
		{"Sqrt(-0)", Sqrt(math.Copysign(0, -1)), math.Copysign(0, -1)},
		{"Sqrt(-1)", Sqrt(-1), CanonicalNaN()},
	}
	for _, c := range cases {
		if math.Float64bits(c.got) != math.Float64bits(c.want) {
			t.Errorf("%s = %v (%#016x), want %v (%#016x)", c.name, c.got, math.Float64bits(c.got), c.want, math.Float64bits(c.want))
		}
	}
}
