package kernel

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

func TestInt8RequantEdges(t *testing.T) {
	for _, c := range []struct {
		acc        int32
		m          float32
		zp, lo, hi int32
		want       uint8
		why        string
	}{
		{0, 0.5, 0, 0, 255, 0, "zero"},
		{5, 0.5, 0, 0, 255, 2, "2.5 ties to even: 2"},
		{7, 0.5, 0, 0, 255, 4, "3.5 ties to even: 4"},
		{3, 0.5, 0, 0, 255, 2, "1.5 ties to even: 2"},
		{-3, 0.5, 0, 0, 255, 0, "negative (negative bias) clamps at ReLU's zero"},
		{-3, 0.5, 10, 0, 255, 8, "−1.5 ties to even (−2), then zero point 10"},
		{1 << 30, 1, 0, 0, 255, 255, "saturates high without overflow"},
		{math.MinInt32, 1, 0, 0, 255, 0, "saturates low without overflow"},
		{math.MaxInt32, 1e30, 3, 0, 255, 255, "huge product saturates"},
		{100, 1, 128, 0, 255, 228, "zero point added after rounding"},
		{-200, 1, 128, 0, 255, 0, "zero point then low saturation"},
		{-100, 1, 128, 128, 255, 128, "fused ReLU with zero point clamps at the zero point"},
		{300, 1, 0, 0, 6, 6, "custom range (ReLU6-like)"},
		{16777217, 1, 0, 0, 255, 255, "above 2^24: float conversion rounds, still saturates"},
	} {
		want := c.want
		if got := ref.Requant(c.acc, c.m, c.zp, c.lo, c.hi); got != want {
			t.Errorf("%s: Requant(%d, %v, zp %d, [%d,%d]) = %d, want %d", c.why, c.acc, c.m, c.zp, c.lo, c.hi, got, want)
		}
	}
}

// TestInt8RequantRounding checks ref.Requant against an independent
// float64 computation of round-half-even on values where float32 is exact.
func TestInt8RequantRounding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		acc := int32(r.IntN(1<<20)) - 1<<19
		m := float32(math.Ldexp(1, -r.IntN(12))) // a power of two: the product is exact
		zp := int32(r.IntN(256))
		v := float64(acc) * float64(m)
		rounded := math.Floor(v)
		if d := v - rounded; d > 0.5 || (d == 0.5 && math.Mod(rounded, 2) != 0) {
			rounded++
		}
		// The zero point is added after rounding (ties go to even before it).
		want := uint8(max(0, min(255, rounded+float64(zp))))
		if got := ref.Requant(acc, m, zp, 0, 255); got != want {
			t.Fatalf("Requant(%d, %v, %d) = %d, want %d", acc, m, zp, got, want)
		}
	}
}

func randQConv(r *rand.Rand, s QConvShape) ([]uint8, []int8, []int32, []float32) {
	x := make([]uint8, s.H*s.W*s.Cin)
	for i := range x {
		x[i] = uint8(r.IntN(256))
	}
	w := make([]int8, s.Cout*(s.Cin/s.Groups)*s.K*s.KW)
	for i := range w {
		w[i] = int8(r.IntN(256) - 128) // −128 included: the full int8 range
	}
	b := make([]int32, s.Cout)
	m := make([]float32, s.Cout)
	for i := range b {
		b[i] = int32(r.IntN(200001)) - 100000
		m[i] = float32(r.Float64()*2e-3 + 1e-5)
	}
	return x, w, b, m
}

