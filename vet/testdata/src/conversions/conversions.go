// Package conversions holds float-to-integer conversions: those whose
// operand may be NaN or out of range are reported; constants in range and
// operands compared with constants on both sides, NaN excluded, are not.
package conversions

import (
	"math"
	"time"
)

type Cell int16

func unchecked(x float64, f float32) (int, int64, uint8, Cell, time.Duration) {
	a := int(x)                                  // want `conversion int\(x\) from float64 to int: if the value is NaN, infinite or out of range after truncation, the result differs between targets \(int64\(NaN\) is -9223372036854775808 on amd64 and 0 on arm64 and wasm\); check the converted value first, with comparisons that are false for NaN, e.g. if v >= 0 && v < 1000 \{ n = int\(v\) \}`
	b := int64(math.Round(x))                    // want `conversion int64\(math.Round\(x\)\) from float64 to int64`
	c := uint8(f)                                // want `conversion uint8\(f\) from float32 to uint8`
	d := Cell(x * 16)                            // want `conversion Cell\(x \* 16\) from float64 to Cell`
	e := time.Duration(x * float64(time.Second)) // want `conversion time.Duration\(x \* float64\(time.Second\)\) from float64 to time.Duration`
	return a, b, c, d, e
}

// Checks that leave a gap are not enough.
func halfChecked(x float64) (int, int, int, int) {
	var a, b, c, d int
	if x < 100 {
		a = int(x) // want `conversion int\(x\)`
	}
	if x >= 0 && x < 1e19 {
		b = int(x) // want `conversion int\(x\)`
	}
	// x < 0 is false for NaN, so NaN reaches the conversion.
	if x < 0 || x > 100 {
		return a, b, c, d
	}
	c = int(x) // want `conversion int\(x\)`
	y := x * 2
	if y >= 0 && y < 10 {
		d = int(x) // want `conversion int\(x\)`
	}
	return a, b, c, d
}

func checked(x float64, f float32) (int, int, uint8, int64, int, int, int) {
	var a, b, c, d, e, g, h int64
	if x >= 0 && x < 100 {
		a = int64(int(x))
	}
	if 0 <= x && 100 > x {
		b = int64(x)
	}
	if f > -1 && f < 256 {
		c = int64(uint8(f))
	}
	if x >= -9.2e18 && x <= 9.2e18 {
		d = int64(x)
	}
	if x == 3 {
		e = int64(x)
	}
	if !math.IsNaN(x) && x > -10 && x < 10 {
		g = int64(x)
	}
	if x != x || x < -10 || x > 10 {
		return int(a), int(b), uint8(c), d, int(e), int(g), int(h)
	}
	h = int64(x)
	return int(a), int(b), uint8(c), d, int(e), int(g), int(h)
}

// cell clamps the way a model does it (client/island's crossrun model).
func cell(coordinate float64) int {
	c := math.Floor(coordinate / 16)
	if !(c >= 0) { // also NaN
		return 0
	}
	if c >= 8 {
		return 7
	}
	return int(c)
}

func constants() (int, int64) {
	const k = 2.5e9
	var v float64 = 1e3
	return int(k), int64(v)
}

func outOfRangeConstant() int32 {
	var v float64 = 3e9
	return int32(v) // want `conversion int32\(v\) from float64 to int32`
}

func generic[F ~float32 | ~float64](x F) int {
	return int(x) // want `conversion int\(x\) from F to int`
}

func allowed(x float64) int {
	return int(x) //metronome:allow x is a grid index below 64, checked by the caller
}

const cells = 64

// The forms docs/sdk.md shows.
func documented(x float64) (int, int, int) {
	var a, b, c int
	if !(x >= 0 && x < cells) { // false for NaN too
		a = 0
	} else {
		a = int(x)
	}
	if math.IsNaN(x) || x < 0 || x >= 64 {
		return a, b, c
	}
	b = int(x)
	return a, b, c
}

func leaksNaN(x float64) int {
	if x < 0 || x >= 64 {
		return 0
	}
	return int(x) // want `conversion int\(x\)`
}
