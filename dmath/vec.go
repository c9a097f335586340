package dmath

// Vec2 and Vec3 are small value types for positions, velocities and
// directions in replicated models. Every method wraps each product that
// feeds an addition in float64(...), so results are bit-identical on every
// target; see the package documentation for why.

// Vec2 is a 2D vector.
type Vec2 struct{ X, Y float64 }

// Add returns v + w.
func (v Vec2) Add(w Vec2) Vec2 { return Vec2{v.X + w.X, v.Y + w.Y} }

// Sub returns v - w.
func (v Vec2) Sub(w Vec2) Vec2 { return Vec2{v.X - w.X, v.Y - w.Y} }

// Scale returns s × v.
func (v Vec2) Scale(s float64) Vec2 { return Vec2{float64(v.X * s), float64(v.Y * s)} }

// Dot returns the dot product v·w, evaluated as (v.X×w.X) + (v.Y×w.Y) with
// each product rounded.
func (v Vec2) Dot(w Vec2) float64 { return float64(v.X*w.X) + float64(v.Y*w.Y) }

// Cross returns the z component of the 3D cross product, v.X×w.Y - v.Y×w.X:
// positive when w is counterclockwise from v.
func (v Vec2) Cross(w Vec2) float64 { return float64(v.X*w.Y) - float64(v.Y*w.X) }

// Length returns |v| = Sqrt(v·v). It overflows to +Inf for components
// above about 1e154; use Hypot(v.X, v.Y) if such values can occur.
func (v Vec2) Length() float64 { return Sqrt(v.Dot(v)) }

// Normalize returns v / |v|, a unit vector in v's direction. The zero
// vector is returned unchanged (there is no direction to keep).
func (v Vec2) Normalize() Vec2 {
	length := v.Length()
	if length == 0 {
		return v
	}
	return Vec2{v.X / length, v.Y / length}
}

// Lerp returns the linear interpolation (1-t)×v + t×w: exactly v at t = 0
// and exactly w at t = 1.
func (v Vec2) Lerp(w Vec2, t float64) Vec2 {
	return Vec2{Lerp(v.X, w.X, t), Lerp(v.Y, w.Y, t)}
}

// Vec3 is a 3D vector.
type Vec3 struct{ X, Y, Z float64 }

// Add returns v + w.
func (v Vec3) Add(w Vec3) Vec3 { return Vec3{v.X + w.X, v.Y + w.Y, v.Z + w.Z} }

// Sub returns v - w.
func (v Vec3) Sub(w Vec3) Vec3 { return Vec3{v.X - w.X, v.Y - w.Y, v.Z - w.Z} }

// Scale returns s × v.
func (v Vec3) Scale(s float64) Vec3 {
	return Vec3{float64(v.X * s), float64(v.Y * s), float64(v.Z * s)}
}

// Dot returns the dot product v·w, evaluated left to right as
// ((v.X×w.X) + (v.Y×w.Y)) + (v.Z×w.Z) with each product rounded.
func (v Vec3) Dot(w Vec3) float64 {
	return float64(v.X*w.X) + float64(v.Y*w.Y) + float64(v.Z*w.Z)
}

// Cross returns the cross product v × w.
func (v Vec3) Cross(w Vec3) Vec3 {
	return Vec3{
		float64(v.Y*w.Z) - float64(v.Z*w.Y),
		float64(v.Z*w.X) - float64(v.X*w.Z),
		float64(v.X*w.Y) - float64(v.Y*w.X),
	}
}

// Length returns |v| = Sqrt(v·v). It overflows to +Inf for components
// above about 1e154.
func (v Vec3) Length() float64 { return Sqrt(v.Dot(v)) }

// Normalize returns v / |v|, a unit vector in v's direction. The zero
// vector is returned unchanged.
func (v Vec3) Normalize() Vec3 {
	length := v.Length()
	if length == 0 {
		return v
	}
	return Vec3{v.X / length, v.Y / length, v.Z / length}
}

// Lerp returns the linear interpolation (1-t)×v + t×w: exactly v at t = 0
// and exactly w at t = 1.
func (v Vec3) Lerp(w Vec3, t float64) Vec3 {
	return Vec3{Lerp(v.X, w.X, t), Lerp(v.Y, w.Y, t), Lerp(v.Z, w.Z, t)}
}

// Lerp returns the linear interpolation (1-t)×a + t×b: exactly a at t = 0
// and exactly b at t = 1 (for finite a and b).
func Lerp(a, b, t float64) float64 {
	return float64((1-t)*a) + float64(t*b)
}
