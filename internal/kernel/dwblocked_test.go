package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// withDWBLevel runs fn with new DepthwiseOps using level l (both the 3×3
// pad-1 kernels and the window kernels).
func withDWBLevel(l cpu.Level, fn func()) {
	restore := dwbKernels.set(l)
	defer restore()
	restoreK := dwbkKernels.set(l)
	defer restoreK()
	fn()
}

// dwbConfig is a thread configuration of the blocked depthwise tests;
// minTask overrides dwbMinTaskWork when > 0 (1 forces the finest task grid,
// bands of rows included); workers sets DepthwiseOp.Workers.
type dwbConfig struct {
	threads, minWork, minTask, workers int
}

var dwbConfigs = []dwbConfig{{1, 1 << 16, 0, 0}, {2, 0, 0, 0}, {2, 0, 1, 0}, {2, 0, 1, 1}}

func withDWBConfig(t testing.TB, tc dwbConfig, fn func()) {
	t.Helper()
	old := dwbMinTaskWork
	if tc.minTask > 0 {
		dwbMinTaskWork = tc.minTask
	}
	defer func() { dwbMinTaskWork = old }()
	withThreads(t, threadConfig{tc.threads, tc.minWork}, fn)
}

// guardedBlocked returns the blocked form of the NCHW tensor src (c, hw)
// inside a NaN-guarded buffer.
func guardedBlocked(c, hw int, src []float32) []float32 {
	_, win := guarded(BlockedLen(c, hw))
	ToBlocked(c, hw, src, win)
	return win
}

func TestDWBLevels(t *testing.T) {
	ls := dwbKernels.levels()
	if len(ls) == 0 || ls[0] != cpu.PureGo {
		t.Fatalf("dwbKernels.levels() = %v, want purego first", ls)
	}
	for _, l := range ls {
		if got := dwbKernels.best(l).level; got != l {
			t.Errorf("dwbKernels.best(%v) = %v", l, got)
		}
	}
	if got, want := dwbKernels.active.level, dwbKernels.best(cpu.Selected()).level; got != want {
		t.Errorf("active level %v, want %v", got, want)
	}
	if got, want := dwbkKernels.levels(), ls; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dwbkKernels.levels() = %v, want %v (as the 3×3 kernels)", got, want)
	}
	t.Logf("levels %v, active %v, cpu %v", ls, dwbKernels.active.level, cpu.Detected)
}

func TestDepthwiseBlockedOK(t *testing.T) {
	for _, tc := range []struct {
		c  Conv
		ok bool
	}{
		{Conv{32, 14, 14, 32, 3, 1, 1, 32}, true},
		{Conv{32, 14, 14, 32, 3, 2, 1, 32}, true},
		{Conv{1, 1, 1, 1, 3, 1, 1, 1}, true},
		{Conv{17, 5, 9, 17, 3, 2, 1, 17}, true},
		{Conv{32, 14, 14, 32, 3, 3, 1, 32}, false},
		{Conv{32, 14, 14, 32, 3, 1, 0, 32}, true},
		{Conv{32, 14, 14, 32, 3, 1, 2, 32}, false},
		{Conv{32, 14, 14, 32, 5, 1, 2, 32}, true},
		{Conv{32, 14, 14, 32, 5, 2, 2, 32}, true},
		{Conv{32, 14, 14, 32, 5, 2, 1, 32}, true},
		{Conv{32, 14, 14, 32, 5, 1, 3, 32}, false},
		{Conv{32, 14, 14, 32, 5, 3, 2, 32}, false},
		{Conv{1, 1, 1, 1, 5, 1, 2, 1}, true},
		{Conv{1, 1, 1, 1, 7, 2, 3, 1}, true},
		{Conv{16, 4, 8, 16, 5, 2, 0, 16}, false}, // 4 rows < K
		{Conv{16, 3, 8, 16, 5, 1, 1, 16}, true},
		{Conv{16, 2, 8, 16, 5, 1, 1, 16}, false},
		{Conv{32, 14, 14, 32, 7, 1, 3, 32}, true},
		{Conv{32, 14, 14, 32, 4, 1, 2, 32}, false},
		{Conv{32, 14, 14, 32, 9, 1, 4, 32}, false},
		{Conv{32, 14, 14, 32, 3, 1, 1, 1}, false},
		{Conv{32, 14, 14, 64, 3, 1, 1, 32}, false},
		{Conv{32, 14, 14, 32, 3, 1, 1, 16}, false},
		{Conv{32, 14, 14, 32, 1, 1, 0, 32}, false},
	} {
		if got := DepthwiseBlockedOK(tc.c); got != tc.ok {
			t.Errorf("DepthwiseBlockedOK(%+v) = %v, want %v", tc.c, got, tc.ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewDepthwiseOp accepted a 9×9 kernel")
		}
	}()
	NewDepthwiseOp(Conv{16, 8, 8, 16, 9, 1, 4, 16}, make([]float32, 16*81), nil, false)
}

// runDWBCase checks DepthwiseOp on one case at every level and thread
// configuration against ref.Conv2D: NaN guard bands around the inputs, the
// weights and the output, garbage in the output beforehand, padding
// channels of the output exactly zero.
func runDWBCase(t *testing.T, c Conv, bias, relu bool, seed int64, configs []dwbConfig) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	hw, oh, ow := c.InH*c.InW, c.OutH(), c.OutW()
	x := guardedRand(r, c.InC*hw)
	xb := guardedBlocked(c.InC, hw, x)
	w := guardedRand(r, c.InC*c.K*c.K)
	var b []float32
	if bias {
		b = guardedRand(r, c.InC)
	}
	n := c.OutC * oh * ow
	want, mag := make([]float32, n), make([]float32, n)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, x, w, b, want, relu)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, absSlice(x), absSlice(w), absSlice(b), mag, false)
	nb := BlockedLen(c.OutC, oh*ow)
	got := make([]float32, n)
	for _, l := range dwbKernels.levels() {
		var op *DepthwiseOp
		withDWBLevel(l, func() { op = NewDepthwiseOp(c, w, b, relu) })
		if op.level != l {
			t.Fatalf("op level %v, want %v", op.level, l)
		}
		for _, tc := range configs {
			buf, out := guarded(nb)
			for i := range out {
				out[i] = float32(i%7) - 3 // garbage, padding channels included
			}
			op.Workers = tc.workers
			withDWBConfig(t, tc, func() { op.Run(xb, out) })
			checkGuard(t, buf, nb)
			if t.Failed() {
				return
			}
			name := fmt.Sprintf("%v/t%d/m%d/w%d", l, tc.threads, tc.minTask, tc.workers)
			checkBlockedPadding(t, name, c.OutC, oh*ow, out)
			FromBlocked(c.OutC, oh*ow, out, got)
			compareNamed(t, name, got, want, mag)
		}
	}
}

