package kernel

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkVec runs the vector kernels at every level the machine has on
// an L1/L2-resident (n = 4096) and a cache-spilling (n = 262144, 1 MiB per
// slice) size: BenchmarkVec/<level>/<op>/n<n>. MB/s counts the bytes read
// and written; GFLOP/s counts a multiply-add as two operations.
func BenchmarkVec(b *testing.B) {
	for _, l := range vecKernels.levels() {
		for _, n := range []int{4096, 262144} {
			r := rand.New(rand.NewSource(1))
			x, y, z, y2 := randSlice(r, n+2), randSlice(r, n+2), randSlice(r, n), randSlice(r, n)
			var g [9]float64
			w9 := [9]float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
			var sink float64
			for _, op := range []struct {
				name         string
				bytes, flops int // per element
				fn           func()
			}{
				{"Dot", 8, 2, func() { sink += float64(Dot(x[:n], y)) }},
				{"Axpy", 12, 2, func() { Axpy(1e-3, x[:n], y) }},
				{"SumSq", 4, 4, func() { s, q := SumSq(x[:n], 0.5); sink += s + q }},
				{"BNNorm", 12, 4, func() { BNNorm(x[:n], y, z, 0.1, 1.01, 0.9, 0.1, false) }},
				{"BNBackApply", 12, 4, func() { BNBackApply(x[:n], y, z, 0.9, 0.1, 0.2) }},
				{"Conv3Plane", 8, 18, func() { Conv3Plane(&w9, x[:n], y2[:n], n/512, 8, 64, false) }},
				{"Corr3Plane", 8, 18, func() { Corr3Plane(x[:n], y2[:n], n/512, 8, 64, &g) }},
			} {
				b.Run(fmt.Sprintf("%v/%s/n%d", l, op.name, n), func(b *testing.B) {
					restore := vecKernels.set(l)
					defer restore()
					b.SetBytes(int64(op.bytes * n))
					for b.Loop() {
						op.fn()
					}
					gflops(b, float64(op.flops*n))
				})
			}
			_ = sink
		}
	}
}
