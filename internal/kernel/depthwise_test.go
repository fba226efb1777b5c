package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// dwShape is a depthwise 3×3 pad-1 layer: ch channels of hw×hw, stride s.
type dwShape struct {
	name      string
	ch, hw, s int
}

func (s dwShape) conv() Conv { return Conv{s.ch, s.hw, s.hw, s.ch, 3, s.s, 1, s.ch} }

// dwRealShapes are the depthwise layers of MobileOne-S0 and -S4 at 224×224.
var dwRealShapes = []dwShape{
	{"s0_dw48_112_s2", 48, 112, 2},
	{"s0_dw48_56", 48, 56, 1},
	{"s0_dw48_56_s2", 48, 56, 2},
	{"s0_dw128_28", 128, 28, 1},
	{"s0_dw128_28_s2", 128, 28, 2},
	{"s0_dw256_14", 256, 14, 1},
	{"s0_dw256_14_s2", 256, 14, 2},
	{"s0_dw1024_7", 1024, 7, 1},
	{"s4_dw64_112", 64, 112, 1},
	{"s4_dw192_56", 192, 56, 1},
	{"s4_dw448_28", 448, 28, 1},
	{"s4_dw896_14", 896, 14, 1},
	{"s4_dw2048_7", 2048, 7, 1},
}

// withDWLevel runs fn with the depthwise kernels forced to level l.
func withDWLevel(l cpu.Level, fn func()) {
	restore := dwKernels.set(l)
	defer restore()
	fn()
}

// guardedRand returns n random values inside a NaN-guarded buffer: a kernel
// reading outside the window (unmasked) turns its output into NaN.
func guardedRand(r *rand.Rand, n int) []float32 {
	_, win := guarded(n)
	for i := range win {
		win[i] = float32(r.NormFloat64())
	}
	return win
}

func TestDWLevels(t *testing.T) {
	ls := dwKernels.levels()
	if len(ls) == 0 || ls[0] != cpu.PureGo {
		t.Fatalf("dwKernels.levels() = %v, want purego first", ls)
	}
	for _, l := range ls {
		if got := dwKernels.best(l).level; got != l {
			t.Errorf("dwKernels.best(%v) = %v", l, got)
		}
	}
	t.Logf("levels %v, active %v, cpu %v", ls, dwKernels.active.level, cpu.Detected)
}

// runDWCase checks Conv2D on one depthwise case at every level and the given
// thread configurations against ref.Conv2D, with NaN guard bands around the
// inputs and the output.
func runDWCase(t *testing.T, c Conv, bias, relu bool, seed int64, configs []threadConfig) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	x := guardedRand(r, c.InC*c.InH*c.InW)
	w := guardedRand(r, c.InC*c.K*c.K)
	var b []float32
	if bias {
		b = guardedRand(r, c.InC)
	}
	n := c.OutC * c.OutH() * c.OutW()
	want, mag := make([]float32, n), make([]float32, n)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, x, w, b, want, relu)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, absSlice(x), absSlice(w), absSlice(b), mag, false)
	for _, l := range dwKernels.levels() {
		for _, tc := range configs {
			buf, got := guarded(n)
			withDWLevel(l, func() {
				withThreads(t, tc, func() { Conv2D(c, x, w, b, got, relu) })
			})
			checkGuard(t, buf, n)
			if t.Failed() {
				return
			}
			compareNamed(t, fmt.Sprintf("%v/t%d", l, tc.threads), got, want, mag)
		}
	}
}

