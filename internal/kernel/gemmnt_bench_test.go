package kernel

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// BenchmarkGemmTrainShapes times the trainer's GEMMs of a 1×1 layer at
// 28×28 with a stride-1 stem, batch 128 (stage 1: 48 channels over 25,088
// pixels; stage 2: 128 over 6,272; stage 3: 256 over 2,048): the forward
// product (Gemm), the input gradient (GemmTN) and the weight gradient
// (GemmNT, through the dot kernels), at 2 threads; and the same three in
// bfloat16 on AMX or AVX512-BF16 (GemmBF16, GemmBF16TN, GemmBF16NT) where
// the CPU has either.
func BenchmarkGemmTrainShapes(b *testing.B) {
	for _, s := range [][2]int{{48, 25088}, {128, 6272}, {256, 2048}} {
		c, m := s[0], s[1]
		r := rand.New(rand.NewSource(1))
		w, x, y := randSlice(r, c*c), randSlice(r, c*m), randSlice(r, c*m)
		dw := make([]float32, c*c)
		flops := float64(2 * c * c * m)
		for _, op := range []struct {
			name string
			f    func()
		}{
			{"Gemm", func() { Gemm(c, m, c, w, x, y, false) }},
			{"GemmTN", func() { GemmTN(c, m, c, w, y, x, false) }},
			{"GemmNT", func() { GemmNT(c, c, m, y, x, dw, false) }},
			{"GemmBF16", func() { GemmBF16(c, m, c, w, x, y, false) }},
			{"GemmBF16TN", func() { GemmBF16TN(c, m, c, w, y, x, false) }},
			{"GemmBF16NT", func() { GemmBF16NT(c, c, m, y, x, dw, false) }},
		} {
			b.Run(fmt.Sprintf("%s/%dx%d", op.name, c, m), func(b *testing.B) {
				if strings.Contains(op.name, "BF16") && !HaveBF16() {
					b.Skip("no AMX on this machine")
				}
				withThreads(b, threadConfig{2, minParallelWork}, func() {
					for b.Loop() {
						op.f()
					}
				})
				gflops(b, flops)
			})
		}
	}
}
