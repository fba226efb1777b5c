package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// layer is one convolution of a MobileOne network (re-parameterised,
// inference form) at 224×224 input.
type layer struct {
	name  string
	c     Conv
	count int // how many times the shape occurs in the network
}

func (l layer) macs() int {
	c := l.c
	return c.OutC * (c.InC / c.Groups) * c.K * c.K * c.OutH() * c.OutW()
}

// s0Layers lists the distinct convolution shapes of MobileOne-S0
// (widths 48, 48, 128, 256, 1024; blocks 2, 8, 10, 1). Every block is a
// depthwise 3×3 followed by a pointwise 1×1; the first block of each stage
// has stride 2.
func s0Layers() []layer {
	pw := func(ci, co, hw int) Conv { return Conv{ci, hw, hw, co, 1, 1, 0, 1} }
	dw := func(ch, hw, s int) Conv { return Conv{ch, hw, hw, ch, 3, s, 1, ch} }
	return []layer{
		{"s0_stem_3x48_224_s2", Conv{3, 224, 224, 48, 3, 2, 1, 1}, 1},
		{"s0_stage1_dw_48_112_s2", dw(48, 112, 2), 1},
		{"s0_stage1_pw_48x48_56", pw(48, 48, 56), 2},
		{"s0_stage1_dw_48_56", dw(48, 56, 1), 1},
		{"s0_stage2_dw_48_56_s2", dw(48, 56, 2), 1},
		{"s0_stage2_pw_48x128_28", pw(48, 128, 28), 1},
		{"s0_stage2_dw_128_28", dw(128, 28, 1), 7},
		{"s0_stage2_pw_128x128_28", pw(128, 128, 28), 7},
		{"s0_stage3_dw_128_28_s2", dw(128, 28, 2), 1},
		{"s0_stage3_pw_128x256_14", pw(128, 256, 14), 1},
		{"s0_stage3_dw_256_14", dw(256, 14, 1), 9},
		{"s0_stage3_pw_256x256_14", pw(256, 256, 14), 9},
		{"s0_stage4_dw_256_14_s2", dw(256, 14, 2), 1},
		{"s0_stage4_pw_256x1024_7", pw(256, 1024, 7), 1},
	}
}

// extraLayers are shapes of the wider variants.
func extraLayers() []layer {
	pw := func(ci, co, hw int) Conv { return Conv{ci, hw, hw, co, 1, 1, 0, 1} }
	dw := func(ch, hw, s int) Conv { return Conv{ch, hw, hw, ch, 3, s, 1, ch} }
	return []layer{
		{"s1_stage1_pw_96x96_56", pw(96, 96, 56), 1},
		{"s4_stage1_pw_192x192_56", pw(192, 192, 56), 1},
		{"s4_stage3_pw_448x448_14", pw(448, 448, 14), 1},
		{"s4_stage4_pw_1024x2048_7", pw(1024, 2048, 7), 1},
		{"s4_stage4_dw_1024_14_s2", dw(1024, 14, 2), 1},
	}
}

type convBuf struct{ x, w, b, out []float32 }

func newConvBuf(r *rand.Rand, c Conv) convBuf {
	return convBuf{
		x:   randSlice(r, c.InC*c.InH*c.InW),
		w:   randSlice(r, c.OutC*(c.InC/c.Groups)*c.K*c.K),
		b:   randSlice(r, c.OutC),
		out: make([]float32, c.OutC*c.OutH()*c.OutW()),
	}
}

func gflops(b *testing.B, flopsPerOp float64) {
	b.ReportMetric(flopsPerOp*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkConv2D(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for _, l := range append(s0Layers(), extraLayers()...) {
		buf := newConvBuf(r, l.c)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/t%d", l.name, th), func(b *testing.B) {
				withThreads(b, threadConfig{th, minParallelWork}, func() {
					for b.Loop() {
						Conv2D(l.c, buf.x, buf.w, buf.b, buf.out, true)
					}
				})
				gflops(b, 2*float64(l.macs()))
			})
		}
	}
}

