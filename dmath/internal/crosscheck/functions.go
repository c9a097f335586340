package main

import (
	"math"

	"github.com/metronome-sync/metronome/dmath"
)

// unaryFunction adapts a one-argument function to an evaluator.
func unaryFunction(f func(float64) float64) evaluator {
	return func(a, r []float64) []float64 { return append(r, f(a[0])) }
}

// binaryFunction adapts a two-argument function to an evaluator.
func binaryFunction(f func(float64, float64) float64) evaluator {
	return func(a, r []float64) []float64 { return append(r, f(a[0], a[1])) }
}

func within(low, high float64) func(*generator) float64 {
	return func(g *generator) float64 { return g.uniform(low, high) }
}

func scales(minExponent, maxExponent int) func(*generator) float64 {
	return func(g *generator) float64 { return g.magnitude(minExponent, maxExponent) }
}

func mathMin(x, y float64) float64 { return min(x, y) }
func mathMax(x, y float64) float64 { return max(x, y) }

// functions lists everything crosscheck hashes, in output order.
var functions = []function{
	{name: "Sqrt", arity: 1, input: scales(-1074, 1023), dmath: unaryFunction(dmath.Sqrt), math: unaryFunction(math.Sqrt)},
	{name: "Sin", arity: 1, input: within(-100, 100), dmath: unaryFunction(dmath.Sin), math: unaryFunction(math.Sin)},
	{name: "Cos", arity: 1, input: within(-100, 100), dmath: unaryFunction(dmath.Cos), math: unaryFunction(math.Cos)},
	{name: "Tan", arity: 1, input: within(-100, 100), dmath: unaryFunction(dmath.Tan), math: unaryFunction(math.Tan)},
	{name: "Atan", arity: 1, input: within(-10, 10), dmath: unaryFunction(dmath.Atan), math: unaryFunction(math.Atan)},
	{name: "Atan2", arity: 2, input: within(-10, 10), dmath: binaryFunction(dmath.Atan2), math: binaryFunction(math.Atan2)},
	{name: "Asin", arity: 1, input: within(-1, 1), dmath: unaryFunction(dmath.Asin), math: unaryFunction(math.Asin)},
	{name: "Acos", arity: 1, input: within(-1, 1), dmath: unaryFunction(dmath.Acos), math: unaryFunction(math.Acos)},
	{name: "Exp", arity: 1, input: within(-750, 712), dmath: unaryFunction(dmath.Exp), math: unaryFunction(math.Exp)},
	{name: "Log", arity: 1, input: scales(-1074, 1023), dmath: unaryFunction(dmath.Log), math: unaryFunction(math.Log)},
	{name: "Pow", arity: 2, input: within(-20, 20), dmath: binaryFunction(dmath.Pow), math: binaryFunction(math.Pow)},
	{name: "Hypot", arity: 2, input: within(-1e3, 1e3), dmath: binaryFunction(dmath.Hypot), math: binaryFunction(math.Hypot)},
	{name: "Floor", arity: 1, input: within(-1e6, 1e6), dmath: unaryFunction(dmath.Floor), math: unaryFunction(math.Floor)},
	{name: "Ceil", arity: 1, input: within(-1e6, 1e6), dmath: unaryFunction(dmath.Ceil), math: unaryFunction(math.Ceil)},
	{name: "Round", arity: 1, input: within(-1e6, 1e6), dmath: unaryFunction(dmath.Round), math: unaryFunction(math.Round)},
	{name: "Trunc", arity: 1, input: within(-1e6, 1e6), dmath: unaryFunction(dmath.Trunc), math: unaryFunction(math.Trunc)},
	{name: "Abs", arity: 1, input: within(-1e6, 1e6), dmath: unaryFunction(dmath.Abs), math: unaryFunction(math.Abs)},
	{name: "Min", arity: 2, input: within(-10, 10), dmath: binaryFunction(dmath.Min), math: binaryFunction(mathMin)},
	{name: "Max", arity: 2, input: within(-10, 10), dmath: binaryFunction(dmath.Max), math: binaryFunction(mathMax)},
	{name: "Mod", arity: 2, input: within(-1e3, 1e3), dmath: binaryFunction(dmath.Mod), math: binaryFunction(math.Mod)},
	{name: "Tanh", arity: 1, input: within(-30, 30), dmath: unaryFunction(dmath.Tanh), math: unaryFunction(math.Tanh)},
	{name: "Canonicalize", arity: 1, input: scales(-1074, 1023), dmath: unaryFunction(dmath.Canonicalize)},
	{name: "Lerp", arity: 3, input: within(-10, 10), canonicalize: true, dmath: func(a, r []float64) []float64 {
		return append(r, dmath.Lerp(a[0], a[1], a[2]))
	}, math: func(a, r []float64) []float64 {
		return append(r, (1-a[2])*a[0]+a[2]*a[1]) // fusable
	}},
	{name: "Vec2.Add/Sub/Scale", arity: 5, input: within(-1e3, 1e3), canonicalize: true, dmath: func(a, r []float64) []float64 {
		v, w := dmath.Vec2{X: a[0], Y: a[1]}, dmath.Vec2{X: a[2], Y: a[3]}
		sum, difference, scaled := v.Add(w), v.Sub(w), v.Scale(a[4])
		return append(r, sum.X, sum.Y, difference.X, difference.Y, scaled.X, scaled.Y)
	}},
	{name: "Vec2.Dot/Cross/Length", arity: 4, input: within(-1e3, 1e3), canonicalize: true, dmath: func(a, r []float64) []float64 {
		v, w := dmath.Vec2{X: a[0], Y: a[1]}, dmath.Vec2{X: a[2], Y: a[3]}
		return append(r, v.Dot(w), v.Cross(w), v.Length())
	}, math: func(a, r []float64) []float64 {
		return append(r, a[0]*a[2]+a[1]*a[3], a[0]*a[3]-a[1]*a[2], math.Sqrt(a[0]*a[0]+a[1]*a[1])) // fusable
	}},
	{name: "Vec2.Normalize/Lerp", arity: 5, input: within(-1e3, 1e3), canonicalize: true, dmath: func(a, r []float64) []float64 {
		v, w := dmath.Vec2{X: a[0], Y: a[1]}, dmath.Vec2{X: a[2], Y: a[3]}
		unit, between := v.Normalize(), v.Lerp(w, a[4])
		return append(r, unit.X, unit.Y, between.X, between.Y)
	}},
	{name: "Vec3.Add/Sub/Scale", arity: 7, input: within(-1e3, 1e3), canonicalize: true, dmath: func(a, r []float64) []float64 {
		v, w := dmath.Vec3{X: a[0], Y: a[1], Z: a[2]}, dmath.Vec3{X: a[3], Y: a[4], Z: a[5]}
		sum, difference, scaled := v.Add(w), v.Sub(w), v.Scale(a[6])
		return append(r, sum.X, sum.Y, sum.Z, difference.X, difference.Y, difference.Z, scaled.X, scaled.Y, scaled.Z)
	}},
	{name: "Vec3.Dot/Cross/Length", arity: 6, input: within(-1e3, 1e3), canonicalize: true, dmath: func(a, r []float64) []float64 {
		v, w := dmath.Vec3{X: a[0], Y: a[1], Z: a[2]}, dmath.Vec3{X: a[3], Y: a[4], Z: a[5]}
		cross := v.Cross(w)
		return append(r, v.Dot(w), cross.X, cross.Y, cross.Z, v.Length())
	}, math: func(a, r []float64) []float64 {
		return append(r, a[0]*a[3]+a[1]*a[4]+a[2]*a[5], // fusable, as naive model code would be
			a[1]*a[5]-a[2]*a[4], a[2]*a[3]-a[0]*a[5], a[0]*a[4]-a[1]*a[3],
			math.Sqrt(a[0]*a[0]+a[1]*a[1]+a[2]*a[2]))
	}},
	{name: "Vec3.Normalize/Lerp", arity: 7, input: within(-1e3, 1e3), canonicalize: true, dmath: func(a, r []float64) []float64 {
		v, w := dmath.Vec3{X: a[0], Y: a[1], Z: a[2]}, dmath.Vec3{X: a[3], Y: a[4], Z: a[5]}
		unit, between := v.Normalize(), v.Lerp(w, a[6])
		return append(r, unit.X, unit.Y, unit.Z, between.X, between.Y, between.Z)
	}},
}
