package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// TestDepthwiseDilatedOp: against the float64 dilated convolution, on maps
// smaller than, equal to and larger than the dilation, odd sizes, channels
// below, at and above a block, with and without bias and ReLU.
func TestDepthwiseDilatedOp(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, tc := range []struct{ c, h, w, dil int }{
		{16, 12, 16, 2}, {20, 7, 9, 2}, {5, 9, 13, 4}, {33, 3, 5, 4}, {16, 1, 1, 2}, {48, 11, 6, 3}, {8, 6, 6, 1},
	} {
		for _, relu := range []bool{false, true} {
			t.Run(fmt.Sprintf("c%d_%dx%d_d%d_relu%v", tc.c, tc.h, tc.w, tc.dil, relu), func(t *testing.T) {
				c := Conv{InC: tc.c, InH: tc.h, InW: tc.w, OutC: tc.c, K: 3, Stride: 1, Pad: tc.dil, Groups: tc.c}
				if !DepthwiseDilatedOK(c, tc.dil) {
					t.Fatal("not supported")
				}
				x, w, b := make([]float32, tc.c*tc.h*tc.w), make([]float32, tc.c*9), make([]float32, tc.c)
				for _, s := range [][]float32{x, w, b} {
					for i := range s {
						s[i] = float32(r.NormFloat64())
					}
				}
				if relu {
					b = nil
				}
				saved := minParallelWork
				minParallelWork = 1 // split even tiny maps
				defer func() { minParallelWork = saved }()
				want, mag := denseRef(c, tc.dil, x, w, b, relu)
				hw := tc.h * tc.w
				xb := make([]float32, BlockedLen(tc.c, hw))
				ToBlocked(tc.c, hw, x, xb)
				const guard = 7
				ob := make([]float32, BlockedLen(tc.c, hw)+guard)
				for i := range ob {
					ob[i] = 99 // padding channels must be cleared, the guard kept
				}
				op := NewDepthwiseDilatedOp(c, tc.dil, w, b, relu)
				op.Workers = 1 + boolInt(relu) // one worker, and the split over tasks
				op.Run(xb, ob[:BlockedLen(tc.c, hw)])
				got := make([]float32, tc.c*hw)
				FromBlocked(tc.c, hw, ob, got)
				for i := range want {
					if d := abs64(float64(got[i] - want[i])); d > 1e-5*float64(mag[i])+1e-6 {
						t.Fatalf("out[%d] = %g, want %g", i, got[i], want[i])
					}
				}
				for cb := 0; cb < Blocks(tc.c); cb++ {
					for p := 0; p < hw; p++ {
						for j := tc.c - cb*BlockC; j < BlockC; j++ {
							if j >= 0 && ob[(cb*hw+p)*BlockC+j] != 0 {
								t.Fatalf("padding channel %d of pixel %d is %g", cb*BlockC+j, p, ob[(cb*hw+p)*BlockC+j])
							}
						}
					}
				}
				for _, v := range ob[BlockedLen(tc.c, hw):] {
					if v != 99 {
						t.Fatal("wrote past the output")
					}
				}
			})
		}
	}
}

// TestDepthwiseDilatedNoAllocs: Run allocates nothing in steady state.
func TestDepthwiseDilatedNoAllocs(t *testing.T) {
	c := Conv{InC: 64, InH: 20, InW: 20, OutC: 64, K: 3, Stride: 1, Pad: 2, Groups: 64}
	op := NewDepthwiseDilatedOp(c, 2, make([]float32, 64*9), make([]float32, 64), true)
	x, y := make([]float32, BlockedLen(64, 400)), make([]float32, BlockedLen(64, 400))
	op.Run(x, y)
	if a := testing.AllocsPerRun(10, func() { op.Run(x, y) }); a > 0 && !raceEnabled {
		t.Errorf("%.0f allocations per run", a)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
