package dmath

import "math"

// Sqrt returns the square root of x. IEEE 754 requires square root to be
// correctly rounded, so every target computes the same bits and this wraps
// math.Sqrt (a single hardware instruction). Sqrt(±0) = ±0, Sqrt(+Inf) =
// +Inf, and Sqrt of NaN or of a negative number is CanonicalNaN().
func Sqrt(x float64) float64 {
	if x < 0 || x != x {
		return CanonicalNaN()
	}
	return math.Sqrt(x)
}

// Abs returns |x|. Abs(NaN) is CanonicalNaN().
func Abs(x float64) float64 {
	if x != x {
		return CanonicalNaN()
	}
	return math.Float64frombits(math.Float64bits(x) &^ signMask)
}

// Trunc returns the integer value of x rounded toward zero, keeping the
// sign of zero: Trunc(-0.5) = -0. ±Inf are returned unchanged.
func Trunc(x float64) float64 {
	b := math.Float64bits(x)
	e := int(b>>mantissaBits&exponentMask) - exponentBias
	switch {
	case x != x:
		return CanonicalNaN()
	case e >= mantissaBits: // already an integer, or ±Inf
		return x
	case e < 0: // |x| < 1
		return math.Float64frombits(b & signMask)
	}
	return math.Float64frombits(b &^ (fractionMask >> uint(e)))
}

// Floor returns the greatest integer value less than or equal to x.
// Floor(±0) = ±0, Floor(±Inf) = ±Inf, Floor(-0.5) = -1.
func Floor(x float64) float64 {
	t := Trunc(x)
	if x < 0 && t != x {
		return t - 1 // exact: t is an integer below 2**52 here
	}
	return t
}

// Ceil returns the least integer value greater than or equal to x.
// Ceil(±0) = ±0, Ceil(±Inf) = ±Inf, Ceil(-0.5) = -0.
func Ceil(x float64) float64 {
	if x != x {
		return CanonicalNaN()
	}
	return -Floor(-x)
}

// Round returns the nearest integer to x, rounding half away from zero:
// Round(2.5) = 3, Round(-2.5) = -3, Round(-0.4) = -0.
func Round(x float64) float64 {
	b := math.Float64bits(x)
	e := int(b>>mantissaBits&exponentMask) - exponentBias
	switch {
	case x != x:
		return CanonicalNaN()
	case e >= mantissaBits: // already an integer, or ±Inf
		return x
	case e < -1: // |x| < 0.5
		return math.Float64frombits(b & signMask)
	case e == -1: // 0.5 <= |x| < 1
		return math.Float64frombits(b&signMask | exponentBias<<mantissaBits)
	}
	// Add one half in the units of the integer bit, letting the carry ripple
	// into the exponent if needed, then clear the fraction.
	const half = 1 << (mantissaBits - 1)
	b += half >> uint(e)
	b &^= fractionMask >> uint(e)
	return math.Float64frombits(b)
}

// Min returns the smaller of x and y. If either is NaN the result is
// CanonicalNaN(); Min(-0, +0) = Min(+0, -0) = -0. (Go's builtin min has
// the same rule but leaves the NaN's bits unspecified.)
func Min(x, y float64) float64 {
	switch {
	case x != x || y != y:
		return CanonicalNaN()
	case x == 0 && y == 0:
		if Signbit(x) {
			return x
		}
		return y
	case x < y:
		return x
	}
	return y
}

// Max returns the larger of x and y. If either is NaN the result is
// CanonicalNaN(); Max(-0, +0) = Max(+0, -0) = +0.
func Max(x, y float64) float64 {
	switch {
	case x != x || y != y:
		return CanonicalNaN()
	case x == 0 && y == 0:
		if Signbit(x) {
			return y
		}
		return x
	case x > y:
		return x
	}
	return y
}

// Mod returns the floating-point remainder of x/y: x - n×y for the integer
// n = Trunc(x/y), computed exactly. The result has the sign of x and a
// magnitude below |y|. Mod(±Inf, y), Mod(x, 0) and NaN arguments give
// CanonicalNaN(); Mod(x, ±Inf) = x for finite x.
func Mod(x, y float64) float64 {
	if y == 0 || IsInf(x, 0) || x != x || y != y {
		return CanonicalNaN()
	}
	y = Abs(y)
	yFraction, yExponent := frexp(y)
	r := Abs(x)
	// Long division in binary: subtract the largest y×2**k not above r.
	// Each subtraction is exact (Sterbenz), so the result is exact.
	for r >= y {
		rFraction, rExponent := frexp(r)
		if rFraction < yFraction {
			rExponent--
		}
		r = r - ldexp(y, rExponent-yExponent)
	}
	if x < 0 || (x == 0 && Signbit(x)) {
		r = -r
	}
	return r
}
