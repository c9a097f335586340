package dmath

import (
	"math"
	"math/bits"
)

// Sine and cosine follow the Cephes library (S. L. Moshier), as do the
// pure-Go fallbacks of Go's math package: reduce the argument to
// z in [-π/4, π/4] and an octant j, then evaluate a degree-13 (sine) or
// degree-14 (cosine) polynomial in z. Every product is wrapped in float64()
// so the compiler cannot fuse it with the following addition (see the
// package documentation).

// sinCoefficients and cosCoefficients are the polynomial coefficients,
// highest degree first.
var sinCoefficients = [...]float64{
	1.58962301576546568060e-10, // 0x3de5d8fd1fd19ccd
	-2.50507477628578072866e-8, // 0xbe5ae5e5a9291f5d
	2.75573136213857245213e-6,  // 0x3ec71de3567d48a1
	-1.98412698295895385996e-4, // 0xbf2a01a019bfdf03
	8.33333333332211858878e-3,  // 0x3f8111111110f7d0
	-1.66666666666666307295e-1, // 0xbfc5555555555548
}

var cosCoefficients = [...]float64{
	-1.13585365213876817300e-11, // 0xbda8fa49a0861a9b
	2.08757008419747316778e-9,   // 0x3e21ee9d7b4e3f05
	-2.75573141792967388112e-7,  // 0xbe927e4f7eac4bc6
	2.48015872888517045348e-5,   // 0x3efa01a019c844f5
	-1.38888888888730564116e-3,  // 0xbf56c16c16c14f91
	4.16666666666665929218e-2,   // 0x3fa555555555554b
}

// π/4 split into three parts whose products with small integers are exact
// (Cody–Waite reduction).
const (
	piOver4A = 7.85398125648498535156e-1  // 0x3fe921fb40000000
	piOver4B = 3.77489470793079817668e-8  // 0x3e64442d00000000
	piOver4C = 2.69515142907905952645e-15 // 0x3ce8469898cc5170
)

// reduceThresholdRadians is where Cody–Waite reduction stops being accurate
// enough and Payne–Hanek reduction (reduceLarge) takes over.
const reduceThresholdRadians = 1 << 29

// reduce returns the octant j (0..7, even) and z in [-π/4, π/4] with
// x = (j×π/4 + z) modulo 2π, for finite x >= 0.
func reduce(x float64) (j uint64, z float64) {
	if x >= reduceThresholdRadians {
		return reduceLarge(x)
	}
	j = uint64(float64(x * (4 / math.Pi))) // integer part of x/(π/4)
	y := float64(j)
	if j&1 == 1 { // map odd octants to the next even one: z becomes negative
		j++
		y++
	}
	j &= 7
	z = ((x - float64(y*piOver4A)) - float64(y*piOver4B)) - float64(y*piOver4C)
	return j, z
}

// sinPolynomial returns sin(z) for |z| <= π/4; zz is z×z.
func sinPolynomial(z, zz float64) float64 {
	c := &sinCoefficients
	p := float64(c[0] * zz)
	p = float64((p+c[1])*zz) + c[2]
	p = float64(p*zz) + c[3]
	p = float64(p*zz) + c[4]
	p = float64(p*zz) + c[5]
	return z + float64(float64(z*zz)*p)
}

// cosPolynomial returns cos(z) for |z| <= π/4; zz is z×z.
func cosPolynomial(zz float64) float64 {
	c := &cosCoefficients
	p := float64(c[0] * zz)
	p = float64((p+c[1])*zz) + c[2]
	p = float64(p*zz) + c[3]
	p = float64(p*zz) + c[4]
	p = float64(p*zz) + c[5]
	return 1.0 - float64(0.5*zz) + float64(float64(zz*zz)*p)
}

// Sin returns the sine of x (radians). Sin(±0) = ±0; Sin(±Inf) and
// Sin(NaN) are CanonicalNaN(). As with Go's math.Sin, the absolute error is
// tiny everywhere, but next to a zero at a multiple of π the relative error
// can be several ulp (Sin(math.Pi) is 7 ulp from the exact value).
func Sin(x float64) float64 {
	switch {
	case x == 0:
		return x
	case x != x || IsInf(x, 0):
		return CanonicalNaN()
	}
	negative := false
	if x < 0 {
		x = -x
		negative = true
	}
	j, z := reduce(x)
	if j > 3 { // sin(x + π) = -sin(x)
		negative = !negative
		j -= 4
	}
	zz := float64(z * z)
	var y float64
	if j == 1 || j == 2 {
		y = cosPolynomial(zz)
	} else {
		y = sinPolynomial(z, zz)
	}
	if negative {
		y = -y
	}
	return y
}

// Cos returns the cosine of x (radians). Cos(±Inf) and Cos(NaN) are
// CanonicalNaN().
func Cos(x float64) float64 {
	if x != x || IsInf(x, 0) {
		return CanonicalNaN()
	}
	negative := false
	x = Abs(x)
	j, z := reduce(x)
	if j > 3 { // cos(x + π) = -cos(x)
		j -= 4
		negative = !negative
	}
	if j > 1 { // cos(x + π/2) = -sin(x)
		negative = !negative
	}
	zz := float64(z * z)
	var y float64
	if j == 1 || j == 2 {
		y = sinPolynomial(z, zz)
	} else {
		y = cosPolynomial(zz)
	}
	if negative {
		y = -y
	}
	return y
}

