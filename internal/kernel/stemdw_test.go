package kernel

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// TestStemDW checks the fused stem + stride-2 depthwise op against StemOp
// then DepthwiseOp, bit for bit, at every kernel level, on MobileOne's
// shapes, odd sizes and band sizes, with any number of threads; the
// windows start out as NaN, so a window row read before it is written
// shows in the output.
func TestStemDW(t *testing.T) {
	stemDWPoison = true
	defer func() { stemDWPoison = false }()
	type shape struct {
		inC, h, w, c, stride int
		band                 int // 0: the op's own
	}
	shapes := []shape{
		{3, 224, 224, 64, 2, 0}, // S1–S4
		{3, 224, 224, 48, 2, 0}, // S0
		{3, 224, 224, 48, 2, 1},
		{3, 64, 48, 48, 2, 3},
		{1, 28, 28, 48, 1, 0}, // stem stride 1 (Fashion-MNIST)
		{1, 28, 28, 48, 1, 2},
		{3, 33, 35, 20, 2, 2},   // odd sizes, a partial block
		{3, 31, 9, 64, 1, 4},    // odd stem output height
		{3, 13, 17, 16, 1, 1},   // odd, one-row bands
		{3, 5, 5, 8, 2, 0},      // tiny: stem output 3×3
		{2, 2, 3, 16, 1, 1},     // stem output 2×3
		{3, 1, 1, 16, 2, 0},     // one pixel
		{3, 40, 40, 32, 2, 100}, // one band
	}
	for i, sh := range shapes {
		sc := Conv{InC: sh.inC, InH: sh.h, InW: sh.w, OutC: sh.c, K: 3, Stride: sh.stride, Pad: 1, Groups: 1}
		dc := Conv{InC: sh.c, InH: sc.OutH(), InW: sc.OutW(), OutC: sh.c, K: 3, Stride: 2, Pad: 1, Groups: sh.c}
		if !StemDWOK(sc, dc) {
			t.Fatalf("%+v: not supported", sh)
		}
		r := rand.New(rand.NewSource(int64(i)))
		x := randSlice(r, sc.InC*sc.InH*sc.InW)
		sw, sb := randSlice(r, sh.c*sh.inC*9), randSlice(r, sh.c)
		dw, db := randSlice(r, sh.c*9), randSlice(r, sh.c)
		oh, ow := dc.OutH(), dc.OutW()
		n := BlockedLen(sh.c, oh*ow)
		for _, l := range stembKernels.levels() {
			if dwbKernels.at(l) == nil {
				continue
			}
			for _, relu := range []bool{false, true} {
				var stem *StemOp
				var dwop *DepthwiseOp
				var op *StemDWOp
				withStembLevel(l, func() {
					withDWBLevel(l, func() {
						stem = NewStemOp(sc, sw, sb, relu)
						dwop = NewDepthwiseOp(dc, dw, db, relu)
						op = NewStemDWOp(sc, sw, sb, relu, dc, dw, db, relu)
					})
				})
				if sh.band > 0 {
					op.band = sh.band
				}
				mid := make([]float32, BlockedLen(sh.c, sc.OutH()*sc.OutW()))
				want := make([]float32, n)
				stem.Run(x, mid)
				dwop.Run(mid, want)
				for _, tc := range threadConfigs {
					name := fmt.Sprintf("%dx%dx%d_c%d_s%d_b%d/%v/relu%v/t%d_%d", sh.inC, sh.h, sh.w, sh.c, sh.stride, op.band, l, relu, tc.threads, tc.minWork)
					t.Run(name, func(t *testing.T) {
						buf, out := guarded(n)
						withThreads(t, tc, func() { op.Run(x, out) })
						checkGuard(t, buf, n)
						for j := range want {
							if out[j] != want[j] {
								t.Fatalf("out[%d] = %v, want %v (StemOp then DepthwiseOp)", j, out[j], want[j])
							}
						}
					})
				}
			}
		}
	}
}

// TestStemDWAllocs checks that Run allocates nothing in steady state.
func TestStemDWAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	sc := Conv{InC: 3, InH: 64, InW: 64, OutC: 64, K: 3, Stride: 2, Pad: 1, Groups: 1}
	dc := Conv{InC: 64, InH: 32, InW: 32, OutC: 64, K: 3, Stride: 2, Pad: 1, Groups: 64}
	r := rand.New(rand.NewSource(1))
	op := NewStemDWOp(sc, randSlice(r, 64*27), nil, true, dc, randSlice(r, 64*9), nil, true)
	x := randSlice(r, 3*64*64)
	out := make([]float32, BlockedLen(64, 16*16))
	for _, tc := range []threadConfig{{1, 1 << 16}, {2, 0}} {
		withThreads(t, tc, func() {
			op.Run(x, out)
			if n := testing.AllocsPerRun(20, func() { op.Run(x, out) }); n > 0 {
				t.Errorf("threads %d: %v allocations per Run", tc.threads, n)
			}
		})
	}
}

var _ = cpu.PureGo
