package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// withAllLevels forces level l on every kernel family the convolution ops
// use, for f.
func withAllLevels(l cpu.Level, f func()) {
	for _, restore := range []func(){
		setLevel(l), pwKernels.set(l), dwbKernels.set(l), stembKernels.set(l),
		dwKernels.set(l), actKernels.set(l),
	} {
		defer restore()
	}
	f()
}

// sameBits fails unless got and want are equal bit for bit (NaN for NaN).
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// wantActBlocked applies a to the blocked map y of c channels in place as
// the fused ops must: every value, then zero padding channels.
func wantActBlocked(a Activation, y []float32, c, hw int) {
	actKernels.active.region(a, y, 1, len(y), len(y))
	if r := c % BlockC; r != 0 {
		blk := y[(Blocks(c)-1)*hw*BlockC:]
		for p := 0; p < hw; p++ {
			clear(blk[p*BlockC+r : (p+1)*BlockC])
		}
	}
}

// TestFusedActivations checks every convolution op with every fused
// activation against the same op without one followed by the activation
// over the whole output: the same kernels compute the same values, so the
// results must agree bit for bit (padding channels of blocked outputs
// zero), on one and two threads, at every level, on shapes that take each
// op's serial and parallel paths, small and large maps (the depthwise op
// activates whole blocks of small maps, bands of rows of large ones).
func TestFusedActivations(t *testing.T) {
	defer SetThreads(Threads())
	acts := allActs
	for _, l := range levels() {
		withAllLevels(l, func() {
			for _, th := range []int{1, 2} {
				SetThreads(th)
				r := rand.New(rand.NewSource(int64(th)))
				name := func(s string) string { return fmt.Sprintf("%v/t%d/%s", l, th, s) }
				t.Run(name("pointwise"), func(t *testing.T) {
					for _, s := range []struct{ cin, cout, hw int }{{24, 40, 49}, {16, 96, 28 * 28}, {5, 20, 13}, {40, 17, 3}, {0, 20, 5}, {96, 24, 56 * 56}} {
						w, b := randSlice(r, s.cin*s.cout), randSlice(r, s.cout)
						x := make([]float32, BlockedLen(s.cin, s.hw))
						ToBlocked(s.cin, s.hw, randSlice(r, s.cin*s.hw), x)
						plain := NewPointwiseOp(s.cin, s.cout, w, b, false)
						want := make([]float32, BlockedLen(s.cout, s.hw))
						plain.Run(x, s.hw, want)
						for _, a := range acts {
							got := make([]float32, len(want))
							NewPointwiseOpAct(s.cin, s.cout, w, b, a).Run(x, s.hw, got)
							wa := append([]float32(nil), want...)
							wantActBlocked(a, wa, s.cout, s.hw)
							sameBits(t, fmt.Sprintf("%+v %s", s, a), got, wa)
						}
					}
				})
				t.Run(name("depthwise"), func(t *testing.T) {
					for _, s := range []struct{ c, h, w, stride int }{{24, 7, 7, 1}, {40, 28, 28, 2}, {17, 13, 9, 1}, {32, 112, 112, 1}, {16, 57, 57, 2}} {
						c := Conv{InC: s.c, InH: s.h, InW: s.w, OutC: s.c, K: 3, Stride: s.stride, Pad: 1, Groups: s.c}
						w, b := randSlice(r, s.c*9), randSlice(r, s.c)
						x := make([]float32, BlockedLen(s.c, s.h*s.w))
						ToBlocked(s.c, s.h*s.w, randSlice(r, s.c*s.h*s.w), x)
						ohw := c.OutH() * c.OutW()
						want := make([]float32, BlockedLen(s.c, ohw))
						NewDepthwiseOp(c, w, b, false).Run(x, want)
						for _, a := range acts {
							got := make([]float32, len(want))
							NewDepthwiseOpAct(c, w, b, a).Run(x, got)
							wa := append([]float32(nil), want...)
							wantActBlocked(a, wa, s.c, ohw)
							sameBits(t, fmt.Sprintf("%+v %s", s, a), got, wa)
						}
					}
				})
				t.Run(name("stem"), func(t *testing.T) {
					for _, c := range []Conv{
						{InC: 3, InH: 64, InW: 64, OutC: 32, K: 3, Stride: 2, Pad: 1},
						{InC: 3, InH: 17, InW: 19, OutC: 24, K: 3, Stride: 1, Pad: 1},
						{InC: 1, InH: 9, InW: 30, OutC: 20, K: 3, Stride: 2, Pad: 1},
					} {
						w, b := randSlice(r, c.OutC*c.InC*9), randSlice(r, c.OutC)
						x := randSlice(r, c.InC*c.InH*c.InW)
						ohw := c.OutH() * c.OutW()
						want := make([]float32, BlockedLen(c.OutC, ohw))
						NewStemOp(c, w, b, false).Run(x, want)
						for _, a := range acts {
							got := make([]float32, len(want))
							NewStemOpAct(c, w, b, a).Run(x, got)
							wa := append([]float32(nil), want...)
							wantActBlocked(a, wa, c.OutC, ohw)
							sameBits(t, fmt.Sprintf("%+v %s", c, a), got, wa)
						}
					}
				})
				t.Run(name("conv"), func(t *testing.T) {
					for _, c := range []Conv{
						{InC: 16, InH: 14, InW: 14, OutC: 24, K: 3, Stride: 1, Pad: 1, Groups: 1},  // im2col GEMM
						{InC: 32, InH: 28, InW: 28, OutC: 40, K: 1, Stride: 1, Pad: 0, Groups: 1},  // pointwise GEMM
						{InC: 3, InH: 64, InW: 64, OutC: 32, K: 3, Stride: 2, Pad: 1, Groups: 1},   // direct stem (AVX-512)
						{InC: 24, InH: 28, InW: 28, OutC: 24, K: 3, Stride: 1, Pad: 1, Groups: 24}, // depthwise 3×3
						{InC: 24, InH: 56, InW: 56, OutC: 24, K: 3, Stride: 2, Pad: 1, Groups: 24}, // depthwise 3×3 s2
						{InC: 40, InH: 28, InW: 28, OutC: 40, K: 5, Stride: 1, Pad: 2, Groups: 40}, // depthwise 5×5
						{InC: 16, InH: 15, InW: 15, OutC: 16, K: 5, Stride: 2, Pad: 2, Groups: 16}, // depthwise 5×5 s2
						{InC: 8, InH: 10, InW: 10, OutC: 12, K: 3, Stride: 1, Pad: 1, Groups: 2},   // grouped
					} {
						g := max(c.Groups, 1)
						w, b := randSlice(r, c.OutC*max(c.InC/g, 1)*c.K*c.K), randSlice(r, c.OutC)
						x := randSlice(r, c.InC*c.InH*c.InW)
						want := make([]float32, c.OutC*c.OutH()*c.OutW())
						NewConvOp(c, w, b, false).Run(x, want)
						for _, a := range acts {
							got := make([]float32, len(want))
							NewConvOpAct(c, w, b, a).Run(x, got)
							wa := append([]float32(nil), want...)
							actKernels.active.region(a, wa, 1, len(wa), len(wa))
							sameBits(t, fmt.Sprintf("%+v %s", c, a), got, wa)
						}
					}
				})
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("NewPointwiseOpAct(numActs) did not panic")
		}
	}()
	NewPointwiseOpAct(4, 4, make([]float32, 16), nil, numActs)
}

// BenchmarkFusedSiLU compares a fused SiLU with the second pass it
// replaces, on one thread, on EfficientNet-B0 layers: the 1×1 expansion
// 24→144 and the 3×3 depthwise convolution after it on 56×56.
func BenchmarkFusedSiLU(b *testing.B) {
	defer SetThreads(Threads())
	SetThreads(1)
	r := rand.New(rand.NewSource(1))
	const cin, cout, hw = 24, 144, 56 * 56
	x := make([]float32, BlockedLen(cin, hw))
	ToBlocked(cin, hw, randSlice(r, cin*hw), x)
	y := make([]float32, BlockedLen(cout, hw))
	w, bias := randSlice(r, cin*cout), randSlice(r, cout)
	dc := Conv{InC: cout, InH: 56, InW: 56, OutC: cout, K: 3, Stride: 1, Pad: 1, Groups: cout}
	dw, db := randSlice(r, cout*9), randSlice(r, cout)
	z := make([]float32, len(y))
	for _, fused := range []bool{false, true} {
		name := "postpass"
		if fused {
			name = "fused"
		}
		pw, pwAct := NewPointwiseOp(cin, cout, w, bias, false), NewPointwiseOpAct(cin, cout, w, bias, ActSiLU)
		d, dAct := NewDepthwiseOp(dc, dw, db, false), NewDepthwiseOpAct(dc, dw, db, ActSiLU)
		b.Run("pw24x144_56x56/"+name, func(b *testing.B) {
			for b.Loop() {
				if fused {
					pwAct.Run(x, hw, y)
				} else {
					pw.Run(x, hw, y)
					Activate(ActSiLU, y)
				}
			}
		})
		b.Run("dw144_56x56/"+name, func(b *testing.B) {
			for b.Loop() {
				if fused {
					dAct.Run(y, z)
				} else {
					d.Run(y, z)
					Activate(ActSiLU, z)
				}
			}
		})
	}
}
