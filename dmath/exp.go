package dmath

import "math"

// ln 2 split in two: lnTwoHigh has its low bits zero so that k×lnTwoHigh is
// exact for the integers k that argument reduction produces.
const (
	lnTwoHigh = 6.93147180369123816490e-01 // 0x3fe62e42fee00000
	lnTwoLow  = 1.90821492927058770002e-10 // 0x3dea39ef35793c76
)

// Exp returns e**x. Exp(+Inf) = +Inf, Exp(-Inf) = 0, Exp(NaN) =
// CanonicalNaN(); results too large are +Inf, too small 0.
//
// The algorithm is FreeBSD's (fdlibm) e_exp.c, as in Go's pure-Go fallback:
// write x = k×ln2 + r with |r| <= ln2/2, approximate e**r with a degree-5
// Remez polynomial in r², and scale by 2**k exactly.
func Exp(x float64) float64 {
	const (
		log2e     = 1.44269504088896338700e+00
		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28)
	)
	switch {
	case x != x:
		return CanonicalNaN()
	case x > overflow: // including +Inf
		return math.Inf(1)
	case x < underflow: // including -Inf
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	// k = round(x/ln2). A fused multiply-add here would change k for some
	// x; the float64() conversion keeps the product rounded.
	var k int
	switch {
	case x < 0:
		k = int(float64(log2e*x) - 0.5)
	case x > 0:
		k = int(float64(log2e*x) + 0.5)
	}
	high := x - float64(float64(k)*lnTwoHigh)
	low := float64(float64(k) * lnTwoLow)
	return expReduced(high, low, k)
}

// expReduced returns e**(high-low) × 2**k for |high-low| <= ln2/2.
func expReduced(high, low float64, k int) float64 {
	const (
		p1 = 1.66666666666666657415e-01  // 0x3FC5555555555555
		p2 = -2.77777777770155933842e-03 // 0xBF66C16C16BEBD93
		p3 = 6.61375632143793436117e-05  // 0x3F11566AAF25DE2C
		p4 = -1.65339022054652515390e-06 // 0xBEBBBD41C5D26BF1
		p5 = 4.13813679705723846039e-08  // 0x3E66376972BEA4D0
	)
	r := high - low
	t := float64(r * r)
	p := float64(t*p5) + p4
	p = float64(t*p) + p3
	p = float64(t*p) + p2
	p = float64(t*p) + p1
	c := r - float64(t*p)
	y := 1 - ((low - float64(r*c)/(2-c)) - high)
	return ldexp(y, k)
}

// Log returns the natural logarithm of x. Log(+Inf) = +Inf, Log(±0) =
// -Inf, Log(x < 0) and Log(NaN) are CanonicalNaN().
//
// The algorithm is FreeBSD's (fdlibm) e_log.c, as in Go's pure-Go fallback:
// write x = 2**k × (1+f) with √2/2 < 1+f < √2, then log(1+f) = 2s + s×R(s²)
// with s = f/(2+f) and a degree-14 Remez polynomial R.
func Log(x float64) float64 {
	const (
		l1 = 6.666666666666735130e-01 // 0x3FE5555555555593
		l2 = 3.999999999940941908e-01 // 0x3FD999999997FA04
		l3 = 2.857142874366239149e-01 // 0x3FD2492494229359
		l4 = 2.222219843214978396e-01 // 0x3FCC71C51D8E78AF
		l5 = 1.818357216161805012e-01 // 0x3FC7466496CB03DE
		l6 = 1.531383769920937332e-01 // 0x3FC39A09D078C69F
		l7 = 1.479819860511658591e-01 // 0x3FC2F112DF3E5244
	)
	switch {
	case x != x || x < 0:
		return CanonicalNaN()
	case IsInf(x, 1):
		return x
	case x == 0:
		return math.Inf(-1)
	}
	fraction, exponent := frexp(x)
	if fraction < math.Sqrt2/2 {
		fraction = float64(fraction * 2) // exact
		exponent--
	}
	f := fraction - 1
	k := float64(exponent)
	s := f / (2 + f)
	s2 := float64(s * s)
	s4 := float64(s2 * s2)
	t1 := float64(s4*l7) + l5
	t1 = float64(s4*t1) + l3
	t1 = float64(s4*t1) + l1
	t1 = float64(s2 * t1)
	t2 := float64(s4*l6) + l4
	t2 = float64(s4*t2) + l2
	t2 = float64(s4 * t2)
	r := t1 + t2
	halfSquare := float64(float64(0.5*f) * f)
	return float64(k*lnTwoHigh) - ((halfSquare - (float64(s*(halfSquare+r)) + float64(k*lnTwoLow))) - f)
}

// Tanh returns the hyperbolic tangent of x. Tanh(±0) = ±0, Tanh(±Inf) =
// ±1, Tanh(NaN) = CanonicalNaN().
//
// The algorithm is Cephes' (as in Go's math.Tanh): a rational
// approximation for |x| < 0.625, 1 - 2/(e**2|x| + 1) above.
func Tanh(x float64) float64 {
	const maxLog = 8.8029691931113054295988e+01 // log(2**127)
	const (
		p0 = -9.64399179425052238628e-1
		p1 = -9.92877231001918586564e1
		p2 = -1.61468768441708447952e3
		q0 = 1.12811678491632931402e2
		q1 = 2.23548839060100448583e3
		q2 = 4.84406305325125486048e3
	)
	if x != x {
		return CanonicalNaN()
	}
	z := Abs(x)
	switch {
	case z > 0.5*maxLog:
		if x < 0 {
			return -1
		}
		return 1
	case z >= 0.625:
		s := Exp(float64(2 * z))
		z = 1 - 2/(s+1)
		if x < 0 {
			z = -z
		}
		return z
	case x == 0:
		return x
	}
	s := float64(x * x)
	numerator := float64(p0*s) + p1
	numerator = float64(numerator*s) + p2
	denominator := float64((s+q0)*s) + q1
	denominator = float64(denominator*s) + q2
	return x + float64(float64(float64(x*s)*numerator)/denominator)
}

// Hypot returns √(p² + q²) without needless overflow or underflow.
// Hypot(±Inf, q) = Hypot(p, ±Inf) = +Inf even if the other is NaN;
// otherwise a NaN argument gives CanonicalNaN().
func Hypot(p, q float64) float64 {
	switch {
	case IsInf(p, 0) || IsInf(q, 0):
		return math.Inf(1)
	case p != p || q != q:
		return CanonicalNaN()
	}
	p, q = Abs(p), Abs(q)
	if p < q {
		p, q = q, p
	}
	if p == 0 {
		return 0
	}
	q = q / p
	return float64(p * Sqrt(1+float64(q*q)))
}
