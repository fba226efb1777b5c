package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// nearestBF16 is an independent reference of the rounding: of the two
// bfloat16 values around x (its bits with the low half cleared, and the
// next one up in magnitude), the nearer in float64, ties to the one with
// an even last bit; a NaN keeps its sign and high payload and gets the
// quiet bit.
func nearestBF16(x float32) uint32 {
	u := math.Float32bits(x)
	if x != x {
		return u&0xffff0000 | 0x00400000
	}
	lo := u & 0xffff0000
	if lo == u {
		return u
	}
	hi := lo + 0x10000 // next magnitude (may be ±Inf: 0x7f80 follows 0x7f7f)
	dl := math.Abs(float64(x) - float64(math.Float32frombits(lo)))
	var dh float64
	if hi&0x7fffffff == 0x7f800000 {
		// Inf: the distance to the value that would follow the largest
		// finite bfloat16, 2^128, as IEEE rounding measures it.
		dh = math.Abs(math.Abs(float64(x))-math.Ldexp(1, 128)) * 1
	} else {
		dh = math.Abs(float64(x) - float64(math.Float32frombits(hi)))
	}
	switch {
	case dl < dh:
		return lo
	case dh < dl:
		return hi
	case lo>>16&1 == 0:
		return lo
	}
	return hi
}

var bf16Specials = []uint32{
	0, 0x80000000, // ±0
	0x00000001, 0x00008000, 0x00018000, 0x0000ffff, 0x807fffff, // subnormals, ties
	0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f80ffff, // 1 and ties around it
	0xbf808000, 0xbf818000, 0xbf7fffff,
	0x7f7f7fff, 0x7f7f8000, 0x7f7fffff, 0xff7fffff, // near the largest: to ±Inf
	0x7f800000, 0xff800000, // ±Inf
	0x7f800001, 0x7fc00000, 0xffffffff, 0x7f80ffff, 0xff810000, // NaNs
}

// TestActBF16Round checks each level's rounding against the independent
// reference and the Go twin, bit for bit, on special values and random
// bit patterns, in regions with gaps that must stay untouched.
func TestActBF16Round(t *testing.T) {
	r := rand.New(rand.NewSource(16))
	vals := make([]float32, 0, 4096)
	for _, u := range bf16Specials {
		vals = append(vals, math.Float32frombits(u))
	}
	for len(vals) < cap(vals) {
		vals = append(vals, math.Float32frombits(r.Uint32()))
	}
	for _, u := range bf16Specials {
		if got, want := math.Float32bits(bf16Float(bf16(math.Float32frombits(u)))), nearestBF16(math.Float32frombits(u)); got != want {
			t.Errorf("bf16(%#08x) = %#08x, reference %#08x", u, got, want)
		}
	}
	for _, l := range actKernels.levels() {
		im := actKernels.at(l)
		for _, rows := range []int{1, 2, 5} {
			for _, cols := range []int{1, 7, 8, 9, 16, 31, 33, 100} {
				for _, gap := range []int{0, 3, 16} {
					ld := cols + gap
					n := (rows-1)*ld + cols
					x := make([]float32, n)
					for i := range x {
						x[i] = vals[(i*7+rows+cols)%len(vals)]
					}
					orig := append([]float32(nil), x...)
					im.region(ActBF16, x, rows, cols, ld)
					for i, v := range x {
						want := nearestBF16(orig[i])
						if i%ld >= cols {
							want = math.Float32bits(orig[i])
						}
						if math.Float32bits(v) != want {
							t.Fatalf("%v rows%d cols%d ld%d: [%d] %#08x → %#08x, want %#08x", l, rows, cols, ld, i, math.Float32bits(orig[i]), math.Float32bits(v), want)
						}
					}
				}
			}
		}
	}
}

