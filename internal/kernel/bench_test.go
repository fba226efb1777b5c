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
	for _, s := range [][3]int{{256, 256, 256}, {512, 512, 512}, {128, 784, 128}, {256, 196, 256}, {1024, 49, 256}} {
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
// time of one 224×224 image.
func BenchmarkS0(b *testing.B) {
	r := rand.New(rand.NewSource(3))
	layers := s0Layers()
	bufs := make([]convBuf, len(layers))
	macs := 1024 * 1000
	for i, l := range layers {
		bufs[i] = newConvBuf(r, l.c)
		macs += l.count * l.macs()
	}
	pooled, logits := make([]float32, 1024), make([]float32, 1000)
	fcw, fcb := randSlice(r, 1024*1000), randSlice(r, 1000)
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("t%d", th), func(b *testing.B) {
			withThreads(b, threadConfig{th, minParallelWork}, func() {
				for b.Loop() {
					for i, l := range layers {
						for range l.count {
							Conv2D(l.c, bufs[i].x, bufs[i].w, bufs[i].b, bufs[i].out, true)
						}
					}
					last := bufs[len(bufs)-1].out
					GlobalAvgPool(1024, 49, last, pooled)
					Linear(1024, 1000, pooled, fcw, fcb, logits)
				}
			})
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/img")
			gflops(b, 2*float64(macs))
		})
	}
}

// BenchmarkMicroKernel measures the micro-kernel alone on L1-resident
// panels: the ceiling for the GEMM driver.
func BenchmarkMicroKernel(b *testing.B) {
	const kc = 256
	r := rand.New(rand.NewSource(4))
	ap, bp := randSlice(r, kc*mr), randSlice(r, kc*nr)
	var acc [mr * nr]float32
	for b.Loop() {
		microKernel(kc, ap, bp, &acc)
	}
	gflops(b, 2*kc*mr*nr)
}