// checkBlockedPadding fails unless the padding channels of the blocked
// activation x (c channels, hw pixels) are zero.
func checkBlockedPadding(t *testing.T, name string, c, hw int, x []float32) {
	t.Helper()
	if c%BlockC == 0 {
		return
	}
	cb := Blocks(c) - 1
	for p := 0; p < hw; p++ {
		for j := c % BlockC; j < BlockC; j++ {
			if v := x[(cb*hw+p)*BlockC+j]; v != 0 {
				t.Fatalf("%s: padding channel %d at pixel %d = %v, want 0", name, cb*BlockC+j, p, v)
			}
		}
	}
}

// TestDepthwiseBlockedOdd covers odd channel counts and map sizes, both
// strides and all bias × ReLU combinations.
func TestDepthwiseBlockedOdd(t *testing.T) {
	sizes := [][2]int{{1, 1}, {2, 2}, {3, 3}, {5, 5}, {7, 7}, {57, 45}, {2, 9}, {9, 2}, {1, 6}, {6, 1}}
	i := 0
	for _, ch := range []int{1, 3, 17, 40} {
		for _, hw := range sizes {
			for _, s := range []int{1, 2} {
				for _, bias := range []bool{false, true} {
					for _, relu := range []bool{false, true} {
						c := Conv{ch, hw[0], hw[1], ch, 3, s, 1, ch}
						if testing.Short() && hw[0] > 9 && (bias != relu) {
							continue
						}
						t.Run(fmt.Sprintf("c%d_%dx%d_s%d_b%v_r%v", ch, hw[0], hw[1], s, bias, relu), func(t *testing.T) {
							runDWBCase(t, c, bias, relu, int64(i), dwbConfigs)
						})
						i++
					}
				}
			}
		}
	}
}

// TestDepthwiseBlockedWidths runs every row width up to past two interior
// groups, so that every remainder variant of the assembly runs.
func TestDepthwiseBlockedWidths(t *testing.T) {
	for _, s := range []int{1, 2} {
		for _, h := range []int{1, 2, 3, 4} {
			for wd := 1; wd <= 2*s*16+3; wd++ {
				c := Conv{16, h, wd, 16, 3, s, 1, 16}
				t.Run(fmt.Sprintf("s%d_%dx%d", s, h, wd), func(t *testing.T) {
					runDWBCase(t, c, wd%2 == 0, wd%3 != 0, int64(1000*s+100*h+wd), dwbConfigs[:1])
				})
			}
		}
	}
}

// TestDepthwiseBlockedReal runs the real MobileOne layer shapes.
func TestDepthwiseBlockedReal(t *testing.T) {
	if testing.Short() {
		t.Skip("real shapes are slow against the reference")
	}
	for i, s := range dwRealShapes {
		t.Run(s.name, func(t *testing.T) {
			runDWBCase(t, s.conv(), i%3 != 1, i%4 != 3, int64(200+i), dwbConfigs)
		})
	}
}

