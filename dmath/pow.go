package dmath

import "math"

// Pow returns x**y. The special cases are those of C99 Annex F and Go's
// math.Pow, with CanonicalNaN() for every NaN result:
//
//	Pow(x, ±0) = 1 for any x; Pow(1, y) = 1 for any y; Pow(x, 1) = x
//	Pow(NaN, y) = Pow(x, NaN) = NaN otherwise
//	Pow(±0, y) = ±Inf for y an odd integer < 0; +Inf for other y < 0
//	Pow(±0, y) = ±0 for y an odd integer > 0; +0 for other y > 0
//	Pow(-1, ±Inf) = 1; Pow(x, +Inf) = +Inf for |x| > 1, +0 for |x| < 1
//	Pow(x, -Inf) = +0 for |x| > 1, +Inf for |x| < 1
//	Pow(+Inf, y) = +Inf for y > 0, +0 for y < 0
//	Pow(-Inf, y) = Pow(-0, -y)
//	Pow(x, y) = NaN for finite x < 0 and finite non-integer y
//
// The algorithm is fdlibm's e_pow.c (Sun Microsystems): log2(x) is computed
// in two pieces to about 70 bits, y×log2(x) = n + f in simulated extra
// precision, and x**y = 2**n × e**(f×ln2). The result is within 1 ulp of
// the exact value and exact when x and y are integers and x**y is
// representable. (Go's math.Pow uses a shorter algorithm that loses up to
// about 100 ulp for large |y×log(x)|, so the two differ there.)
func Pow(x, y float64) float64 {
	switch {
	case y == 0 || x == 1:
		return 1
	case x != x || y != y:
		return CanonicalNaN()
	case y == 1:
		return x
	case x == 0:
		switch {
		case y < 0:
			if Signbit(x) && isOddInteger(y) {
				return math.Inf(-1)
			}
			return math.Inf(1)
		default:
			if Signbit(x) && isOddInteger(y) {
				return x
			}
			return 0
		}
	case IsInf(y, 0):
		switch {
		case x == -1:
			return 1
		case (Abs(x) < 1) == IsInf(y, 1):
			return 0
		default:
			return math.Inf(1)
		}
	case IsInf(x, 0):
		if IsInf(x, -1) {
			return Pow(1/x, -y) // Pow(-0, -y)
		}
		if y < 0 {
			return 0
		}
		return math.Inf(1)
	case y == 2:
		return float64(x * x) // correctly rounded
	case y == -1:
		return 1 / x // correctly rounded
	case y == 0.5:
		return Sqrt(x) // correctly rounded; NaN for x < 0
	}
	sign := 1.0
	if x < 0 {
		switch {
		case Trunc(y) != y:
			return CanonicalNaN() // negative number to a non-integer power
		case isOddInteger(y):
			sign = -1
		}
		if x == -1 {
			return sign
		}
	}
	return float64(sign * powPositive(Abs(x), y))
}

// isOddInteger reports whether x is an odd integer.
func isOddInteger(x float64) bool {
	if Abs(x) >= 1<<53 { // every float64 this large is even
		return false
	}
	integer := Trunc(x)
	return integer == x && int64(integer)&1 == 1
}

