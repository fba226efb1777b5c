package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// TestDepthwiseBlockedK covers the K×K path against ref.Conv2D: K 3 (pad
// 0), 5 and 7 with every pad up to K/2, both strides, odd
// and small maps, channel counts off the block size, bias × ReLU; once
// through padded windows only, once through strips wherever a column reads
// no padding.
func TestDepthwiseBlockedK(t *testing.T) {
	for _, mode := range []struct {
		name string
		min  int
	}{{"window", 1 << 30}, {"strips", 1}} {
		t.Run(mode.name, func(t *testing.T) {
			old := dwbkStripMin
			dwbkStripMin = mode.min
			defer func() { dwbkStripMin = old }()
			testDepthwiseBlockedK(t)
		})
	}
}

func testDepthwiseBlockedK(t *testing.T) {
	sizes := [][2]int{{1, 1}, {2, 2}, {3, 3}, {7, 7}, {14, 14}, {15, 17}, {1, 9}, {9, 1}, {5, 30}}
	i := 0
	for _, k := range []int{3, 5, 7} {
		for p := 0; p <= k/2; p++ {
			if k == 3 && p == 1 {
				continue // the 3×3 kernels (TestDepthwiseBlockedOdd)
			}
			for _, ch := range []int{1, 17, 40} {
				for _, hw := range sizes {
					for _, s := range []int{1, 2} {
						c := Conv{ch, hw[0], hw[1], ch, k, s, p, ch}
						if !DepthwiseBlockedOK(c) {
							continue
						}
						for _, br := range [][2]bool{{false, false}, {true, true}, {true, false}, {false, true}} {
							i++
							if testing.Short() && (br[0] != br[1] || p != k/2 && ch != 17) {
								continue
							}
							bias, relu := br[0], br[1]
							name := fmt.Sprintf("k%d_p%d_c%d_%dx%d_s%d_b%v_r%v", k, p, ch, hw[0], hw[1], s, bias, relu)
							t.Run(name, func(t *testing.T) {
								runDWBCase(t, c, bias, relu, int64(5000+i), dwbConfigs)
							})
						}
					}
				}
			}
		}
	}
}

// TestDepthwiseBlockedKShapes runs the 5×5 depthwise layers of the zoo
// and a few 7×7 ones (dwkShapes).
func TestDepthwiseBlockedKShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("real shapes are slow against the reference")
	}
	for i, s := range dwkShapes {
		t.Run(s.name, func(t *testing.T) {
			runDWBCase(t, s.conv, i%2 == 0, i%3 != 2, int64(300+i), dwbConfigs)
		})
	}
}

// dwkShape is a named K×K depthwise layer.
type dwkShape struct {
	name string
	conv Conv
}

func dwk(name string, c, hw, k, s int) dwkShape {
	return dwkShape{name, Conv{c, hw, hw, c, k, s, k / 2, c}}
}

// dwkShapes are the 5×5 depthwise layers of the zoo at 224×224 (every
// shape of EfficientNet-B0, MNASNet 1.0, MobileNet-V3 Large and Small and
// GhostNet, once), and 7×7 layers of the same sizes.
var dwkShapes = []dwkShape{
	dwk("k5_dw72_56_s2", 72, 56, 5, 2),   // MNASNet, V3-L, GhostNet
	dwk("k5_dw144_56_s2", 144, 56, 5, 2), // EfficientNet
	dwk("k5_dw96_28_s2", 96, 28, 5, 2),   // V3-S
	dwk("k5_dw240_28_s2", 240, 28, 5, 2), // MNASNet
	dwk("k5_dw120_28", 120, 28, 5, 1),    // MNASNet ×2, V3-L ×2
	dwk("k5_dw240_28", 240, 28, 5, 1),    // EfficientNet
	dwk("k5_dw240_14", 240, 14, 5, 1),    // V3-S ×2
	dwk("k5_dw480_14", 480, 14, 5, 1),    // EfficientNet, MNASNet ×2
	dwk("k5_dw672_14", 672, 14, 5, 1),    // EfficientNet ×2
	dwk("k5_dw288_14_s2", 288, 14, 5, 2), // V3-S
	dwk("k5_dw576_14_s2", 576, 14, 5, 2), // MNASNet
	dwk("k5_dw672_14_s2", 672, 14, 5, 2), // EfficientNet, V3-L, GhostNet
	dwk("k5_dw576_7", 576, 7, 5, 1),      // V3-S ×2
	dwk("k5_dw960_7", 960, 7, 5, 1),      // V3-L ×2
	dwk("k5_dw1152_7", 1152, 7, 5, 1),    // EfficientNet ×3, MNASNet ×3
	dwk("k7_dw96_56", 96, 56, 7, 1),
	dwk("k7_dw192_28", 192, 28, 7, 1),
	dwk("k7_dw384_14_s2", 384, 14, 7, 2),
	dwk("k7_dw768_7", 768, 7, 7, 1),
}

