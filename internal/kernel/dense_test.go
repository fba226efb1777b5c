package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// denseRef is a dilated dense convolution, naive, in float64 (NCHW); mag
// gets the same sum of absolute values (the error scale).
func denseRef(c Conv, dil int, x, w, b []float32, relu bool) (out, mag []float32) {
	oh, ow := denseOut(c.InH, c, dil), denseOut(c.InW, c, dil)
	out, mag = make([]float32, c.OutC*oh*ow), make([]float32, c.OutC*oh*ow)
	for o := 0; o < c.OutC; o++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				var s, m float64
				if b != nil {
					s, m = float64(b[o]), abs64(float64(b[o]))
				}
				g := max(c.Groups, 1)
				cinG := c.InC / g
				i0 := o / (c.OutC / g) * cinG
				for i := i0; i < i0+cinG; i++ {
					for ky := 0; ky < c.K; ky++ {
						iy := oy*c.Stride - c.Pad + ky*dil
						for kx := 0; kx < c.K; kx++ {
							ix := ox*c.Stride - c.Pad + kx*dil
							if iy < 0 || iy >= c.InH || ix < 0 || ix >= c.InW {
								continue
							}
							v := float64(x[(i*c.InH+iy)*c.InW+ix]) * float64(w[((o*cinG+i-i0)*c.K+ky)*c.K+kx])
							s += v
							m += abs64(v)
						}
					}
				}
				if relu {
					s = max(s, 0)
				}
				out[(o*oh+oy)*ow+ox], mag[(o*oh+oy)*ow+ox] = float32(s), float32(m)
			}
		}
	}
	return out, mag
}

func abs64(v float64) float64 { return max(v, -v) }

func TestDenseOp(t *testing.T) {
	type tc struct {
		cin, cout, h, w, k, s, pad, dil, groups int
	}
	cases := []tc{
		{3, 16, 9, 9, 3, 2, 1, 1, 1},    // a stem
		{16, 16, 8, 8, 3, 1, 1, 1, 1},   // one block in, one out
		{20, 40, 7, 11, 3, 1, 1, 1, 1},  // padding channels both sides
		{64, 64, 14, 14, 3, 1, 1, 1, 1}, // a ResNet layer
		{32, 70, 15, 13, 3, 2, 1, 1, 1}, // stride 2, odd sizes
		{3, 24, 17, 17, 7, 2, 3, 1, 1},  // ResNet's stem
		{24, 24, 12, 12, 5, 1, 2, 1, 1},
		{16, 32, 13, 13, 3, 1, 2, 2, 1}, // dilated (ASPP)
		{16, 16, 20, 20, 3, 1, 6, 6, 1},
		{16, 16, 9, 9, 3, 2, 2, 2, 1},   // dilated and strided
		{48, 16, 5, 5, 1, 1, 0, 1, 1},   // 1×1
		{16, 16, 6, 6, 1, 2, 0, 1, 1},   // 1×1 stride 2 (ResNet's down-sampling)
		{8, 8, 1, 1, 3, 1, 1, 1, 1},     // a 1×1 map
		{8, 8, 2, 3, 3, 1, 0, 1, 1},     // no padding, output 0×1? (skipped if empty)
		{600, 40, 4, 4, 3, 1, 1, 1, 1},  // several input-block chunks
		{32, 32, 9, 9, 3, 1, 1, 1, 2},   // RegNet's grouped layers: 16 channels a group
		{64, 64, 10, 10, 3, 2, 1, 1, 4}, // strided
		{128, 256, 6, 6, 3, 1, 1, 1, 2}, // groups of 4 and 8 blocks
		{96, 96, 7, 7, 3, 1, 1, 1, 6},
		// dilations near or beyond the map (ASPP on small maps): taps that
		// read only padding for some, or all, output pixels are skipped
		{32, 16, 32, 32, 3, 1, 24, 24, 1},
		{20, 16, 12, 40, 3, 1, 13, 13, 1},
		{600, 20, 6, 8, 3, 1, 12, 12, 1},
		{16, 16, 3, 3, 3, 1, 36, 36, 1},
		{16, 16, 5, 7, 3, 2, 9, 5, 1}, // strided: some outputs read no input
		{16, 16, 4, 4, 5, 1, 30, 10, 1},
	}
	r := rand.New(rand.NewSource(1))
	for _, cs := range cases {
		c := Conv{InC: cs.cin, InH: cs.h, InW: cs.w, OutC: cs.cout, K: cs.k, Stride: cs.s, Pad: cs.pad, Groups: max(cs.groups, 1)}
		if !DenseBlockedOK(c, cs.dil) {
			if denseOut(cs.h, c, cs.dil) >= 1 && denseOut(cs.w, c, cs.dil) >= 1 {
				t.Errorf("%+v dil %d: not supported", c, cs.dil)
			}
			continue
		}
		x := randSlice(r, cs.cin*cs.h*cs.w)
		w := randSlice(r, cs.cout*cs.cin/c.Groups*cs.k*cs.k)
		for _, bias := range []bool{false, true} {
			for _, relu := range []bool{false, true} {
				var b []float32
				if bias {
					b = randSlice(r, cs.cout)
				}
				want, mag := denseRef(c, cs.dil, x, w, b, relu)
				oh, ow := denseOut(cs.h, c, cs.dil), denseOut(cs.w, c, cs.dil)
				xb := guardedBlocked(cs.cin, cs.h*cs.w, x)
				for _, l := range pwKernels.levels() {
					var op *DenseOp
					withPWLevel(l, func() { op = NewDenseOp(c, cs.dil, w, b, relu) })
					for _, th := range pwConfigs {
						name := fmt.Sprintf("%dx%d %d→%d k%d s%d p%d d%d g%d bias=%v relu=%v %v t%d",
							cs.h, cs.w, cs.cin, cs.cout, cs.k, cs.s, cs.pad, cs.dil, c.Groups, bias, relu, l, th.threads)
						n := BlockedLen(cs.cout, oh*ow)
						buf, out := guarded(n)
						withThreads(t, th, func() { op.Run(xb, out) })
						checkGuard(t, buf, n)
						for ch := cs.cout; ch < Blocks(cs.cout)*BlockC; ch++ {
							for p := 0; p < oh*ow; p++ {
								if v := out[((ch/BlockC)*oh*ow+p)*BlockC+ch%BlockC]; v != 0 {
									t.Fatalf("%s: padding channel %d = %v", name, ch, v)
								}
							}
						}
						got := make([]float32, cs.cout*oh*ow)
						FromBlocked(cs.cout, oh*ow, out, got)
						compareNamed(t, name, got, want, mag)
						if t.Failed() {
							return
						}
					}
				}
			}
		}
	}
}

