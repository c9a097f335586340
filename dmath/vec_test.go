package dmath

import (
	"math"
	"testing"
)

func TestVec2(t *testing.T) {
	v, w := Vec2{3, 4}, Vec2{-1, 2}
	if got := v.Add(w); got != (Vec2{2, 6}) {
		t.Errorf("Add = %v", got)
	}
	if got := v.Sub(w); got != (Vec2{4, 2}) {
		t.Errorf("Sub = %v", got)
	}
	if got := v.Scale(0.5); got != (Vec2{1.5, 2}) {
		t.Errorf("Scale = %v", got)
	}
	if got := v.Dot(w); got != 5 {
		t.Errorf("Dot = %v", got)
	}
	if got := v.Cross(w); got != 10 {
		t.Errorf("Cross = %v", got)
	}
	if got := v.Length(); got != 5 {
		t.Errorf("Length = %v", got)
	}
	if got := v.Normalize(); got != (Vec2{0.6, 0.8}) {
		t.Errorf("Normalize = %v", got)
	}
	if got := (Vec2{}).Normalize(); got != (Vec2{}) {
		t.Errorf("zero Normalize = %v", got)
	}
	if v.Lerp(w, 0) != v || v.Lerp(w, 1) != w || v.Lerp(w, 0.5) != (Vec2{1, 3}) {
		t.Errorf("Lerp endpoints or midpoint wrong: %v %v %v", v.Lerp(w, 0), v.Lerp(w, 1), v.Lerp(w, 0.5))
	}
}

func TestVec3(t *testing.T) {
	v, w := Vec3{1, 2, 2}, Vec3{0, 1, 0}
	if got := v.Add(w); got != (Vec3{1, 3, 2}) {
		t.Errorf("Add = %v", got)
	}
	if got := v.Sub(w); got != (Vec3{1, 1, 2}) {
		t.Errorf("Sub = %v", got)
	}
	if got := v.Scale(2); got != (Vec3{2, 4, 4}) {
		t.Errorf("Scale = %v", got)
	}
	if got := v.Dot(w); got != 2 {
		t.Errorf("Dot = %v", got)
	}
	if got := v.Cross(w); got != (Vec3{-2, 0, 1}) {
		t.Errorf("Cross = %v", got)
	}
	if got := v.Length(); got != 3 {
		t.Errorf("Length = %v", got)
	}
	if got := v.Normalize(); got != (Vec3{1.0 / 3, 2.0 / 3, 2.0 / 3}) {
		t.Errorf("Normalize = %v", got)
	}
	if got := (Vec3{}).Normalize(); got != (Vec3{}) {
		t.Errorf("zero Normalize = %v", got)
	}
	if v.Lerp(w, 0) != v || v.Lerp(w, 1) != w {
		t.Errorf("Lerp endpoints wrong: %v %v", v.Lerp(w, 0), v.Lerp(w, 1))
	}
}

func TestCanonicalizeAndHash(t *testing.T) {
	nans := []float64{math.NaN(), math.Float64frombits(0xFFF8000000000000), math.Float64frombits(0x7FF0000000000001)}
	for _, nan := range nans {
		if got := math.Float64bits(Canonicalize(nan)); got != CanonicalNaNBits {
			t.Errorf("Canonicalize(%#x) = %#x", math.Float64bits(nan), got)
		}
		if Hash(1, nan) != Hash(1, CanonicalNaN()) {
			t.Errorf("Hash distinguishes NaN %#x", math.Float64bits(nan))
		}
	}
	if got := Canonicalize(math.Copysign(0, -1)); !Signbit(got) {
		t.Error("Canonicalize(-0) lost the sign")
	}
	if Hash(0) == Hash(math.Copysign(0, -1)) || Hash(1, 2) == Hash(2, 1) {
		t.Error("Hash should tell -0 from +0 and depend on order")
	}
	// FNV-1a of eight zero bytes: a fixed value, the same on every target.
	if got := Hash(0); got != 0xa8c7f832281a39c5 {
		t.Errorf("Hash(0) = %#x", got)
	}
}
