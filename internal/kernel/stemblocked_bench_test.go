package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// stemBlockedShapes are the stems of the models the engine runs.
var stemBlockedShapes = []struct {
	name string
	c    Conv
}{
	{"s0_3x48_224_s2", Conv{3, 224, 224, 48, 3, 2, 1, 1}},
	{"s1_3x64_224_s2", Conv{3, 224, 224, 64, 3, 2, 1, 1}},
	{"mnist_1x48_28_s1", Conv{1, 28, 28, 48, 3, 1, 1, 1}},
	{"cifar_3x48_32_s1", Conv{3, 32, 32, 48, 3, 1, 1, 1}},
}

// BenchmarkStemBlocked runs the blocked-output stem at every level this
// machine has, on one and two threads:
// BenchmarkStemBlocked/<level>/<shape>/t<threads>. GFLOP/s counts the
// useful multiply-adds (OutC, not the padded channels) twice.
func BenchmarkStemBlocked(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for _, l := range stembKernels.levels() {
		for _, s := range stemBlockedShapes {
			c := s.c
			x := randSlice(r, c.InC*c.InH*c.InW)
			w := randSlice(r, c.OutC*c.InC*9)
			bias := randSlice(r, c.OutC)
			out := make([]float32, BlockedLen(c.OutC, c.OutH()*c.OutW()))
			var op *StemOp
			withStembLevel(l, func() { op = NewStemOp(c, w, bias, true) })
			flops := 2 * float64(c.OutC*c.InC*9*c.OutH()*c.OutW())
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v/%s/t%d", l, s.name, th), func(b *testing.B) {
					withThreads(b, threadConfig{th, minParallelWork}, func() {
						for b.Loop() {
							op.Run(x, out)
						}
					})
					gflops(b, flops)
				})
			}
		}
	}
}

// BenchmarkStembKernel measures each kernel alone on one L1-resident row of
// 112 output pixels, 3 input channels: the ceiling for StemOp.
func BenchmarkStembKernel(b *testing.B) {
	r := rand.New(rand.NewSource(2))
	const n, cin = 112, 3
	for _, ks := range stembAllKernels() {
		b.Run(ks.name, func(b *testing.B) {
			ldx := ks.stride*(n-1) + 3
			chStride := 3 * ldx
			xp := randSlice(r, cin*chStride)
			w := randSlice(r, cin*9*ks.nb*BlockC)
			bias := randSlice(r, ks.nb*BlockC)
			out := make([]float32, ks.nb*n*BlockC)
			for b.Loop() {
				ks.k(xp, chStride, ldx, w, bias, out, n*BlockC, cin, n, stembLeft, true)
			}
			gflops(b, float64(2*n*cin*9*ks.nb*BlockC))
		})
	}
}

// BenchmarkStemNCHW runs the same shapes through the NCHW ConvOp (the
// direct AVX-512 stem for stride 2, the GEMM otherwise) for comparison:
// BenchmarkStemNCHW/<level>/<shape>/t<threads>.
func BenchmarkStemNCHW(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for _, l := range levels() {
		withLevel(b, l, func() {
			for _, s := range stemBlockedShapes {
				c := s.c
				buf := newConvBuf(r, c)
				op := NewConvOp(c, buf.w, buf.b, true)
				flops := 2 * float64(c.OutC*c.InC*9*c.OutH()*c.OutW())
				for _, th := range []int{1, 2} {
					b.Run(fmt.Sprintf("%v/%s/t%d", l, s.name, th), func(b *testing.B) {
						withThreads(b, threadConfig{th, minParallelWork}, func() {
							for b.Loop() {
								op.Run(buf.x, buf.out)
							}
						})
						gflops(b, flops)
					})
				}
			}
		})
	}
}
