// Package fusion holds multiply-adds whose product reaches the addition
// through a local variable or an inlinable helper. The cases follow what gc
// 1.26 fuses into FMADDD on arm64 (go build -gcflags=-S): every reported
// function fuses, every silent one does not.
package fusion

type Meters float64

func local(a, b, c float64) float64 {
	p := a * b
	return p + c // want `floating-point multiply-add p \+ c: p holds the unrounded product a \* b \(line 10\), and the compiler may fuse them into one FMA instruction, across statements and inlined calls, on arm64 .*; round the product where it is computed, float64\(a \* b\), or where it is added, float64\(p\)`
}

func copied(a, b, c float64) float64 {
	p := a * b
	q := p
	return c - q // want `multiply-add c - q: q holds the unrounded product a \* b`
}

func acrossBlocks(a, b, c float64, k bool) float64 {
	p := a * b
	if k {
		return p + c // want `multiply-add p \+ c: p holds`
	}
	return c
}

func assignOperators(a, b, c float64) (float64, float64) {
	p := a * b
	r := c
	r += p // want `multiply-add r \+= p: p holds`
	p -= c // want `multiply-add p -= c: p holds`
	return r, p
}

func increment(a, b float64) float64 {
	p := a * b
	p++ // want `multiply-add p\+\+: p holds`
	return p
}

func named(a, b Meters, c Meters) Meters {
	p := a * b
	return p + c // want `round the product where it is computed, Meters\(a \* b\), or where it is added, Meters\(p\)`
}

func narrow(a, b, c float32) float32 {
	p := a * b
	return p + c // want `float32\(a \* b\)`
}

func mul(a, b float64) float64 { return a * b }

func negated(a, b float64) float64 { return -(a * b) }

func square(x float64) float64 {
	s := x * x
	return s
}

func viaHelper(x float64) float64 { return mul(x, x) }

func (m Meters) Area(n Meters) Meters { return m * n }

func generic[T ~float32 | ~float64](a, b T) T { return a * b }

func helpers(a, b, c float64, m Meters) (float64, float64, float64, float64, Meters, float64) {
	r1 := mul(a, b) + c // want `multiply-add mul\(a, b\) \+ c through an inlined call: mul\(a, b\) returns the unrounded product a \* b of mul \(line 52\), and the compiler may fuse them into one FMA instruction, across statements and inlined calls, on arm64 .*; round the product in mul, return float64\(a \* b\), or where it is added, float64\(mul\(a, b\)\)`
	r2 := c - square(a) // want `square\(a\) returns the unrounded product x \* x of square`
	p := mul(b, c)
	r3 := p + a             // want `p holds mul\(b, c\), which returns the unrounded product a \* b of mul`
	r4 := viaHelper(a) + c  // want `viaHelper\(a\) returns the unrounded product a \* b of mul \(line 52\).*round the product in mul`
	r5 := m.Area(m) + m     // want `m.Area\(m\) returns the unrounded product m \* n of Area`
	r6 := generic(c, a) + b // want `generic\(c, a\) returns the unrounded product a \* b of generic`
	return r1, r2, r3, r4, r5, r6
}

func negations(a, b, c float64) (float64, float64, float64) {
	r1 := -(a * b) + c // want `multiply-add -\(a \* b\) \+ c: -\(a \* b\) negates the unrounded product a \* b`
	p := b * c
	r2 := a - (-p)          // want `multiply-add a - \(-p\): -p negates the unrounded product b \* c`
	r3 := negated(c, a) + b // want `negated\(c, a\) returns the unrounded product a \* b of negated`
	return r1, r2, r3
}

func genericMultiplyAdd[T ~float32 | ~float64](a, b, c T) (T, T) {
	p := a * b
	return a*b + c, p - c // want `multiply-add a \* b \+ c: .*write T\(a \* b\) \+ c` `multiply-add p - c: p holds the unrounded product a \* b .*round the product where it is computed, T\(a \* b\)`
}

func instantiate(a, b, c float64) (float64, float64) { return genericMultiplyAdd(a, b, c) }

// The forms below are not fused by the compiler, so they stay silent.

func rounded(a, b, c float64) (float64, float64, float64, float64) {
	p := float64(a * b)
	r1 := p + c
	q := a * b
	r2 := float64(q) + c
	s := a * b
	t := float64(s)
	r3 := t + c
	u := a * b
	var v float32 = float32(u)
	r4 := float64(v) + c
	return r1, r2, r3, r4
}

func phi(a, b, c float64, k bool) float64 {
	p := a * b
	if k {
		p = c * c
	}
	return p + c
}

func integers(a, b, c int) int {
	p := a * b
	return p + c
}

func sumOfSums(a, b, c float64) float64 {
	p := a + b
	return p + c
}

func mulRounded(a, b float64) float64 { return float64(a * b) }

func callRounded(a, b float64) float64 { return float64(mul(a, b)) }

//go:noinline
func mulNoinline(a, b float64) float64 { return a * b }

func twoReturns(a, b float64, k bool) float64 {
	if k {
		return a * b
	}
	return b
}

func recursive(a float64, n int) float64 {
	if n == 0 {
		return a * a
	}
	return recursive(a, n-1)
}

// large is over the inlining budget: the compiler calls it.
func large(a, b float64) float64 {
	x := a + b + a + b + a + b + a + b + a + b + a + b + a + b + a + b
	y := a - b - a - b - a - b - a - b - a - b - a - b - a - b - a - b
	z := x + y + x + y + x + y + x + y + x + y + x + y + x + y + x + y
	return z * z
}

func notInlined(a, b, c float64, k bool) (float64, float64, float64, float64, float64, float64) {
	r1 := mulRounded(a, b) + c
	r2 := mulNoinline(a, b) + c
	r3 := twoReturns(a, b, k) + c
	r4 := float64(mul(a, b)) + c
	r5 := large(a, b) + c
	r6 := recursive(a, 3) + c
	r7 := callRounded(b, c) + a
	r8 := -float64(a*c) + b
	return r1 + r7 + r8, r2, r3, r4, r5, r6
}

// The syntactic form is reported once, by the check that offers a fix.
func direct(a, b, c float64) float64 {
	return a*b + c // want `floating-point multiply-add a \* b \+ c: the compiler may fuse`
}