func qshape(h, w, cin, cout, k, stride, groups int, xz, yz int32) QConvShape {
	pad := k / 2
	oh, ow := (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	return QConvShape{H: h, W: w, Cin: cin, Cout: cout, K: k, KW: k, Stride: stride, Pad: pad, PadW: pad, Dilation: 1,
		Groups: groups, OutH: oh, OutW: ow, XZero: xz, YZero: yz, Lo: yz, Hi: 255}
}

// TestInt8ConvOp runs every kernel path against ref.QConv, bit for bit,
// on MobileOne's layer shapes (the built-in model at 28×28, S0 at 224),
// tails (pixels not a multiple of 4, channels not a multiple of 16, odd
// input channels) and zero points, with guard bands around the output.
func TestInt8ConvOp(t *testing.T) {
	shapes := []struct {
		name string
		s    QConvShape
	}{
		{"stem 1→48 3x3 s1 zp", qshape(28, 28, 1, 48, 3, 1, 1, 77, 0)},
		{"S0 stem 3→48 s2", qshape(33, 31, 3, 48, 3, 2, 1, 0, 0)},
		{"dw 48 s2", qshape(28, 28, 48, 48, 3, 2, 48, 0, 0)},
		{"dw 48 s1", qshape(14, 14, 48, 48, 3, 1, 48, 0, 0)},
		{"dw 128 s2 7x7", qshape(7, 7, 128, 128, 3, 2, 128, 0, 0)},
		{"dw 19 s1 zp", qshape(5, 6, 19, 19, 3, 1, 19, 3, 5)},
		{"dw 32 s1 zp 3x3 (kernel path)", qshape(6, 9, 32, 32, 3, 1, 32, 200, 7)},
		{"dw 32 5x5 s2", qshape(11, 13, 32, 32, 5, 2, 32, 0, 0)},
		{"dw 16 3x3 s1 on 1x1 (no interior)", qshape(1, 1, 16, 16, 3, 1, 16, 0, 0)},
		{"dw 1024 s1 2x2", qshape(2, 2, 1024, 1024, 3, 1, 1024, 0, 0)},
		{"dw 64 s1 17x9 zp (many border patches)", qshape(17, 9, 64, 64, 3, 1, 64, 131, 2)},
		{"dw 16 1x1 kernel zp", qshape(5, 4, 16, 16, 1, 1, 16, 9, 0)},
		{"dw 32 dilation 2 zp", func() QConvShape {
			s := qshape(9, 10, 32, 32, 3, 1, 32, 17, 3)
			s.Dilation, s.Pad, s.PadW = 2, 2, 2
			return s
		}()},
		{"pw 48→128 7x7", qshape(7, 7, 48, 128, 1, 1, 1, 0, 0)},
		{"pw 128→128 7x7", qshape(7, 7, 128, 128, 1, 1, 1, 0, 0)},
		{"pw 256→1024 2x2", qshape(2, 2, 256, 1024, 1, 1, 1, 0, 0)},
		{"pw 48→48 14x14", qshape(14, 14, 48, 48, 1, 1, 1, 0, 0)},
		{"pw odd 13→21 3x5 zp", qshape(3, 5, 13, 21, 1, 1, 1, 9, 4)},
		{"pw 1→1 1x1", qshape(1, 1, 1, 1, 1, 1, 1, 0, 0)},
		{"pw 16→40 40x41 zp", qshape(40, 41, 16, 40, 1, 1, 1, 7, 1)},
		{"pw 256→48 13x13", qshape(13, 13, 256, 48, 1, 1, 1, 0, 0)},
		{"pw 33→16 3x11 (widening tails)", qshape(3, 11, 33, 16, 1, 1, 1, 0, 0)},
		{"pw 1024 acc large", qshape(1, 3, 1024, 16, 1, 1, 1, 255, 0)},
		{"grouped 8→12 g4 3x3", qshape(6, 7, 8, 12, 3, 1, 4, 0, 0)},
		{"dense 5x5 s2", qshape(9, 8, 4, 6, 5, 2, 1, 1, 0)},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range shapes {
		t.Run(c.name, func(t *testing.T) {
			s := c.s
			x, w, b, m := randQConv(r, s)
			want := make([]uint8, s.OutH*s.OutW*s.Cout)
			ref.QConv(s, x, w, b, m, want)
			op, err := NewQConvOp(s, w, b, m)
			if err != nil {
				t.Fatal(err)
			}
			const guard = 64
			got := make([]uint8, len(want)+2*guard)
			for i := range got {
				got[i] = 0xA5
			}
			sc := NewQScratch(op.ScratchC())
			// Two row ranges, so row splitting is tested too.
			mid := s.OutH / 2
			op.Run(x, got[guard:guard+len(want)], 0, mid, sc)
			op.Run(x, got[guard:guard+len(want)], mid, s.OutH, sc)
			for i := range guard {
				if got[i] != 0xA5 || got[guard+len(want)+i] != 0xA5 {
					t.Fatalf("%s path wrote outside its output", op.Kind)
				}
			}
			saturated := 0
			for i, v := range want {
				if got[guard+i] != v {
					t.Fatalf("%s path: output %d = %d, want %d", op.Kind, i, got[guard+i], v)
				}
				if v == 255 || v == uint8(s.Lo) {
					saturated++
				}
			}
			if saturated == len(want) && len(want) > 4 {
				t.Errorf("every output saturated: the test checks nothing")
			}
		})
	}
}

func TestInt8ConvOpRejects(t *testing.T) {
	s := qshape(4, 4, 8, 8, 1, 1, 1, 0, 0)
	w, b, m := make([]int8, 64), make([]int32, 8), make([]float32, 8)
	for i := range m {
		m[i] = 1
	}
	bad := []struct {
		name string
		f    func() error
	}{
		{"short weights", func() error { _, err := NewQConvOp(s, w[:10], b, m); return err }},
		{"zero multiplier", func() error {
			m2 := append([]float32(nil), m...)
			m2[3] = 0
			_, err := NewQConvOp(s, w, b, m2)
			return err
		}},
		{"NaN multiplier", func() error {
			m2 := append([]float32(nil), m...)
			m2[0] = float32(math.NaN())
			_, err := NewQConvOp(s, w, b, m2)
			return err
		}},
		{"zero point out of range", func() error { s2 := s; s2.XZero = 300; _, err := NewQConvOp(s2, w, b, m); return err }},
		{"groups", func() error { s2 := s; s2.Groups = 3; _, err := NewQConvOp(s2, w, b, m); return err }},
	}
	for _, c := range bad {
		if err := c.f(); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// TestInt8PointwiseTwins runs every assembly micro-kernel against its
// pure-Go twin, bit for bit, on input-channel pair counts from 1 to past
// MobileOne's widest (S4: 2048 channels), extreme operands (255 × −128
// everywhere: the largest accumulators), ties in the requantisation and
// zero points, with guard bands around the output tile.
func TestInt8PointwiseTwins(t *testing.T) {
	if len(q8pwAsm) == 0 {
		t.Skip("no assembly int8 kernels on this machine")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for name, kern := range q8pwAsm {
		for i, kp := range []int{1, 2, 3, 7, 24, 64, 257, 1024} {
			nb := 1 + i%3 // 1 to 3 blocks per call
			for _, mode := range []string{"random", "extreme", "ties"} {
				x16 := make([]int16, pwRows*2*kp)
				w16 := make([]int16, nb*kp*pwCols*2)
				bias := make([]int32, nb*pwCols)
				mult := make([]float32, nb*pwCols)
				for i := range x16 {
					x16[i] = int16(r.IntN(256))
				}
				for i := range w16 {
					w16[i] = int16(r.IntN(256) - 128)
				}
				for j := range bias {
					bias[j] = int32(r.IntN(1<<20)) - 1<<19
					mult[j] = float32(math.Ldexp(1+r.Float64(), -r.IntN(20)))
				}
				zlh := [4]int32{int32(r.IntN(40)), 0, 255, 0}
				zlh[1] = zlh[0] // fused ReLU: clamp at the zero point
				switch mode {
				case "extreme":
					for i := range x16 {
						x16[i] = 255
					}
					for i := range w16 {
						w16[i] = -128
					}
					if r.IntN(2) == 0 {
						for i := range w16 {
							w16[i] = 127
						}
					}
				case "ties":
					for j := range mult {
						mult[j] = 0.5 // every odd accumulator is a tie
					}
					zlh = [4]int32{3, 0, 255, 0}
				}
				const guard = 32
				ldo := nb*pwCols + 5
				want := make([]uint8, guard*2+pwRows*ldo)
				got := make([]uint8, len(want))
				for i := range want {
					want[i], got[i] = 0x5A, 0x5A
				}
				q8pwGo(x16, kp, nb, w16, bias, mult, want[guard:], ldo, &zlh)
				kern(x16, kp, nb, w16, bias, mult, got[guard:], ldo, &zlh)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s kp %d nb %d %s: byte %d = %d, want %d", name, kp, nb, mode, i-guard, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestInt8RequantFast: the kernels' fast rounding equals ref.Requant on
// every tie and on a dense sweep of accumulators and multipliers.
func TestInt8RequantFast(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	check := func(acc int32, m float32, zp, lo, hi int32) {
		want := ref.Requant(acc, m, zp, lo, hi)
		got := uint8(requantFast(acc, m, float32(lo-zp), float32(hi-zp)) + zp)
		if got != want {
			t.Fatalf("requantFast(%d, %v, zp %d, [%d, %d]) = %d, want %d", acc, m, zp, lo, hi, got, want)
		}
	}
	for acc := int32(-1000); acc <= 1000; acc++ {
		for _, m := range []float32{0.5, 0.25, 0.125, 1, 0.3, 0.7} {
			check(acc, m, 0, 0, 255)
			check(acc, m, 17, 0, 255)
			check(acc, m, 17, 17, 255)
		}
	}
	for range 200000 {
		zp := int32(r.IntN(256))
		check(int32(r.Uint32()), float32(math.Ldexp(r.Float64()+0.5, -r.IntN(30))), zp, int32(r.IntN(int(zp)+1)), 255)
	}
}

// TestInt8DepthwiseTwins runs every assembly depthwise kernel against its
// pure-Go twin, bit for bit: odd and even tap counts, zero points, runs of
// pixels with a stride, extreme operands.
func TestInt8DepthwiseTwins(t *testing.T) {
	if len(q8dwAsm) == 0 {
		t.Skip("no assembly int8 kernels on this machine")
	}
	r := rand.New(rand.NewPCG(13, 14))
	for name, kern := range q8dwAsm {
		for _, taps := range []int{1, 2, 9, 25} {
			for _, extreme := range []bool{false, true} {
				np := (taps + 1) / 2
				const c, n, xstep = 48, 5, 96 // stride 2 over 48 channels
				offs := make([]int, 2*np)
				for k := range taps {
					offs[k] = (k%5)*c + (k/5)*c*20
				}
				x := make([]uint8, n*xstep+offs[taps-1]+c+64)
				for i := range x {
					x[i] = uint8(r.IntN(256))
					if extreme {
						x[i] = 255
					}
				}
				w := make([]int16, np*32)
				for i := range w {
					if i/32*2+(i%2) < taps { // weight of tap 2k+e
						w[i] = int16(r.IntN(256) - 128)
						if extreme {
							w[i] = -128
						}
					}
				}
				bias := make([]int32, 16)
				mult := make([]float32, 16)
				for j := range bias {
					bias[j] = int32(r.IntN(20001)) - 10000
					mult[j] = float32(math.Ldexp(1+r.Float64(), -8-r.IntN(6)))
				}
				zlh := [4]int32{5, 5, 255, int32(r.IntN(256))}
				const guard = 16
				want := make([]uint8, guard*2+n*c)
				got := make([]uint8, len(want))
				for i := range want {
					want[i], got[i] = 0x3C, 0x3C
				}
				q8dwGo(x, offs, n, xstep, w, bias, mult, want[guard:], c, &zlh)
				kern(x, offs, n, xstep, w, bias, mult, got[guard:], c, &zlh)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s taps %d extreme %v: byte %d = %d, want %d", name, taps, extreme, i-guard, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestInt8WidenTwins: q8widenAVX2 against widenU8 on every length from 0
// to past a few 16-byte steps, all byte values, with guard bands.
func TestInt8WidenTwins(t *testing.T) {
	if len(q8widenAsm) == 0 {
		t.Skip("no assembly int8 kernels on this machine")
	}
	for name, widen := range q8widenAsm {
		for n := range 70 {
			src := make([]uint8, n)
			for i := range src {
				src[i] = uint8(251*i + n)
			}
			const guard = 16
			want := make([]int16, n+2*guard)
			got := make([]int16, n+2*guard)
			for i := range want {
				want[i], got[i] = -7, -7
			}
			widenU8(want[guard:guard+n], src)
			widen(got[guard:guard+n], src)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s n %d: element %d = %d, want %d", name, n, i-guard, got[i], want[i])
				}
			}
		}
	}
}