// tanP and tanQ are the numerator and denominator coefficients of the
// Cephes rational approximation of tan on [-π/4, π/4].
var tanP = [...]float64{
	-1.30936939181383777646e4, // 0xc0c992d8d24f3f38
	1.15351664838587416140e6,  // 0x413199eca5fc9ddd
	-1.79565251976484877988e7, // 0xc1711fead3299176
}

var tanQ = [...]float64{
	1.36812963470692954678e4,  // 0x40cab8a5eeb36572
	-1.32089234440210967447e6, // 0xc13427bc582abc96
	2.50083801823357915839e7,  // 0x4177d98fc2ead8ef
	-5.38695755929454629881e7, // 0xc189afe03cbe5a31
}

// Tan returns the tangent of x (radians). Tan(±0) = ±0; Tan(±Inf) and
// Tan(NaN) are CanonicalNaN().
func Tan(x float64) float64 {
	switch {
	case x == 0:
		return x
	case x != x || IsInf(x, 0):
		return CanonicalNaN()
	}
	negative := false
	if x < 0 {
		x = -x
		negative = true
	}
	j, z := reduce(x)
	zz := float64(z * z)
	y := z
	if zz > 1e-14 {
		numerator := float64(tanP[0] * zz)
		numerator = float64((numerator+tanP[1])*zz) + tanP[2]
		numerator = float64(zz * numerator)
		denominator := float64((zz+tanQ[0])*zz) + tanQ[1]
		denominator = float64(denominator*zz) + tanQ[2]
		denominator = float64(denominator*zz) + tanQ[3]
		y = z + float64(z*(numerator/denominator))
	}
	if j&2 == 2 { // tan(x + π/2) = -1/tan(x)
		y = -1 / y
	}
	if negative {
		y = -y
	}
	return y
}

// reduceLarge is Payne–Hanek argument reduction for x >= 2**29: it
// multiplies the 53-bit mantissa of x by the bits of 4/π that matter at
// x's exponent, using integer arithmetic only, so it is exact up to the
// 192 bits of 4/π it uses and identical on every target.
func reduceLarge(x float64) (j uint64, z float64) {
	const piOver4 = math.Pi / 4
	if x < piOver4 {
		return 0, x
	}
	b := math.Float64bits(x)
	exponent := int(b>>mantissaBits&exponentMask) - exponentBias - mantissaBits
	b &^= exponentMask << mantissaBits
	b |= 1 << mantissaBits // the integer mantissa, 53 bits
	// Pick the 192 bits of 4/π starting at the bit that lines up with the
	// mantissa's lowest bit; higher bits only add multiples of 8 octants.
	digit, shift := uint(exponent+61)/64, uint(exponent+61)%64
	z0 := (fourOverPi[digit] << shift) | (fourOverPi[digit+1] >> (64 - shift))
	z1 := (fourOverPi[digit+1] << shift) | (fourOverPi[digit+2] >> (64 - shift))
	z2 := (fourOverPi[digit+2] << shift) | (fourOverPi[digit+3] >> (64 - shift))
	// Multiply the mantissa by the 192-bit window, keeping the top 128 bits
	// of the 245-bit product: 3 integer bits (the octant) and 125 of fraction.
	z2hi, _ := bits.Mul64(z2, b)
	z1hi, z1lo := bits.Mul64(z1, b)
	z0lo := z0 * b
	lo, carry := bits.Add64(z1lo, z2hi, 0)
	hi, _ := bits.Add64(z0lo, z1hi, carry)
	j = hi >> 61
	hi = hi<<3 | lo>>61
	// Build a float64 from the fraction bits: normalize and set the exponent.
	leadingZeros := uint(bits.LeadingZeros64(hi))
	e := uint64(exponentBias - (leadingZeros + 1))
	hi = (hi << (leadingZeros + 1)) | (lo >> (64 - (leadingZeros + 1)))
	hi >>= 64 - mantissaBits
	hi |= e << mantissaBits
	z = math.Float64frombits(hi)
	if j&1 == 1 { // map odd octants to the next even one
		j++
		j &= 7
		z--
	}
	return j, float64(z * piOver4)
}

// fourOverPi holds the binary digits of 4/π, 64 per word, most significant
// first; the first word holds the integer part. TestFourOverPiTable checks
// it against 4/π computed with math/big.
var fourOverPi = [...]uint64{
	0x0000000000000001,
	0x45f306dc9c882a53,
	0xf84eafa3ea69bb81,
	0xb6c52b3278872083,
	0xfca2c757bd778ac3,
	0x6e48dc74849ba5c0,
	0x0c925dd413a32439,
	0xfc3bd63962534e7d,
	0xd1046bea5d768909,
	0xd338e04d68befc82,
	0x7323ac7306a673e9,
	0x3908bf177bf25076,
	0x3ff12fffbc0b301f,
	0xde5e2316b414da3e,
	0xda6cfd9e4f96136e,
	0x9e8c7ecd3cbfd45a,
	0xea4f758fd7cbe2f6,
	0x7a0e73ef14a525d4,
	0xd7f6bf623f1aba10,
	0xac06608df8f6d757,
}