// Constants of fdlibm's e_pow.c. A "high" part has its low 32 bits zero,
// so products with another high part are exact.
const (
	powTwo53        = 9007199254740992.0         // 2**53
	powL1           = 5.99999999999994648725e-01 // 0x3FE3333333333303
	powL2           = 4.28571428578550184252e-01 // 0x3FDB6DB6DB6FABFF
	powL3           = 3.33333329818377432918e-01 // 0x3FD55555518F264D
	powL4           = 2.72728123808534006489e-01 // 0x3FD17460A91D4101
	powL5           = 2.30660745775561754067e-01 // 0x3FCD864A93C9DB65
	powL6           = 2.06975017800338417784e-01 // 0x3FCA7E284A454EEF
	powP1           = 1.66666666666666019037e-01 // 0x3FC555555555553E
	powP2           = -2.77777777770155933842e-03
	powP3           = 6.61375632143793436117e-05
	powP4           = -1.65339022054652515390e-06
	powP5           = 4.13813679705723846039e-08
	powLn2          = 6.93147180559945286227e-01  // 0x3FE62E42FEFA39EF
	powLn2High      = 6.93147182464599609375e-01  // 0x3FE62E4300000000
	powLn2Low       = -1.90465429995776804525e-09 // 0xBE205C610CA86C39
	powOverflowTail = 8.0085662595372944372e-17   // -(1024 - log2(MaxFloat64 + ½ulp))
	powCp           = 9.61796693925975554329e-01  // 2/(3 ln2), 0x3FEEC709DC3A03FD
	powCpHigh       = 9.61796700954437255859e-01  // 0x3FEEC709E0000000
	powCpLow        = -7.02846165095275826516e-09 // 0xBE3E2FE0145B01F5
	powInvLn2       = 1.44269504088896338700e+00  // 1/ln2, 0x3FF71547652B82FE
	powInvLn2High   = 1.44269502162933349609e+00  // 0x3FF7154760000000
	powInvLn2Low    = 1.92596299112661746887e-08  // 0x3E54AE0BF85DDF44
)

// powBase, powLog2High and powLog2Low: the reduction point 1 or 1.5 and
// log2 of it in two pieces.
var (
	powBase     = [2]float64{1.0, 1.5}
	powLog2High = [2]float64{0.0, 5.84962487220764160156e-01} // 0x3FE2B80340000000
	powLog2Low  = [2]float64{0.0, 1.35003920212974897128e-08} // 0x3E4CFDEB43CFD006
)

// highWord and lowWord are the upper and lower 32 bits of x.
func highWord(x float64) int32 { return int32(math.Float64bits(x) >> 32) }
func lowWord(x float64) uint32 { return uint32(math.Float64bits(x)) }
func clearLowWord(x float64) float64 {
	return math.Float64frombits(math.Float64bits(x) &^ 0xffffffff)
}
func setHighWord(x float64, high int32) float64 {
	return math.Float64frombits(uint64(uint32(high))<<32 | uint64(lowWord(x)))
}

