package kernel

import (
	"fmt"
	"testing"
)

// BenchmarkConv3Plane times Conv3Plane and Corr3Plane on one plane of the
// trainer's (H, W, N) layout, as the 3×3 stride-1 depthwise passes of S0
// at 32×32 (batch 64) see them: 8×8, 4×4 and 2×2 pixels of 64 images.
func BenchmarkConv3Plane(b *testing.B) {
	for _, hw := range []int{8, 4, 2} {
		s := 64
		n := hw * hw * s
		x, d, out := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], d[i] = float32(i%7)-3, float32(i%5)-2
		}
		var w [9]float32
		for t := range w {
			w[t] = float32(t) / 9
		}
		macs := float64(9 * n)
		b.Run(fmt.Sprintf("conv_%dx%d", hw, hw), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Conv3Plane(&w, x, out, hw, hw, s, false)
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
		b.Run(fmt.Sprintf("convadd_%dx%d", hw, hw), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Conv3Plane(&w, x, out, hw, hw, s, true)
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
		b.Run(fmt.Sprintf("corr_%dx%d", hw, hw), func(b *testing.B) {
			var g [9]float64
			for i := 0; i < b.N; i++ {
				Corr3Plane(d, x, hw, hw, s, &g)
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