func compareNamed(t *testing.T, name string, got, want, mag []float32) {
	t.Helper()
	bad := 0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		tol := 1e-5 * (1 + float64(mag[i]))
		if !(math.Abs(g-w) <= tol) {
			if bad < 5 {
				t.Errorf("%s: element %d: got %v, want %v (tol %g)", name, i, g, w, tol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d elements wrong", name, bad, len(want))
	}
}

// dwConfigs are the thread configurations of the depthwise tests: serial, and
// two threads with the parallel path forced even on tiny problems.
var dwConfigs = []threadConfig{{1, 1 << 16}, {2, 0}}

// TestDepthwiseSizes covers every combination of odd and tail sizes.
func TestDepthwiseSizes(t *testing.T) {
	sizes := []int{1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 57, 112}
	i := 0
	for _, s := range []int{1, 2} {
		for _, h := range sizes {
			for _, wd := range sizes {
				if testing.Short() && h > 17 && wd > 17 {
					continue
				}
				bias, relu := i%2 == 0, i%3 != 1
				c := Conv{3, h, wd, 3, 3, s, 1, 3}
				t.Run(fmt.Sprintf("s%d_%dx%d_b%v_r%v", s, h, wd, bias, relu), func(t *testing.T) {
					runDWCase(t, c, bias, relu, int64(i), dwConfigs)
				})
				i++
			}
		}
	}
}

// TestDepthwiseKernelSizes covers kernels other than 3×3 (the tap-by-tap
// row paths): 5×5 and 7×7, strides 1, 2 and 3, paddings from 0 to K/2,
// odd and tiny maps.
func TestDepthwiseKernelSizes(t *testing.T) {
	i := 0
	for _, k := range []int{5, 7, 1} {
		for _, s := range []int{1, 2, 3} {
			for _, pad := range []int{0, k / 2} {
				for _, hw := range [][2]int{{1, 1}, {2, 9}, {7, 7}, {13, 12}, {28, 31}} {
					if hw[0]+2*pad < k || hw[1]+2*pad < k {
						continue
					}
					c := Conv{5, hw[0], hw[1], 5, k, s, pad, 5}
					bias, relu := i%2 == 0, i%3 != 1
					t.Run(fmt.Sprintf("k%d_s%d_p%d_%dx%d", k, s, pad, hw[0], hw[1]), func(t *testing.T) {
						runDWCase(t, c, bias, relu, int64(i), dwConfigs)
					})
					i++
				}
			}
		}
	}
}

// TestDepthwiseFlags covers bias × ReLU on a shape with every vector kind
// (first, unmasked, tail) at both widths.
func TestDepthwiseFlags(t *testing.T) {
	for i, hw := range [][2]int{{9, 50}, {6, 7}, {11, 40}, {4, 3}} {
		for _, s := range []int{1, 2} {
			for _, bias := range []bool{false, true} {
				for _, relu := range []bool{false, true} {
					c := Conv{5, hw[0], hw[1], 5, 3, s, 1, 5}
					t.Run(fmt.Sprintf("s%d_%dx%d_b%v_r%v", s, hw[0], hw[1], bias, relu), func(t *testing.T) {
						runDWCase(t, c, bias, relu, int64(100+i), dwConfigs)
					})
				}
			}
		}
	}
}

// TestDepthwiseReal runs the real MobileOne layer shapes.
func TestDepthwiseReal(t *testing.T) {
	if testing.Short() {
		t.Skip("real shapes are slow against the reference")
	}
	for i, s := range dwRealShapes {
		t.Run(s.name, func(t *testing.T) {
			runDWCase(t, s.conv(), true, i%4 != 3, int64(200+i), dwConfigs)
		})
	}
}

// TestDepthwiseKernels calls every kernel directly on a channel range in
// the middle of a buffer: nothing outside the range may be written.
func TestDepthwiseKernels(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for _, l := range dwKernels.levels() {
		d := dwKernels.at(l)
		for _, k := range []struct {
			name   string
			s      int
			narrow bool
		}{{"s1", 1, false}, {"s2", 2, false}, {"s1n", 1, true}, {"s2n", 2, true}} {
			for _, hw := range [][2]int{{7, 7}, {5, 8}, {14, 14}, {3, 33}} {
				c := Conv{4, hw[0], hw[1], 4, 3, k.s, 1, 4}
				var kern dwKernel
				if k.narrow {
					kern = map[int]dwKernel{1: d.s1n, 2: d.s2n}[k.s]
				} else {
					kern = map[int]dwKernel{1: d.s1, 2: d.s2}[k.s]
				}
				plane, oplane := c.InH*c.InW, c.OutH()*c.OutW()
				x, w, b := guardedRand(r, 4*plane), guardedRand(r, 36), guardedRand(r, 4)
				want, mag := make([]float32, 4*oplane), make([]float32, 4*oplane)
				ref.Conv2D(4, c.InH, c.InW, 4, 3, k.s, 1, 4, x, w, b, want, true)
				ref.Conv2D(4, c.InH, c.InW, 4, 3, k.s, 1, 4, absSlice(x), absSlice(w), absSlice(b), mag, false)
				buf, got := guarded(4 * oplane)
				for i := range got {
					got[i] = 0
				}
				// Channels 1 and 2 only.
				kern(x[plane:3*plane], w[9:27], b[1:3], got[oplane:3*oplane], 2, c.InH, c.InW, true)
				checkGuard(t, buf, 4*oplane)
				for i, v := range got {
					if (i < oplane || i >= 3*oplane) && v != 0 {
						t.Fatalf("%v/%s %v: wrote outside the channel range at %d", l, k.name, hw, i)
					}
				}
				compareNamed(t, fmt.Sprintf("%v/%s/%v", l, k.name, hw), got[oplane:3*oplane], want[oplane:3*oplane], mag[oplane:3*oplane])
			}
		}
	}
}

// TestDepthwiseNoAllocs checks that steady-state serial calls do not
// allocate at any level.
func TestDepthwiseNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewSource(8))
	for _, l := range dwKernels.levels() {
		for _, s := range []dwShape{{"a", 32, 14, 1}, {"b", 16, 28, 2}, {"c", 64, 7, 1}} {
			c := s.conv()
			buf := newConvBuf(r, c)
			withDWLevel(l, func() {
				withThreads(t, threadConfig{1, 1 << 16}, func() {
					Conv2D(c, buf.x, buf.w, buf.b, buf.out, true)
					if n := testing.AllocsPerRun(20, func() { Conv2D(c, buf.x, buf.w, buf.b, buf.out, true) }); n > 0 {
						t.Errorf("%v %+v: %v allocations per call", l, c, n)
					}
					if n := testing.AllocsPerRun(20, func() { Conv2D(c, buf.x, buf.w, nil, buf.out, false) }); n > 0 {
						t.Errorf("%v %+v no bias: %v allocations per call", l, c, n)
					}
				})
			})
		}
	}
}
