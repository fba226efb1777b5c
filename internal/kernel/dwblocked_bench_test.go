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
