package dmath_test

import (
	"fmt"

	"github.com/metronome-sync/metronome/dmath"
)

// Sin and friends print the same digits on every target, down to the
// last bit; %x shows the exact value.
func ExampleSin() {
	x := dmath.Sin(1)
	fmt.Println(x)
	fmt.Printf("%x\n", x)
	// Huge arguments are reduced with 4/π to 192 bits. The exact sine
	// of 1e22 is -0.85220084976718880177..., so this is 1 ulp from the
	// correctly rounded value: dmath promises sameness first, and
	// accuracy as good as Go's own math package.
	fmt.Println(dmath.Sin(1e22))
	// Output:
	// 0.8414709848078965
	// 0x1.aed548f090ceep-01
	// -0.8522008497671889
}

// A model step with the vector type: every product inside the methods is
// rounded explicitly, so replicas agree bit for bit.
func ExampleVec2() {
	type ball struct{ position, velocity dmath.Vec2 }
	b := ball{velocity: dmath.Vec2{X: 3, Y: 4}}
	gravity := dmath.Vec2{X: 0, Y: -9.81}
	const dt = 1.0 / 60
	for range 60 {
		b.velocity = b.velocity.Add(gravity.Scale(dt))
		b.position = b.position.Add(b.velocity.Scale(dt))
	}
	fmt.Printf("position %.6f, speed %.6f, heading %.6f rad\n",
		b.position, b.velocity.Length(), dmath.Atan2(b.velocity.Y, b.velocity.X))
	// Output:
	// position {3.000000 -0.986750}, speed 6.538815, heading -1.094154 rad
}

// Hash canonicalizes NaNs first: NaNs from different hardware hash alike,
// while +0 and -0 (which a model can tell apart) do not.
func ExampleHash() {
	zero := 0.0
	amd64NaN := -(zero / zero) // an amd64-style NaN (sign bit set), whatever this target makes of 0/0
	fmt.Println(dmath.Hash(1, amd64NaN) == dmath.Hash(1, dmath.CanonicalNaN()))
	fmt.Println(dmath.Hash(zero) == dmath.Hash(-zero))
	// Output:
	// true
	// false
}

// Floor, Ceil, Trunc and Round keep the sign of zero; Min and Max order
// -0 below +0 and return the canonical NaN if either argument is NaN.
func ExampleRound() {
	fmt.Println(dmath.Round(2.5), dmath.Round(-2.5), dmath.Round(-0.4), dmath.Floor(-0.5), dmath.Ceil(-0.5))
	fmt.Println(dmath.Min(0, dmath.Copysign(0, -1)), dmath.Max(1, dmath.CanonicalNaN()))
	// Output:
	// 3 -3 -0 -1 -0
	// -0 NaN
}
