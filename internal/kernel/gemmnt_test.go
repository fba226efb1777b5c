package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// TestNTDotKernels runs every dot kernel of every level the machine has on
// strided operands against a float64 reference, checking that nothing
// outside the block of c is written.
func TestNTDotKernels(t *testing.T) {
	for _, l := range ntKernels.levels() {
		im := ntKernels.at(l)
		for r := 1; r <= ntRows; r++ {
			for cols := 1; cols <= ntCols; cols++ {
				for _, k := range []int{1, 15, 16, 17, 100, 1000} {
					for _, acc := range []bool{false, true} {
						name := fmt.Sprintf("%v/%dx%d/k%d/acc%v", l, r, cols, k, acc)
						t.Run(name, func(t *testing.T) {
							rng := rand.New(rand.NewSource(int64(r*1000 + cols*100 + k)))
							lda, ldb, ldc := k+3, k+5, cols+2
							a := randSlice(rng, (r-1)*lda+k)
							b := randSlice(rng, (cols-1)*ldb+k)
							buf, c := guarded((r-1)*ldc + cols)
							c0 := randSlice(rng, len(c))
							for i := 0; i < r; i++ {
								copy(c[i*ldc:i*ldc+cols], c0[i*ldc:i*ldc+cols])
							}
							im.kern[r][cols](a, lda, b, ldb, k, c, ldc, acc)
							for i := 0; i < r; i++ {
								for j := 0; j < ldc && i*ldc+j < len(c); j++ {
									v := c[i*ldc+j]
									if j >= cols {
										if v == v {
											t.Fatalf("c[%d][%d] outside the block written: %v", i, j, v)
										}
										continue
									}
									var want, mag float64
									for p := 0; p < k; p++ {
										x := float64(a[i*lda+p]) * float64(b[j*ldb+p])
										want += x
										mag += math.Abs(x)
									}
									if acc {
										want += float64(c0[i*ldc+j])
									}
									if math.Abs(float64(v)-want) > 1e-5*(1+mag) {
										t.Fatalf("c[%d][%d] = %v, want %v", i, j, v, want)
									}
								}
							}
							checkGuard(t, buf, len(c))
						})
					}
				}
			}
		}
	}
}

// TestGemmNTDot runs the dot-kernel GemmNT driver of every level on shapes
// with block tails and several k blocks, at several thread counts.
func TestGemmNTDot(t *testing.T) {
	for _, l := range ntKernels.levels() {
		im := ntKernels.at(l)
		for i, s := range []struct{ m, n, k int }{{1, 1, 300}, {5, 7, 257}, {70, 70, 1000}, {9, 130, 4100}, {512, 128, 1024}} {
			for _, acc := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/m%d_n%d_k%d_acc%v", l, s.m, s.n, s.k, acc), func(t *testing.T) {
					r := rand.New(rand.NewSource(int64(i)))
					a := randSlice(r, s.m*s.k)
					bt := randSlice(r, s.n*s.k)
					b := make([]float32, len(bt))
					for j := 0; j < s.n; j++ {
						for p := 0; p < s.k; p++ {
							b[p*s.n+j] = bt[j*s.k+p]
						}
					}
					c0 := randSlice(r, s.m*s.n)
					want := append([]float32(nil), c0...)
					ref.Gemm(s.m, s.n, s.k, a, b, want, acc)
					mag := absSlice(c0)
					ref.Gemm(s.m, s.n, s.k, absSlice(a), absSlice(b), mag, acc)
					for _, tc := range threadConfigs {
						buf, got := guarded(s.m * s.n)
						copy(got, c0)
						withThreads(t, tc, func() { gemmNTDot(im, s.m, s.n, s.k, a, bt, got, acc) })
						checkGuard(t, buf, s.m*s.n)
						compare(t, got, want, mag)
					}
				})
			}
		}
	}
}

// BenchmarkGemmNT times the weight-gradient GEMM of a 1×1 layer with k = 4
// branches of 128 channels over 1024 pixels (S0's stage 2 at 32×32, batch
// 64) through the dot kernels and through the packed GEMM.
func BenchmarkGemmNT(b *testing.B) {
	const m, n, k = 512, 128, 1024
	r := rand.New(rand.NewSource(1))
	a, bt, c := randSlice(r, m*k), randSlice(r, n*k), make([]float32, m*n)
	flops := float64(2 * m * n * k)
	b.Run("dot", func(b *testing.B) {
		im := ntKernels.active
		for i := 0; i < b.N; i++ {
			gemmNTDot(im, m, n, k, a, bt, c, false)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("packed", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			job := gemmJob{m: m, n: n, k: k, a: a, lda: k, b: bSource{b: bt, ldb: k, trans: true}, c: c, ldc: n, prepack: true}
			job.run()
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// TestNTDotBlocksAgree: every element of c is the same dot product, summed
// in the same lanes and order, whatever block shape computes it, so the
// driver's result is bit-identical to the 1×1 kernel's (the trainer's
// weight gradients do not depend on the blocking).
func TestNTDotBlocksAgree(t *testing.T) {
	for _, l := range ntKernels.levels() {
		im := ntKernels.at(l)
		const m, n, k = 23, 13, 1037
		r := rand.New(rand.NewSource(5))
		a, b := randSlice(r, m*k), randSlice(r, n*k)
		got := make([]float32, m*n)
		gemmNTDot(im, m, n, k, a, b, got, false)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var want [1]float32
				im.kern[1][1](a[i*k:], k, b[j*k:], k, k, want[:], 1, false)
				if got[i*n+j] != want[0] {
					t.Fatalf("%v: c[%d][%d] = %v by the driver, %v by the 1x1 kernel", l, i, j, got[i*n+j], want[0])
				}
			}
		}
	}
}
