package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkInt8Conv runs QConvOp on MobileOne S0's int8 layer shapes
// (224×224 input), one thread, and reports GMAC/s.
func BenchmarkInt8Conv(b *testing.B) {
	for _, c := range []struct {
		name string
		s    QConvShape
	}{
		{"stem_3to48_s2_224", qshape(224, 224, 3, 48, 3, 2, 1, 114, 0)},
		{"pw_48to48_56", qshape(56, 56, 48, 48, 1, 1, 1, 0, 0)},
		{"pw_48to128_28", qshape(28, 28, 48, 128, 1, 1, 1, 0, 0)},
		{"pw_128to128_28", qshape(28, 28, 128, 128, 1, 1, 1, 0, 0)},
		{"pw_256to256_14", qshape(14, 14, 256, 256, 1, 1, 1, 0, 0)},
		{"pw_256to1024_7", qshape(7, 7, 256, 1024, 1, 1, 1, 0, 0)},
		{"dw_128_s1_28", qshape(28, 28, 128, 128, 3, 1, 128, 0, 0)},
		{"dw_256_s1_14", qshape(14, 14, 256, 256, 3, 1, 256, 0, 0)},
	} {
		s := c.s
		r := rand.New(rand.NewPCG(1, 2))
		x, w, bias, m := randQConv(r, s)
		op, err := NewQConvOp(s, w, bias, m)
		if err != nil {
			b.Fatal(err)
		}
		out := make([]uint8, s.OutH*s.OutW*s.Cout)
		sc := NewQScratch(op.ScratchC() + 1)
		macs := float64(s.OutH * s.OutW * s.Cout * (s.Cin / s.Groups) * s.K * s.KW)
		b.Run(fmt.Sprintf("%s/%s", c.name, op.Kind), func(b *testing.B) {
			for range b.N {
				op.Run(x, out, 0, s.OutH, sc)
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
