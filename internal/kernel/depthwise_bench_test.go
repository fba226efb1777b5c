package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkDepthwise runs the real MobileOne depthwise layers at every level
// the machine has, on one and two threads:
// BenchmarkDepthwise/<level>/<shape>/t<threads>. GB/s counts the compulsory
// traffic: input, output, weights and bias once each.
func BenchmarkDepthwise(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	for _, l := range dwKernels.levels() {
		for _, s := range dwRealShapes {
			c := s.conv()
			buf := newConvBuf(r, c)
			out := c.OutC * c.OutH() * c.OutW()
			flops := 18 * float64(out)
			bytes := 4 * float64(c.InC*c.InH*c.InW+out+10*c.InC)
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v/%s/t%d", l, s.name, th), func(b *testing.B) {
					withDWLevel(l, func() {
						withThreads(b, threadConfig{th, minParallelWork}, func() {
							for b.Loop() {
								Conv2D(c, buf.x, buf.w, buf.b, buf.out, true)
							}
						})
					})
					sec := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(flops/sec/1e9, "GFLOP/s")
					b.ReportMetric(bytes/sec/1e9, "GB/s")
				})
			}
		}
	}
}
