// Package floats holds the platform-dependent floating-point findings.
package floats

import "math"

type Meters float64

func transcendental(x, y float64) float64 {
	a := math.Sin(x)               // want `math.Sin: its result may differ in the last bit between amd64, arm64 and wasm .* use dmath.Sin from github.com/metronome-sync/metronome/dmath`
	b := math.Pow(x, y)            // want `math.Pow: its result may differ`
	c := math.Exp(x) + math.Log(y) // want `math.Exp: its result` `math.Log: its result`
	d := math.Atan2(y, x)          // want `math.Atan2`
	f := math.Tanh                 // want `math.Tanh`
	// Exact operations are correctly rounded on every target.
	e := math.Sqrt(x) + math.Floor(y) + math.Mod(x, y) + math.Abs(x) + math.FMA(x, y, 1) + math.Pi
	return a + b + c + d + e + f(x)
}

func multiplyAdd(x, y, z float64, m Meters, w float32) (float64, Meters, float32) {
	r := x*y + z             // want `floating-point multiply-add x \* y \+ z: the compiler may fuse it into one FMA instruction on arm64 .*; write float64\(x \* y\) \+ z to round the product first, or math.FMA`
	r = z - (x * y)          // want `floating-point multiply-add z - \(x \* y\).*write z - float64\(x \* y\)`
	r += x * y               // want `floating-point multiply-add r \+= x \* y.*write r \+= float64\(x \* y\)`
	m = m*m + m              // want `write Meters\(m \* m\) \+ m`
	w -= w * 2               // want `floating-point multiply-add w -= w \* 2`
	r = x*y + z*x            // want `write float64\(x \* y\) \+ float64\(z \* x\)`
	r = x*y*z + float64(z*z) // want `write float64\(x \* y \* z\) \+ float64\(z \* z\)`
	// Rounded products, plain sums and products, integers and constants.
	r = float64(x*y) + z
	r += float64(x * y)
	r = (x + y) * z
	n := 3*4 + 5
	const k = 1.5*2 + 1
	i, j := 3, 4
	i += i*j + n
	return r + k, m, w // want `floating-point multiply-add r \+ k: r holds the unrounded product \(x \+ y\) \* z \(line 30\)`
}

func notInDmath(x float64) float64 {
	return math.Cbrt(x) // want `math.Cbrt: .* github.com/metronome-sync/metronome/dmath has no Cbrt yet`
}