func TestDenseNoAllocs(t *testing.T) {
	c := Conv{InC: 32, InH: 14, InW: 14, OutC: 64, K: 3, Stride: 1, Pad: 1, Groups: 1}
	r := rand.New(rand.NewSource(2))
	op := NewDenseOp(c, 1, randSlice(r, 64*32*9), randSlice(r, 64), true)
	x := make([]float32, BlockedLen(32, 196))
	out := make([]float32, BlockedLen(64, 196))
	withThreads(t, threadConfig{1, 1 << 16}, func() {
		op.Run(x, out)
		if a := testing.AllocsPerRun(5, func() { op.Run(x, out) }); a > 0 && !raceEnabled {
			t.Errorf("%.0f allocations per run", a)
		}
	})
}

// BenchmarkDense compares DenseOp (blocked) with ConvOp (NCHW, implicit
// im2col GEMM) on ResNet-18's 3×3 layers, one thread.
func BenchmarkDense(b *testing.B) {
	for _, c := range []Conv{
		{InC: 64, InH: 56, InW: 56, OutC: 64, K: 3, Stride: 1, Pad: 1},
		{InC: 128, InH: 28, InW: 28, OutC: 128, K: 3, Stride: 1, Pad: 1},
		{InC: 256, InH: 14, InW: 14, OutC: 256, K: 3, Stride: 1, Pad: 1},
		{InC: 512, InH: 7, InW: 7, OutC: 512, K: 3, Stride: 1, Pad: 1},
		{InC: 128, InH: 56, InW: 56, OutC: 256, K: 3, Stride: 2, Pad: 1},
	} {
		c.Groups = 1
		r := rand.New(rand.NewSource(1))
		w, bias := randSlice(r, c.OutC*c.InC*9), randSlice(r, c.OutC)
		flops := 2 * float64(c.OutC*c.InC*9*c.OutH()*c.OutW())
		name := fmt.Sprintf("%dx%d_%d_s%d", c.InH, c.InW, c.InC, c.Stride)
		SetThreads(1)
		b.Run("blocked/"+name, func(b *testing.B) {
			op := NewDenseOp(c, 1, w, bias, true)
			x := randSlice(r, BlockedLen(c.InC, c.InH*c.InW))
			out := make([]float32, BlockedLen(c.OutC, c.OutH()*c.OutW()))
			for b.Loop() {
				op.Run(x, out)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run("nchw/"+name, func(b *testing.B) {
			op := NewConvOp(c, w, bias, true)
			x := randSlice(r, c.InC*c.InH*c.InW)
			out := make([]float32, c.OutC*c.OutH()*c.OutW())
			for b.Loop() {
				op.Run(x, out)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		SetThreads(0)
	}
}