// TestActBF16Composite checks that a|ActBF16 is a, then the rounding, in
// every level, for every activation, through region, Activate and AddAct.
func TestActBF16Composite(t *testing.T) {
	r := rand.New(rand.NewSource(17))
	n := 3000
	for _, l := range actKernels.levels() {
		restore := actKernels.set(l)
		im := actKernels.at(l)
		for _, a := range allActs {
			x := make([]float32, n)
			z := make([]float32, n)
			for i := range x {
				x[i], z[i] = float32(r.NormFloat64()*4), float32(r.NormFloat64())
			}
			want := append([]float32(nil), x...)
			im.region(a, want, 1, n, n)
			for i, v := range want {
				want[i] = math.Float32frombits(nearestBF16(v))
			}
			name := fmt.Sprintf("%v %v", l, a|ActBF16)
			got := append([]float32(nil), x...)
			im.region(a|ActBF16, got, 3, n/3, n/3)
			same(t, name+" region", got, want)
			got = append(got[:0], x...)
			Activate(a|ActBF16, got)
			same(t, name+" Activate", got, want)
			// AddAct: a(x + 0) rounded.
			zero := make([]float32, n)
			y := make([]float32, n)
			AddAct(a|ActBF16, x, zero, y)
			same(t, name+" AddAct", y, want)
		}
		restore()
	}
	if s := (ActReLU | ActBF16).String(); s != "relu+bf16" {
		t.Errorf("String %q", s)
	}
	if relu, post := splitAct(ActReLU | ActBF16); !relu || post != ActBF16 {
		t.Errorf("splitAct(relu+bf16) = %v, %v", relu, post)
	}
}

func same(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] = %v, want %v", name, i, got[i], want[i])
		}
	}
}

// TestConvOpsBF16 checks that the convolution ops that fuse an activation
// store a|ActBF16 as a's output rounded: pointwise, depthwise and NCHW.
func TestConvOpsBF16(t *testing.T) {
	r := rand.New(rand.NewSource(18))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	round := func(v []float32) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = math.Float32frombits(nearestBF16(x))
		}
		return out
	}
	for _, a := range []Activation{ActNone, ActReLU, ActHardSwish} {
		// pointwise, blocked
		cin, cout, hw := 40, 24, 37
		w, b := rnd(cout*cin), rnd(cout)
		x := make([]float32, BlockedLen(cin, hw))
		ToBlocked(cin, hw, rnd(cin*hw), x)
		want := make([]float32, BlockedLen(cout, hw))
		got := make([]float32, len(want))
		NewPointwiseOpAct(cin, cout, w, b, a).Run(x, hw, want)
		NewPointwiseOpAct(cin, cout, w, b, a|ActBF16).Run(x, hw, got)
		same(t, fmt.Sprintf("pointwise %v", a), got, round(want))
		// depthwise, blocked
		c := Conv{InC: 20, InH: 9, InW: 11, OutC: 20, K: 3, Stride: 2, Pad: 1, Groups: 20}
		w, b = rnd(c.InC*9), rnd(c.InC)
		x = make([]float32, BlockedLen(c.InC, c.InH*c.InW))
		ToBlocked(c.InC, c.InH*c.InW, rnd(c.InC*c.InH*c.InW), x)
		want = make([]float32, BlockedLen(c.OutC, c.OutH()*c.OutW()))
		got = make([]float32, len(want))
		NewDepthwiseOpAct(c, w, b, a).Run(x, want)
		NewDepthwiseOpAct(c, w, b, a|ActBF16).Run(x, got)
		same(t, fmt.Sprintf("depthwise %v", a), got, round(want))
		// dense NCHW
		c = Conv{InC: 6, InH: 10, InW: 9, OutC: 10, K: 3, Stride: 1, Pad: 1, Groups: 1}
		w, b = rnd(c.OutC*c.InC*9), rnd(c.OutC)
		x = rnd(c.InC * c.InH * c.InW)
		want = make([]float32, c.OutC*c.OutH()*c.OutW())
		got = make([]float32, len(want))
		NewConvOpAct(c, w, b, a).Run(x, want)
		NewConvOpAct(c, w, b, a|ActBF16).Run(x, got)
		same(t, fmt.Sprintf("conv %v", a), got, round(want))
	}
}
