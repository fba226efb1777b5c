package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkPointwise runs the real MobileOne pointwise layers on blocked
// activations at every level the machine has, on one and two threads:
// BenchmarkPointwise/<level>/<shape>/t<threads>. Compare with
// BenchmarkConvOp (the NCHW GEMM path) on the same shapes.
func BenchmarkPointwise(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for _, l := range pwKernels.levels() {
		for _, s := range pwRealShapes {
			hw := s.pixels()
			x := randSlice(r, BlockedLen(s.cin, hw))
			out := make([]float32, BlockedLen(s.cout, hw))
			w, bias := randSlice(r, s.cin*s.cout), randSlice(r, s.cout)
			var op *PointwiseOp
			withPWLevel(l, func() { op = NewPointwiseOp(s.cin, s.cout, w, bias, true) })
			flops := 2 * float64(s.cin*s.cout*hw)
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v/%s/t%d", l, s.name, th), func(b *testing.B) {
					withThreads(b, threadConfig{th, minParallelWork}, func() {
						for b.Loop() {
							op.Run(x, hw, out)
						}
					})
					gflops(b, flops)
				})
			}
		}
	}
}