func BenchmarkGemm(b *testing.B) {
	r := rand.New(rand.NewSource(2))
	for _, s := range [][3]int{{256, 256, 256}, {512, 512, 512}, {128, 784, 128}, {256, 196, 256}, {1024, 49, 256}, {128, 6272, 128}, {256, 2048, 256}, {48, 25088, 48}} {
		m, n, k := s[0], s[1], s[2]
		a, bb, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%dx%d/t%d", m, n, k, th), func(b *testing.B) {
				withThreads(b, threadConfig{th, minParallelWork}, func() {
					for b.Loop() {
						Gemm(m, n, k, a, bb, c, false)
					}
				})
				gflops(b, 2*float64(m*n*k))
			})
		}
	}
}

// BenchmarkS0 runs every convolution of MobileOne-S0 plus the head (global
// average pool and the 1024→1000 classifier) once per iteration: the kernel
// time of one 224×224 image. conv2d/ calls Conv2D (weights packed on every
// call), convop/ runs ConvOps planned once (what the engine does).
func BenchmarkS0(b *testing.B) {
	r := rand.New(rand.NewSource(3))
	layers := s0Layers()
	bufs := make([]convBuf, len(layers))
	ops := make([]*ConvOp, len(layers))
	macs := 1024 * 1000
	for i, l := range layers {
		bufs[i] = newConvBuf(r, l.c)
		ops[i] = NewConvOp(l.c, bufs[i].w, bufs[i].b, true)
		macs += l.count * l.macs()
	}
	pooled, logits := make([]float32, 1024), make([]float32, 1000)
	fcw, fcb := randSlice(r, 1024*1000), randSlice(r, 1000)
	for _, viaOp := range []bool{false, true} {
		for _, th := range []int{1, 2} {
			name := fmt.Sprintf("conv2d/t%d", th)
			if viaOp {
				name = fmt.Sprintf("convop/t%d", th)
			}
			b.Run(name, func(b *testing.B) {
				withThreads(b, threadConfig{th, minParallelWork}, func() {
					for b.Loop() {
						for i, l := range layers {
							for range l.count {
								if viaOp {
									ops[i].Run(bufs[i].x, bufs[i].out)
								} else {
									Conv2D(l.c, bufs[i].x, bufs[i].w, bufs[i].b, bufs[i].out, true)
								}
							}
						}
						last := bufs[len(bufs)-1].out
						GlobalAvgPool(1024, 49, last, pooled)
						Linear(1024, 1000, pooled, fcw, fcb, logits)
					}
				})
				b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/img")
				gflops(b, 2*float64(macs))
			})
		}
	}
	b.Logf("kernels: %s", Kernels())
}

// BenchmarkConvOp measures the GEMM-path layers of S0 and S4 (pointwise and
// the dense stem) through ConvOp at every kernel level and 1 and 2 threads.
func BenchmarkConvOp(b *testing.B) {
	r := rand.New(rand.NewSource(5))
	var ls []layer
	for _, l := range append(s0Layers(), extraLayers()...) {
		if l.c.Groups == 1 {
			ls = append(ls, l)
		}
	}
	for _, lv := range levels() {
		withLevel(b, lv, func() {
			for _, l := range ls {
				buf := newConvBuf(r, l.c)
				op := NewConvOp(l.c, buf.w, buf.b, true)
				for _, th := range []int{1, 2} {
					b.Run(fmt.Sprintf("%v/%s/t%d", lv, l.name, th), func(b *testing.B) {
						withThreads(b, threadConfig{th, minParallelWork}, func() {
							for b.Loop() {
								op.Run(buf.x, buf.out)
							}
						})
						gflops(b, 2*float64(l.macs()))
					})
				}
			}
		})
	}
}

// BenchmarkMicroKernel measures each level's micro-kernel alone on
// L1-resident panels (kc = 256, full tile, no epilogue): the ceiling for
// the GEMM driver.
func BenchmarkMicroKernel(b *testing.B) {
	const kc = 256
	r := rand.New(rand.NewSource(4))
	for _, lv := range levels() {
		im := implFor(lv)
		b.Run(fmt.Sprintf("%v/%dx%d", lv, im.mr, im.nr), func(b *testing.B) {
			ap, bp := randSlice(r, kc*im.mr), randSlice(r, kc*im.nr)
			c := make([]float32, im.mr*im.nr)
			for b.Loop() {
				im.kernel(kc, ap, bp, c, im.nr, nil, im.mr, im.nr, 0)
			}
			gflops(b, float64(2*kc*im.mr*im.nr))
		})
	}
}
