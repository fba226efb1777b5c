package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

// GemmNT through dot-product micro-kernels.
//
// In c = a·bᵀ both operands are read along their rows, so an element of c
// is a dot product of two contiguous rows. The outer-product micro-kernels
// of the packed GEMM need both operands transposed into panels first, which
// for the weight gradient of a convolution (k = pixels of the batch, in the
// thousands; m, n = channels) costs about as much as the products. The dot
// kernels instead keep one vector accumulator per element of a small block
// of c and read the rows where they are; k is cut into blocks whose b rows
// stay in L2.

// ntDotKernel computes the r×c block c[i*ldc+j] (+)= Σ_p a[i*lda+p]·b[j*ldb+p]
// (i < r, j < c, p < k) for the r and c it was made for; acc adds to c.
type ntDotKernel func(a []float32, lda int, b []float32, ldb int, k int, c []float32, ldc int, acc bool)

// ntRows and ntCols are the largest block of c of the dot kernels: ntRows
// rows of a (which stay in L1 while the block sweeps the b rows) by ntCols
// rows of b (read from L2). Six by four keeps 24 accumulators, the four b
// vectors of a step and one a vector in the 32 vector registers, and reads
// a third less from L2 per multiply-add than four by four.
const (
	ntRows = 6
	ntCols = 4
)

// ntImpl is the dot-kernel set of one level: kern[r][c] for r in 1..ntRows,
// c in 1..ntCols.
type ntImpl struct {
	level cpu.Level
	kern  [ntRows + 1][ntCols + 1]ntDotKernel
}

// ntDotGo is the portable twin of the dot kernels (float32 sums in 16
// interleaved lanes like the AVX-512 kernel, then added lane by lane).
func ntDotGo(r, cols int) ntDotKernel {
	return func(a []float32, lda int, b []float32, ldb int, k int, c []float32, ldc int, acc bool) {
		for i := 0; i < r; i++ {
			ar := a[i*lda : i*lda+k]
			for j := 0; j < cols; j++ {
				br := b[j*ldb : j*ldb+k]
				var lanes [16]float32
				for p, v := range ar {
					lanes[p&15] += v * br[p]
				}
				var s float32
				for _, v := range lanes {
					s += v
				}
				if acc {
					s += c[i*ldc+j]
				}
				c[i*ldc+j] = s
			}
		}
	}
}

var ntPureGo = func() *ntImpl {
	im := &ntImpl{level: cpu.PureGo}
	for r := 1; r <= ntRows; r++ {
		for c := 1; c <= ntCols; c++ {
			im.kern[r][c] = ntDotGo(r, c)
		}
	}
	return im
}()

// ntKernels are this family's kernels by level (see levelSet).
var ntKernels = newLevelSet(ntPureGo, ntAsm[:])

// ntMinK is the depth from which GemmNT uses the dot kernels (below it the
// horizontal sums at the end of every block cost more than packing).
const ntMinK = 256

// ntL2 is the size in bytes of the block of b rows one pass keeps in L2.
const ntL2 = 256 << 10

// gemmNTDot computes c (m×n) = a (m×k) · bᵀ (b: n×k) (+ c if acc), all
// row-major with lda = ldb = k and ldc = n, with the dot kernels of im on
// up to Threads() goroutines (each a contiguous range of 4-row blocks).
func gemmNTDot(im *ntImpl, m, n, k int, a, b, c []float32, acc bool) {
	kc := k
	if n*k*4 > ntL2 {
		kc = max(ntMinK, (ntL2/(4*n))&^15)
	}
	tiles := ceilDiv(m, ntRows)
	workers := min(workersFor(1<<30, m*n*k), tiles)
	run := func(_ *scratch, w int) {
		t0, t1 := w*tiles/workers, (w+1)*tiles/workers
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			accum := acc || p0 > 0
			for t := t0; t < t1; t++ {
				i := t * ntRows
				r := min(ntRows, m-i)
				for j := 0; j < n; j += ntCols {
					im.kern[r][min(ntCols, n-j)](a[i*k+p0:], k, b[j*k+p0:], k, kb, c[i*n+j:], n, accum)
				}
			}
		}
	}
	if workers <= 1 {
		run(nil, 0)
		return
	}
	parallelFor(workers, workers, run)
}