// TestDepthwiseBlockedKernels calls every kernel directly on a range of
// blocks and a band of rows in the middle of NaN-guarded buffers: nothing
// outside that range may be written, and the assembly must match the
// pure-Go twin.
func TestDepthwiseBlockedKernels(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	for _, l := range dwbKernels.levels() {
		d := dwbKernels.at(l)
		for _, s := range []int{1, 2} {
			kern := map[int]dwbKernel{1: d.s1, 2: d.s2}[s]
			twin := map[int]dwbKernel{1: dwb3x3s1Go, 2: dwb3x3s2Go}[s]
			for _, hw := range [][2]int{{7, 7}, {14, 14}, {5, 8}, {3, 33}, {9, 1}, {28, 28}} {
				h, wd := hw[0], hw[1]
				oh, ow := (h-1)/s+1, (wd-1)/s+1
				ib, ob := h*wd*BlockC, oh*ow*BlockC
				x, w := guardedRand(r, 4*ib), guardedRand(r, 4*10*BlockC)
				for _, band := range [][2]int{{0, oh}, {0, 1}, {oh - 1, oh}, {oh / 3, (2*oh + 2) / 3}} {
					for _, relu := range []bool{false, true} {
						name := fmt.Sprintf("%v/s%d/%dx%d/rows%v/r%v", l, s, h, wd, band, relu)
						want := make([]float32, 4*ob)
						twin(x[ib:3*ib], w[10*BlockC:30*BlockC], want[ob:3*ob], 2, h, wd, band[0], band[1], relu)
						buf, got := guarded(4 * ob)
						for i := range got {
							got[i] = 0
						}
						kern(x[ib:3*ib], w[10*BlockC:30*BlockC], got[ob:3*ob], 2, h, wd, band[0], band[1], relu)
						checkGuard(t, buf, 4*ob)
						for i, v := range got {
							p := i / BlockC % (oh * ow)
							inside := i >= ob && i < 3*ob && p >= band[0]*ow && p < band[1]*ow
							if !inside && v != 0 {
								t.Fatalf("%s: wrote outside the blocks and rows at %d", name, i)
							}
						}
						for i := range got {
							g, w := float64(got[i]), float64(want[i])
							if !(math.Abs(g-w) <= 1e-5*(1+math.Abs(w))) {
								t.Fatalf("%s: element %d: asm %v, twin %v", name, i, g, w)
							}
						}
					}
				}
			}
		}
	}
}

// TestDepthwiseBlockedNoAllocs checks that steady-state calls do not
// allocate, serial and parallel.
func TestDepthwiseBlockedNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewSource(8))
	for _, l := range dwbKernels.levels() {
		for _, s := range []dwShape{{"a", 32, 14, 1}, {"b", 16, 28, 2}, {"c", 64, 7, 1}, {"d", 256, 14, 1}} {
			c := s.conv()
			x := randSlice(r, BlockedLen(c.InC, c.InH*c.InW))
			out := make([]float32, BlockedLen(c.OutC, c.OutH()*c.OutW()))
			w, b := randSlice(r, c.InC*9), randSlice(r, c.InC)
			for _, tc := range []dwbConfig{{1, 1 << 16, 0, 0}, {2, 0, 0, 0}} {
				var op, opNB *DepthwiseOp
				withDWBLevel(l, func() {
					op = NewDepthwiseOp(c, w, b, true)
					opNB = NewDepthwiseOp(c, w, nil, false)
				})
				withDWBConfig(t, tc, func() {
					op.Run(x, out)
					if n := testing.AllocsPerRun(20, func() { op.Run(x, out) }); n > 0 {
						t.Errorf("%v %+v t%d: %v allocations per call", l, c, tc.threads, n)
					}
					opNB.Run(x, out)
					if n := testing.AllocsPerRun(20, func() { opNB.Run(x, out) }); n > 0 {
						t.Errorf("%v %+v t%d no bias: %v allocations per call", l, c, tc.threads, n)
					}
				})
			}
		}
	}
}

// TestDepthwiseBlockedConcurrent runs one op from several goroutines on
// different buffers.
func TestDepthwiseBlockedConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	c := Conv{40, 15, 13, 40, 3, 2, 1, 40}
	w, b := randSlice(r, 40*9), randSlice(r, 40)
	op := NewDepthwiseOp(c, w, b, true)
	hw, ohw := c.InH*c.InW, c.OutH()*c.OutW()
	const n = 4
	var xs, wants, outs [n][]float32
	for i := range xs {
		xs[i] = make([]float32, BlockedLen(c.InC, hw))
		ToBlocked(c.InC, hw, randSlice(r, c.InC*hw), xs[i])
		wants[i] = make([]float32, BlockedLen(c.InC, ohw))
		op.Run(xs[i], wants[i])
		outs[i] = make([]float32, len(wants[i]))
	}
	withDWBConfig(t, dwbConfig{2, 0, 1, 0}, func() {
		var wg sync.WaitGroup
		for i := range xs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					op.Run(xs[i], outs[i])
				}
			}()
		}
		wg.Wait()
	})
	for i := range outs {
		for j := range outs[i] {
			if outs[i][j] != wants[i][j] {
				t.Fatalf("goroutine %d: element %d = %v, want %v", i, j, outs[i][j], wants[i][j])
			}
		}
	}
}