// TestDepthwiseBlockedKKernels calls every border-free kernel directly in
// the middle of NaN-guarded buffers, at every width up to past two groups,
// on ranges of kernel rows and with output rows further apart than their
// width: nothing outside the output pixels may be written, and the
// assembly must match the pure-Go twin.
func TestDepthwiseBlockedKKernels(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for _, l := range dwbkKernels.levels() {
		d := dwbkKernels.at(l)
		for ki, k := range []int{3, 5, 7} {
			for s := 1; s <= 2; s++ {
				kern, twin := d.k[ki][s-1], dwbkPureGo.k[ki][s-1]
				for _, oh := range []int{1, 3} {
					for ow := 1; ow <= 19; ow++ {
						for _, kr := range [][2]int{{0, k}, {1, k - 1}, {k - 1, 1}, {0, 2}} {
							ky0, nky := kr[0], kr[1]
							pw := (ow-1)*s + k + ow%2 // sometimes a spare column
							ostr := ow + ow%3
							ih := (oh-1)*s + nky
							_, x := guarded(ih * pw * BlockC)
							copy(x, randSlice(r, len(x)))
							_, w := guarded((k*k + 1) * BlockC)
							copy(w, randSlice(r, len(w)))
							n := ((oh-1)*ostr + ow) * BlockC
							for _, relu := range []bool{false, true} {
								name := fmt.Sprintf("%v/k%d/s%d/%dx%d/ky%d+%d/r%v", l, k, s, oh, ow, ky0, nky, relu)
								want := make([]float32, n)
								buf, got := guarded(n)
								for i := range got {
									want[i], got[i] = 7, 7
								}
								twin(x, w, want, oh, ow, pw, ostr, ky0, nky, relu)
								kern(x, w, got, oh, ow, pw, ostr, ky0, nky, relu)
								checkGuard(t, buf, n)
								for i := range got {
									inside := i/BlockC%ostr < ow
									if !inside && (got[i] != 7 || want[i] != 7) {
										t.Fatalf("%s: wrote between the output rows at %d", name, i)
									}
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
	}
}

// TestDepthwiseBlockedKNoAllocs checks that steady-state calls of the
// window path do not allocate, serial and parallel.
func TestDepthwiseBlockedKNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewSource(12))
	for _, l := range []cpu.Level{cpu.PureGo, dwbkKernels.active.level} {
		for _, c := range []Conv{{32, 14, 14, 32, 5, 1, 2, 32}, {48, 15, 15, 48, 5, 2, 2, 48}, {16, 9, 9, 16, 7, 1, 0, 16}} {
			x := randSlice(r, BlockedLen(c.InC, c.InH*c.InW))
			out := make([]float32, BlockedLen(c.OutC, c.OutH()*c.OutW()))
			w, b := randSlice(r, c.InC*c.K*c.K), randSlice(r, c.InC)
			var op *DepthwiseOp
			withDWBLevel(l, func() { op = NewDepthwiseOp(c, w, b, true) })
			for _, tc := range []dwbConfig{{1, 1 << 16, 0, 0}, {2, 0, 1, 0}} {
				withDWBConfig(t, tc, func() {
					op.Run(x, out)
					if n := testing.AllocsPerRun(20, func() { op.Run(x, out) }); n > 0 {
						t.Errorf("%v %+v t%d: %v allocations per call", l, c, tc.threads, n)
					}
				})
			}
		}
	}
}
