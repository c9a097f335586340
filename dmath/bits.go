package dmath

import "math"

// IEEE 754 binary64 layout, used by the bit-level functions below.
const (
	mantissaBits = 52
	exponentMask = 0x7ff
	exponentBias = 1023
	signMask     = 1 << 63
	fractionMask = 1<<mantissaBits - 1
)

// CanonicalNaNBits is the bit pattern of the one NaN that dmath returns: the
// positive quiet NaN with an empty payload, 0x7FF8000000000000. It is also
// the "default NaN" of arm64 and the canonical NaN of WebAssembly.
//
// Hardware does not agree on the NaN an invalid operation produces: amd64
// produces 0xFFF8000000000000 (sign bit set) for 0/0 and Inf-Inf, arm64 and
// wasm produce 0x7FF8000000000000, and operations that propagate a NaN keep
// or drop payloads differently. Values that compare equal in a model can
// therefore hash differently; Canonicalize removes the difference.
const CanonicalNaNBits uint64 = 0x7FF8000000000000

// CanonicalNaN returns the NaN with bits CanonicalNaNBits. Every dmath
// function whose result is NaN returns exactly this value.
func CanonicalNaN() float64 { return math.Float64frombits(CanonicalNaNBits) }

// Canonicalize returns CanonicalNaN() if x is any NaN, and x unchanged
// otherwise (including the sign of zero). Apply it to every float64 of a
// model's state before hashing or serializing it.
func Canonicalize(x float64) float64 {
	if x != x {
		return CanonicalNaN()
	}
	return x
}

// IsNaN reports whether x is a NaN.
func IsNaN(x float64) bool { return x != x }

// IsInf reports whether x is an infinity: +Inf if sign > 0, -Inf if
// sign < 0, either if sign == 0.
func IsInf(x float64, sign int) bool {
	return sign >= 0 && x > math.MaxFloat64 || sign <= 0 && x < -math.MaxFloat64
}

// Inf returns +Inf if sign >= 0 and -Inf otherwise.
func Inf(sign int) float64 { return math.Inf(sign) }

// Signbit reports whether the sign bit of x is set (true for -0 and for
// negative numbers).
func Signbit(x float64) bool { return math.Float64bits(x)&signMask != 0 }

// Copysign returns a value with the magnitude of x and the sign of sign.
// A NaN x yields CanonicalNaN(): the sign of a NaN carries no meaning here.
func Copysign(x, sign float64) float64 {
	if x != x {
		return CanonicalNaN()
	}
	return math.Float64frombits(math.Float64bits(x)&^signMask | math.Float64bits(sign)&signMask)
}

// Hash returns the 64-bit FNV-1a hash of the bit patterns of xs (each
// canonicalized first, little-endian). Two slices hash alike exactly when
// they are bit-identical up to NaN payloads; -0 and +0 hash differently.
// It is meant for tests and state-hash comparisons between replicas, not
// for security.
func Hash(xs ...float64) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for _, x := range xs {
		b := math.Float64bits(Canonicalize(x))
		for i := 0; i < 8; i++ {
			h ^= b & 0xff
			h *= prime64
			b >>= 8
		}
	}
	return h
}

// normalize returns a normal number y and exponent e with y × 2**e == x.
// x must be finite and nonzero.
func normalize(x float64) (y float64, e int) {
	const smallestNormal = 2.2250738585072014e-308 // 2**-1022
	if x < smallestNormal && x > -smallestNormal {
		return float64(x * (1 << mantissaBits)), -mantissaBits // exact: scales by a power of two
	}
	return x, 0
}

// frexp splits a finite nonzero x into a fraction in [½, 1) (with x's sign)
// and a power of two: x == frac × 2**exp. Zero, infinities and NaN are
// returned unchanged with exp 0.
func frexp(x float64) (frac float64, exp int) {
	if x == 0 || x != x || IsInf(x, 0) {
		return x, 0
	}
	x, exp = normalize(x)
	b := math.Float64bits(x)
	exp += int(b>>mantissaBits&exponentMask) - exponentBias + 1
	b &^= exponentMask << mantissaBits
	b |= (exponentBias - 1) << mantissaBits
	return math.Float64frombits(b), exp
}

// ldexp returns frac × 2**exp, correctly rounded when the result is
// subnormal, ±Inf on overflow and ±0 on underflow.
func ldexp(frac float64, exp int) float64 {
	if frac == 0 || frac != frac || IsInf(frac, 0) {
		return frac
	}
	frac, e := normalize(frac)
	exp += e
	b := math.Float64bits(frac)
	exp += int(b>>mantissaBits&exponentMask) - exponentBias
	if exp < -1075 {
		return Copysign(0, frac) // below half the smallest subnormal
	}
	if exp > 1023 {
		return Copysign(math.Inf(1), frac)
	}
	scale := 1.0
	if exp < -1022 {
		// Build a normal number, then let one multiplication round it
		// into the subnormal range.
		exp += 53
		scale = 1.0 / (1 << 53)
	}
	b &^= exponentMask << mantissaBits
	b |= uint64(exp+exponentBias) << mantissaBits
	return float64(scale * math.Float64frombits(b))
}