// powPositive returns x**y for finite x > 0, x != 1 and finite y not 0;
// results beyond the float64 range are +Inf or +0.
func powPositive(x, y float64) float64 {
	ix := highWord(x)
	iy := highWord(y) & 0x7fffffff
	// log2(x) = t1 + t2, t1 with its low word zero.
	var t1, t2 float64
	if iy > 0x41e00000 { // |y| > 2**31
		if iy > 0x43f00000 { // |y| > 2**64: over- or underflows unless x == 1
			if (ix <= 0x3fefffff) == (y < 0) {
				return math.Inf(1)
			}
			return 0
		}
		// Over- or underflow unless x is within 2**-20 of 1.
		if ix < 0x3fefffff {
			if y < 0 {
				return math.Inf(1)
			}
			return 0
		}
		if ix > 0x3ff00000 {
			if y > 0 {
				return math.Inf(1)
			}
			return 0
		}
		// |1-x| <= 2**-20: log(x) = t - t²/2 + t³/3 - t⁴/4 is enough.
		t := x - 1
		w := float64(float64(t*t) * (0.5 - float64(t*(0.3333333333333333333333-float64(t*0.25)))))
		u := float64(powInvLn2High * t)
		v := float64(t*powInvLn2Low) - float64(w*powInvLn2)
		t1 = clearLowWord(u + v)
		t2 = v - (t1 - u)
	} else {
		n := int32(0)
		if ix < 0x00100000 { // subnormal x: scale up exactly
			x = float64(x * powTwo53)
			n -= 53
			ix = highWord(x)
		}
		n += ix>>20 - 0x3ff
		j := ix & 0x000fffff
		ix = j | 0x3ff00000 // x scaled into [1, 2)
		k := 0
		switch {
		case j <= 0x3988E: // x < sqrt(3/2)
			k = 0
		case j < 0xBB67A: // x < sqrt(3)
			k = 1
		default:
			n++
			ix -= 0x00100000
		}
		x = setHighWord(x, ix)

		// ss = sHigh + sLow = (x-base)/(x+base)
		u := x - powBase[k]
		v := 1 / (x + powBase[k])
		ss := float64(u * v)
		sHigh := clearLowWord(ss)
		tHigh := math.Float64frombits(uint64(uint32(((ix>>1)|0x20000000)+0x00080000+int32(k<<18))) << 32) // x+base, high part
		tLow := x - (tHigh - powBase[k])
		sLow := float64(v * ((u - float64(sHigh*tHigh)) - float64(sHigh*tLow)))
		// log(x)
		s2 := float64(ss * ss)
		polynomial := float64(s2*powL6) + powL5
		polynomial = float64(s2*polynomial) + powL4
		polynomial = float64(s2*polynomial) + powL3
		polynomial = float64(s2*polynomial) + powL2
		polynomial = float64(s2*polynomial) + powL1
		r := float64(float64(s2*s2) * polynomial)
		r += float64(sLow * (sHigh + ss))
		s2 = float64(sHigh * sHigh)
		tHigh = clearLowWord(3.0 + s2 + r)
		tLow = r - ((tHigh - 3.0) - s2)
		// u+v = ss×(1+...)
		u = float64(sHigh * tHigh)
		v = float64(sLow*tHigh) + float64(tLow*ss)
		// 2/(3 log2) × (ss+...)
		pHigh := clearLowWord(u + v)
		pLow := v - (pHigh - u)
		zHigh := float64(powCpHigh * pHigh)
		zLow := float64(powCpLow*pHigh) + float64(pLow*powCp) + powLog2Low[k]
		// log2(x) = n + log2(base) + zHigh + zLow
		t := float64(n)
		t1 = clearLowWord(((zHigh + zLow) + powLog2High[k]) + t)
		t2 = zLow - (((t1 - t) - powLog2High[k]) - zHigh)
	}

	// y×log2(x) = pHigh + pLow, with y split so that yHigh×t1 is exact.
	yHigh := clearLowWord(y)
	pLow := float64((y-yHigh)*t1) + float64(y*t2)
	pHigh := float64(yHigh * t1)
	z := pLow + pHigh
	j := highWord(z)
	i := lowWord(z)
	if j >= 0x40900000 { // z >= 1024
		if uint32(j-0x40900000)|i != 0 || pLow+powOverflowTail > z-pHigh {
			return math.Inf(1)
		}
	} else if j&0x7fffffff >= 0x4090cc00 { // z <= -1075
		if uint32(j)-0xc090cc00|i != 0 || pLow <= z-pHigh {
			return 0
		}
	}

	// 2**(pHigh+pLow) = 2**n × 2**(remainder), |remainder| <= 0.5.
	absHigh := j & 0x7fffffff
	k := absHigh>>20 - 0x3ff
	n := int32(0)
	if absHigh > 0x3fe00000 { // |z| > 0.5: n = nearest integer to z
		n = j + 0x00100000>>(k+1)
		k = (n&0x7fffffff)>>20 - 0x3ff
		t := math.Float64frombits(uint64(uint32(n&^(0x000fffff>>k))) << 32)
		n = (n&0x000fffff | 0x00100000) >> (20 - k)
		if j < 0 {
			n = -n
		}
		pHigh -= t
	}
	t := clearLowWord(pLow + pHigh)
	u := float64(t * powLn2High)
	v := float64((pLow-(t-pHigh))*powLn2) + float64(t*powLn2Low)
	z = u + v
	w := v - (z - u)
	t = float64(z * z)
	polynomial := float64(t*powP5) + powP4
	polynomial = float64(t*polynomial) + powP3
	polynomial = float64(t*polynomial) + powP2
	polynomial = float64(t*polynomial) + powP1
	t1 = z - float64(t*polynomial)
	r := float64(z*t1)/(t1-2) - (w + float64(z*w))
	z = 1 - (r - z)
	high := highWord(z) + n<<20
	if high>>20 <= 0 { // subnormal result
		return ldexp(z, int(n))
	}
	return setHighWord(z, high)
}
