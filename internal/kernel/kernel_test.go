package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// threadConfig is one way of running the kernels: a thread count and the
// work threshold below which they stay serial (0 forces the parallel code
// paths even on tiny problems).
type threadConfig struct {
	threads, minWork int
}

var threadConfigs = []threadConfig{{1, 1 << 16}, {2, 1 << 16}, {2, 0}, {3, 0}, {8, 0}}

func withThreads(t testing.TB, tc threadConfig, fn func()) {
	t.Helper()
	oldT, oldW := int(threads.Load()), minParallelWork
	SetThreads(tc.threads)
	minParallelWork = tc.minWork
	defer func() {
		SetThreads(oldT)
		minParallelWork = oldW
	}()
	fn()
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func absSlice(s []float32) []float32 {
	if s == nil {
		return nil
	}
	a := make([]float32, len(s))
	for i, v := range s {
		a[i] = float32(math.Abs(float64(v)))
	}
	return a
}

const guard = 37 // guard band length on each side of an output

// guarded returns a buffer of n+2·guard NaNs and the n-element window in it.
func guarded(n int) (buf, win []float32) {
	buf = make([]float32, n+2*guard)
	nan := float32(math.NaN())
	for i := range buf {
		buf[i] = nan
	}
	return buf, buf[guard : guard+n : guard+n]
}

// checkGuard fails if anything outside the window was written.
func checkGuard(t *testing.T, buf []float32, n int) {
	t.Helper()
	for i, v := range buf {
		if (i < guard || i >= guard+n) && v == v {
			t.Fatalf("guard band written at offset %d (window %d..%d): %v", i, guard, guard+n, v)
		}
	}
}

// compare checks got against want with a tolerance scaled by mag, the value
// of the same computation on absolute values (Σ|terms|).
func compare(t *testing.T, got, want, mag []float32) {
	t.Helper()
	bad := 0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		tol := 1e-5 * (1 + float64(mag[i]))
		if !(math.Abs(g-w) <= tol) { // also catches NaN
			if bad < 5 {
				t.Errorf("element %d: got %v, want %v (tol %g)", i, g, w, tol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d elements wrong", bad, len(want))
	}
}

type convCase struct {
	name       string
	c          Conv
	bias, relu bool
}

func (cc convCase) String() string {
	c := cc.c
	return fmt.Sprintf("%s/in%dx%dx%d_out%d_k%d_s%d_p%d_g%d_b%v_r%v",
		cc.name, c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, cc.bias, cc.relu)
}

// realConvCases are MobileOne-S0 layer shapes at 224×224.
func realConvCases() []convCase {
	pw := func(ci, co, hw int) Conv { return Conv{ci, hw, hw, co, 1, 1, 0, 1} }
	dw := func(ch, hw, s int) Conv { return Conv{ch, hw, hw, ch, 3, s, 1, ch} }
	return []convCase{
		{"stem", Conv{3, 224, 224, 48, 3, 2, 1, 1}, true, true},
		{"dw48_112_s2", dw(48, 112, 2), true, true},
		{"dw64_56_s1", dw(64, 56, 1), true, false},
		{"dw128_28_s2", dw(128, 28, 2), true, true},
		{"dw1024_7", dw(1024, 7, 1), true, true},
		{"pw48x64_56", pw(48, 64, 56), true, true},
		{"pw128x128_28", pw(128, 128, 28), true, true},
		{"pw256x1024_7", pw(256, 1024, 7), false, true},
	}
}

// smallConvCases cover odd sizes, every dispatch path and tile edges.
func smallConvCases() []convCase {
	type cfg struct{ inC, outC, k, s, p, g int }
	cfgs := []cfg{
		{3, 5, 1, 1, 0, 1},  // pointwise GEMM
		{8, 12, 1, 1, 0, 2}, // grouped pointwise
		{8, 8, 3, 1, 1, 8},  // depthwise 3×3 s1
		{8, 8, 3, 2, 1, 8},  // depthwise 3×3 s2
		{5, 5, 3, 1, 0, 5},  // depthwise 3×3 pad 0
		{5, 5, 3, 2, 0, 5},  // depthwise 3×3 s2 pad 0
		{4, 4, 1, 1, 0, 4},  // depthwise 1×1
		{6, 6, 1, 2, 0, 6},  // depthwise 1×1 s2
		{3, 3, 5, 1, 2, 3},  // depthwise 5×5
		{4, 6, 3, 1, 1, 1},  // dense 3×3
		{3, 8, 3, 2, 1, 1},  // stem-like
		{8, 8, 3, 2, 1, 2},  // grouped 3×3
		{4, 8, 3, 1, 1, 4},  // channel multiplier 2
		{5, 7, 1, 2, 0, 1},  // strided 1×1
		{5, 7, 1, 1, 1, 1},  // 1×1 with pad
		{4, 9, 3, 1, 0, 1},  // 3×3 pad 0
		{3, 4, 5, 2, 2, 1},  // 5×5
		{2, 3, 2, 2, 0, 1},  // even kernel
		{1, 1, 1, 1, 0, 1},  // scalar
		{1, 1, 3, 1, 1, 1},  // single channel, goes through GEMM
	}
	sizes := [][2]int{{1, 1}, {2, 2}, {3, 3}, {5, 5}, {7, 7}, {13, 13}, {57, 57}, {2, 7}, {13, 5}}
	var cases []convCase
	i := 0
	for _, f := range cfgs {
		for _, hw := range sizes {
			c := Conv{f.inC, hw[0], hw[1], f.outC, f.k, f.s, f.p, f.g}
			if c.OutH() <= 0 || c.OutW() <= 0 {
				continue
			}
			cases = append(cases, convCase{"small", c, i%2 == 0, i%3 != 0})
			i++
		}
	}
	// Tile edges of the GEMM: m, n, k below / at / above mr, nr, mcMax,
	// ncMax, kcMax.
	cases = append(cases,
		convCase{"edge", Conv{16, 16, 16, 64, 1, 1, 0, 1}, true, true},   // m = mcMax, n = ncMax
		convCase{"edge", Conv{17, 17, 17, 65, 1, 1, 0, 1}, true, false},  // just above
		convCase{"edge", Conv{520, 3, 5, 9, 1, 1, 0, 1}, false, true},    // k > 2·kcMax
		convCase{"edge", Conv{30, 9, 9, 70, 3, 1, 1, 1}, true, true},     // im2col, k = 270 > kcMax
		convCase{"edge", Conv{64, 20, 20, 64, 3, 2, 1, 64}, true, false}, // depthwise, many channels
		convCase{"edge", Conv{24, 15, 15, 36, 3, 1, 1, 3}, false, false}, // grouped im2col
	)
	return cases
}

func runConvCase(t *testing.T, cc convCase, seed int64, configs []threadConfig) {
	c := cc.c
	r := rand.New(rand.NewSource(seed))
	x := randSlice(r, c.InC*c.InH*c.InW)
	w := randSlice(r, c.OutC*(c.InC/c.Groups)*c.K*c.K)
	var bias []float32
	if cc.bias {
		bias = randSlice(r, c.OutC)
	}
	n := c.OutC * c.OutH() * c.OutW()
	want := make([]float32, n)
	mag := make([]float32, n)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, x, w, bias, want, cc.relu)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, absSlice(x), absSlice(w), absSlice(bias), mag, false)
	for _, tc := range configs {
		buf, got := guarded(n)
		withThreads(t, tc, func() { Conv2D(c, x, w, bias, got, cc.relu) })
		checkGuard(t, buf, n)
		compare(t, got, want, mag)
	}
}

func TestConv2D(t *testing.T) {
	for i, cc := range smallConvCases() {
		t.Run(cc.String(), func(t *testing.T) { runConvCase(t, cc, int64(i), threadConfigs) })
	}
	if testing.Short() {
		return
	}
	configs := threadConfigs
	if raceEnabled {
		configs = []threadConfig{{1, 1 << 16}, {2, 1 << 16}}
	}
	for i, cc := range realConvCases() {
		t.Run(cc.String(), func(t *testing.T) { runConvCase(t, cc, int64(1000+i), configs) })
	}
}

func TestGemm(t *testing.T) {
	type shape struct{ m, n, k int }
	var shapes []shape
	dims := []int{1, 3, 4, 5, 8, 9, 17}
	for _, m := range dims {
		for _, n := range dims {
			for _, k := range dims {
				shapes = append(shapes, shape{m, n, k})
			}
		}
	}
	shapes = append(shapes,
		shape{0, 5, 3}, shape{4, 0, 3}, shape{4, 5, 0}, shape{3, 9, 0},
		shape{64, 256, 256}, shape{65, 257, 257}, shape{63, 255, 255},
		shape{130, 300, 513}, shape{1, 1000, 1}, shape{1, 100, 700},
		shape{300, 7, 600}, shape{128, 196, 256}, shape{1000, 1, 64},
		shape{24, 1100, 40}, shape{13, 2100, 300}, // several groups of packed B panels per tile, with tails
	)
	for i, s := range shapes {
		for _, acc := range []bool{false, true} {
			name := fmt.Sprintf("m%d_n%d_k%d_acc%v", s.m, s.n, s.k, acc)
			t.Run(name, func(t *testing.T) {
				r := rand.New(rand.NewSource(int64(i)))
				a := randSlice(r, s.m*s.k)
				b := randSlice(r, s.k*s.n)
				c0 := randSlice(r, s.m*s.n)
				want := append([]float32(nil), c0...)
				ref.Gemm(s.m, s.n, s.k, a, b, want, acc)
				mag := absSlice(c0)
				ref.Gemm(s.m, s.n, s.k, absSlice(a), absSlice(b), mag, acc)
				// Gemm, GemmTN with aᵀ (k×m) and GemmNT with bᵀ (n×k) give
				// the same product.
				at := make([]float32, len(a))
				for i := 0; i < s.m; i++ {
					for p := 0; p < s.k; p++ {
						at[p*s.m+i] = a[i*s.k+p]
					}
				}
				bt := make([]float32, len(b))
				for p := 0; p < s.k; p++ {
					for j := 0; j < s.n; j++ {
						bt[j*s.k+p] = b[p*s.n+j]
					}
				}
				for _, mul := range []func(c []float32){
					func(c []float32) { Gemm(s.m, s.n, s.k, a, b, c, acc) },
					func(c []float32) { GemmTN(s.m, s.n, s.k, at, b, c, acc) },
					func(c []float32) { GemmNT(s.m, s.n, s.k, a, bt, c, acc) },
				} {
					for _, tc := range threadConfigs {
						buf, got := guarded(s.m * s.n)
						copy(got, c0)
						withThreads(t, tc, func() { mul(got) })
						checkGuard(t, buf, s.m*s.n)
						compare(t, got, want, mag)
					}
				}
			})
		}
	}
}

func TestGlobalAvgPool(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, s := range [][2]int{{1, 1}, {3, 7}, {1024, 49}, {5, 3136}} {
		c, hw := s[0], s[1]
		x := randSlice(r, c*hw)
		want, mag := make([]float32, c), make([]float32, c)
		for i := 0; i < c; i++ {
			var sum, abs float64
			for _, v := range x[i*hw : (i+1)*hw] {
				sum += float64(v)
				abs += math.Abs(float64(v))
			}
			want[i], mag[i] = float32(sum/float64(hw)), float32(abs/float64(hw))
		}
		buf, got := guarded(c)
		GlobalAvgPool(c, hw, x, got)
		checkGuard(t, buf, c)
		compare(t, got, want, mag)
	}
}

func TestLinear(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, s := range [][2]int{{1, 1}, {3, 5}, {1024, 1000}, {17, 3}} {
		in, out := s[0], s[1]
		x, w, bias := randSlice(r, in), randSlice(r, in*out), randSlice(r, out)
		// y = W·x + b is a GEMM of W (out×in) with x (in×1).
		want, mag := append([]float32(nil), bias...), absSlice(bias)
		ref.Gemm(out, 1, in, w, x, want, true)
		ref.Gemm(out, 1, in, absSlice(w), absSlice(x), mag, true)
		for _, tc := range threadConfigs {
			for _, withBias := range []bool{true, false} {
				buf, got := guarded(out)
				b := bias
				wnt := want
				if !withBias {
					b = nil
					wnt = make([]float32, out)
					ref.Gemm(out, 1, in, w, x, wnt, false)
				}
				withThreads(t, tc, func() { Linear(in, out, x, w, b, got) })
				checkGuard(t, buf, out)
				compare(t, got, wnt, mag)
			}
		}
	}
}

func TestSetThreads(t *testing.T) {
	old := int(threads.Load())
	defer SetThreads(old)
	SetThreads(3)
	if Threads() != 3 {
		t.Fatalf("Threads() = %d, want 3", Threads())
	}
	SetThreads(0)
	if Threads() < 1 {
		t.Fatalf("Threads() = %d after reset", Threads())
	}
}

// TestNoAllocs checks that steady-state calls do not allocate (apart from
// the goroutines of a parallel run, so this runs on one thread).
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	withThreads(t, threadConfig{1, 1 << 16}, func() {
		r := rand.New(rand.NewSource(3))
		for _, c := range []Conv{
			{64, 28, 28, 64, 1, 1, 0, 1},
			{3, 32, 32, 16, 3, 2, 1, 1},
			{32, 14, 14, 32, 3, 1, 1, 32},
		} {
			x := randSlice(r, c.InC*c.InH*c.InW)
			w := randSlice(r, c.OutC*(c.InC/c.Groups)*c.K*c.K)
			b := randSlice(r, c.OutC)
			out := make([]float32, c.OutC*c.OutH()*c.OutW())
			Conv2D(c, x, w, b, out, true)
			if n := testing.AllocsPerRun(10, func() { Conv2D(c, x, w, b, out, true) }); n > 0 {
				t.Errorf("%+v: %v allocations per call", c, n)
			}
		}
	})
}
