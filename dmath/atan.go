package dmath

import "math"

// The inverse trigonometric functions follow Cephes (S. L. Moshier), as do
// the pure-Go fallbacks of Go's math package: a rational approximation of
// atan on [0, 0.66], extended to all of [0, ∞) by atan(x) = π/4 +
// atan((x-1)/(x+1)) and atan(x) = π/2 - atan(1/x); asin and acos are
// expressed through atan.

// atanKernel returns atan(x) for 0 <= x <= 0.66.
func atanKernel(x float64) float64 {
	const (
		p0 = -8.750608600031904122785e-01
		p1 = -1.615753718733365076637e+01
		p2 = -7.500855792314704667340e+01
		p3 = -1.228866684490136173410e+02
		p4 = -6.485021904942025371773e+01
		q0 = +2.485846490142306297962e+01
		q1 = +1.650270098316988542046e+02
		q2 = +4.328810604912902668951e+02
		q3 = +4.853903996359136964868e+02
		q4 = +1.945506571482613964425e+02
	)
	z := float64(x * x)
	numerator := float64(p0*z) + p1
	numerator = float64(numerator*z) + p2
	numerator = float64(numerator*z) + p3
	numerator = float64(numerator*z) + p4
	denominator := float64((z+q0)*z) + q1
	denominator = float64(denominator*z) + q2
	denominator = float64(denominator*z) + q3
	denominator = float64(denominator*z) + q4
	z = float64(z*numerator) / denominator
	return float64(x*z) + x
}

// atanPositive returns atan(x) for x >= 0 (x may be +Inf).
func atanPositive(x float64) float64 {
	const (
		piOver2Low  = 6.123233995736765886130e-17 // π/2 - float64(π/2)
		tan3PiOver8 = 2.41421356237309504880
	)
	if x <= 0.66 {
		return atanKernel(x)
	}
	if x > tan3PiOver8 {
		return math.Pi/2 - atanKernel(1/x) + piOver2Low
	}
	return math.Pi/4 + atanKernel((x-1)/(x+1)) + 0.5*piOver2Low
}

// Atan returns the arctangent of x in radians, in [-π/2, π/2].
// Atan(±0) = ±0, Atan(±Inf) = ±π/2, Atan(NaN) = CanonicalNaN().
func Atan(x float64) float64 {
	switch {
	case x == 0:
		return x
	case x != x:
		return CanonicalNaN()
	case x > 0:
		return atanPositive(x)
	}
	return -atanPositive(-x)
}

// Atan2 returns the arctangent of y/x in radians, in [-π, π], using the
// signs of both to choose the quadrant. Special cases follow C99 Annex F
// and Go's math.Atan2: Atan2(±0, +0) = ±0, Atan2(±0, -0) = ±π,
// Atan2(y, ±Inf) and Atan2(±Inf, x) give the limits (±π/4, ±3π/4, ±π/2,
// ±0, ±π), and a NaN argument gives CanonicalNaN().
func Atan2(y, x float64) float64 {
	switch {
	case y != y || x != x:
		return CanonicalNaN()
	case y == 0:
		if x >= 0 && !Signbit(x) {
			return Copysign(0, y)
		}
		return Copysign(math.Pi, y)
	case x == 0:
		return Copysign(math.Pi/2, y)
	case IsInf(x, 0):
		if IsInf(x, 1) {
			if IsInf(y, 0) {
				return Copysign(math.Pi/4, y)
			}
			return Copysign(0, y)
		}
		if IsInf(y, 0) {
			return Copysign(3*math.Pi/4, y)
		}
		return Copysign(math.Pi, y)
	case IsInf(y, 0):
		return Copysign(math.Pi/2, y)
	}
	q := Atan(y / x)
	if x < 0 {
		if q <= 0 {
			return q + math.Pi
		}
		return q - math.Pi
	}
	return q
}

// Asin returns the arcsine of x in radians, in [-π/2, π/2]. Asin(±0) = ±0;
// Asin(x) for |x| > 1 or NaN is CanonicalNaN().
func Asin(x float64) float64 {
	switch {
	case x == 0:
		return x
	case x != x || x > 1 || x < -1:
		return CanonicalNaN()
	}
	negative := false
	if x < 0 {
		x = -x
		negative = true
	}
	cosine := Sqrt(1 - float64(x*x))
	var angle float64
	if x > 0.7 {
		angle = math.Pi/2 - atanPositive(cosine/x)
	} else {
		angle = atanPositive(x / cosine)
	}
	if negative {
		angle = -angle
	}
	return angle
}

// Acos returns the arccosine of x in radians, in [0, π]. Acos(x) for
// |x| > 1 or NaN is CanonicalNaN().
//
// Near ±1, π/2 - Asin(x) (Go's math.Acos) cancels catastrophically:
// math.Acos(1-2**-40) is about a million ulp off. For |x| > 1/2 this uses
// acos(x) = 2 asin(√((1-x)/2)) instead, whose argument is computed exactly
// up to the square root, so the result stays within 2 ulp.
func Acos(x float64) float64 {
	switch {
	case x != x || x > 1 || x < -1:
		return CanonicalNaN()
	case x > 0.5:
		return float64(2 * Asin(Sqrt((1-x)/2))) // 1-x is exact here
	case x < -0.5:
		return math.Pi - float64(2*Asin(Sqrt((1+x)/2)))
	}
	return math.Pi/2 - Asin(x)
}
