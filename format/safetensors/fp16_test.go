package safetensors

import (
	"math"
	"testing"
)

// TestFloat16RoundTripAll converts every binary16 value to float32 and back.
func TestFloat16RoundTripAll(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := Float16ToFloat32(h)
		if back := Float32ToFloat16(f); back != h {
			t.Fatalf("%#04x -> %g (%#08x) -> %#04x", h, f, math.Float32bits(f), back)
		}
		// Cross-check the value against a float64 computation.
		exp, mant := int(h>>10&0x1f), float64(h&0x3ff)
		var want float64
		switch exp {
		case 0:
			want = mant * math.Pow(2, -24)
		case 0x1f:
			want = math.Inf(1)
			if mant != 0 {
				want = math.NaN()
			}
		default:
			want = (1 + mant/1024) * math.Pow(2, float64(exp-15))
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if math.IsNaN(want) != math.IsNaN(float64(f)) || !math.IsNaN(want) && float64(f) != want {
			t.Fatalf("%#04x: got %g, want %g", h, f, want)
		}
		if !math.IsNaN(want) && math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("%#04x: sign lost", h)
		}
	}
}

func TestFloat32ToFloat16Edges(t *testing.T) {
	p := func(e int) float32 { return float32(math.Ldexp(1, e)) }
	cases := []struct {
		f    float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},                       // largest finite
		{65519.99, 0x7bff},                    // just below the halfway point
		{65520, 0x7c00},                       // halfway to 2^16: ties to even = inf
		{1e6, 0x7c00},                         // overflow
		{-1e6, 0xfc00},                        // overflow, negative
		{float32(math.Inf(1)), 0x7c00},        // inf
		{float32(math.Inf(-1)), 0xfc00},       // -inf
		{p(-14), 0x0400},                      // smallest normal
		{p(-24), 0x0001},                      // smallest subnormal
		{p(-25), 0x0000},                      // half of it: ties to even = 0
		{-p(-25), 0x8000},                     // keeps the sign
		{math.Nextafter32(p(-25), 1), 0x0001}, // just above half rounds up
		{3 * p(-25), 0x0002},                  // 1.5 units: ties to even = 2
		{5 * p(-25), 0x0002},                  // 2.5 units: ties to even = 2
		{1023.5 * p(-24), 0x0400},             // between largest subnormal and smallest normal
		{1022.5 * p(-24), 0x03fe},             // tie, even
		{p(-26), 0x0000},
		{math.SmallestNonzeroFloat32, 0x0000}, // float32 subnormal
		{1 + p(-11), 0x3c00},                  // tie between 1 and 1+2^-10: even
		{1 + 3*p(-11), 0x3c02},                // tie between 1+2^-10 and 1+2^-9: even
		{math.Nextafter32(1+p(-11), 2), 0x3c01},
		{2047.0 / 1024 * 1.0001, 0x3fff},
		{0.1, 0x2e66},
		{float32(1.0 / 3), 0x3555},
		{math.Float32frombits(0x7fc00000), 0x7e00}, // quiet NaN
		{math.Float32frombits(0xffc00000), 0xfe00}, // negative NaN
		{math.Float32frombits(0x7f800001), 0x7c01}, // payload only in dropped bits: still NaN
		{math.Float32frombits(0x7fa00000), 0x7d00}, // signalling NaN payload kept
	}
	for _, c := range cases {
		if got := Float32ToFloat16(c.f); got != c.want {
			t.Errorf("Float32ToFloat16(%g = %#08x) = %#04x, want %#04x", c.f, math.Float32bits(c.f), got, c.want)
		}
	}
}

// TestFloat32ToFloat16Nearest checks, over a sweep of float32 bit patterns,
// that the result is the nearest binary16 value with ties to even.
func TestFloat32ToFloat16Nearest(t *testing.T) {
	step := uint32(257)
	if testing.Short() {
		step = 65537
	}
	for b := uint64(0); b < 1<<32; b += uint64(step) {
		f := math.Float32frombits(uint32(b))
		if f != f {
			continue
		}
		h := Float32ToFloat16(f)
		x := math.Abs(float64(f))
		got := math.Abs(float64(Float16ToFloat32(h)))
		if math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("%g: sign lost (%#04x)", f, h)
		}
		if math.IsInf(x, 0) {
			if h&0x7fff != 0x7c00 {
				t.Fatalf("%g -> %#04x", f, h)
			}
			continue
		}
		m := h & 0x7fff
		// Neighbours of the result; 65536 stands in for rounding to inf.
		val := func(m uint16) float64 {
			if m >= 0x7c00 {
				return 65536
			}
			return float64(Float16ToFloat32(m))
		}
		if m >= 0x7c00 {
			got = 65536
		}
		if d := math.Abs(x - got); m > 0 && math.Abs(x-val(m-1)) < d || m < 0x7c00 && math.Abs(x-val(m+1)) < d {
			t.Fatalf("%g (%#08x) -> %#04x = %g is not nearest", f, uint32(b), h, got)
		}
		if m > 0 && math.Abs(x-val(m-1)) == math.Abs(x-got) && m&1 == 1 ||
			m < 0x7c00 && math.Abs(x-val(m+1)) == math.Abs(x-got) && m&1 == 1 {
			t.Fatalf("%g (%#08x) -> %#04x: tie not broken to even", f, uint32(b), h)
		}
	}
}

func TestBFloat16(t *testing.T) {
	if got := bfloat16ToFloat32(0x3f80); got != 1 {
		t.Fatalf("got %g", got)
	}
	if got := bfloat16ToFloat32(0xc0a0); got != -5 {
		t.Fatalf("got %g", got)
	}
}
