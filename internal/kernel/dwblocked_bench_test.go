package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkDepthwiseBlocked runs the real MobileOne depthwise layers on
// blocked activations at every level the machine has, on one and two
// threads: BenchmarkDepthwiseBlocked/<level>/<shape>/t<threads>. FLOPs and
// GB/s are counted as in BenchmarkDepthwise (18 per output, compulsory
// traffic of input, output, weights and bias) for a direct comparison.
func BenchmarkDepthwiseBlocked(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for _, l := range dwbKernels.levels() {
		for _, s := range dwRealShapes {
			c := s.conv()
			hw, ohw := c.InH*c.InW, c.OutH()*c.OutW()
			x := make([]float32, BlockedLen(c.InC, hw))
			ToBlocked(c.InC, hw, randSlice(r, c.InC*hw), x)
			out := make([]float32, BlockedLen(c.OutC, ohw))
			var op *DepthwiseOp
			withDWBLevel(l, func() { op = NewDepthwiseOp(c, randSlice(r, c.InC*9), randSlice(r, c.InC), true) })
			n := c.OutC * ohw
			flops := 18 * float64(n)
			bytes := 4 * float64(c.InC*hw+n+10*c.InC)
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v/%s/t%d", l, s.name, th), func(b *testing.B) {
					withThreads(b, threadConfig{th, minParallelWork}, func() {
						for b.Loop() {
							op.Run(x, out)
						}
					})
					sec := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(flops/sec/1e9, "GFLOP/s")
					b.ReportMetric(bytes/sec/1e9, "GB/s")
				})
			}
		}
	}
}

// BenchmarkDepthwiseBlockedK runs the K×K depthwise layers of dwkShapes on
// blocked activations at every level, on one and two threads
// (BenchmarkDepthwiseBlockedK/<level>/<shape>/t<threads>), and the NCHW
// path they replaced (BenchmarkDepthwiseBlockedK/nchw/<shape>/t<threads>,
// Conv2D at the active depthwise level). FLOPs: 2·K² per output.
func BenchmarkDepthwiseBlockedK(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for _, s := range dwkShapes {
		c := s.conv
		hw, ohw := c.InH*c.InW, c.OutH()*c.OutW()
		flops := 2 * float64(c.K*c.K) * float64(c.OutC*ohw)
		buf := newConvBuf(r, c)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("nchw/%s/t%d", s.name, th), func(b *testing.B) {
				withThreads(b, threadConfig{th, minParallelWork}, func() {
					for b.Loop() {
						Conv2D(c, buf.x, buf.w, buf.b, buf.out, true)
					}
				})
				gflops(b, flops)
			})
		}
		x := make([]float32, BlockedLen(c.InC, hw))
		ToBlocked(c.InC, hw, buf.x, x)
		out := make([]float32, BlockedLen(c.OutC, ohw))
		for _, l := range dwbkKernels.levels() {
			var op *DepthwiseOp
			withDWBLevel(l, func() { op = NewDepthwiseOp(c, buf.w, buf.b, true) })
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
