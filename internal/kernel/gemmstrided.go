package kernel

// GemmStrided computes c = a·b (+ c if accumulate) on row-major views with
// leading dimensions, through the packed GEMM:
//
//	a: (m, k), row i at a[i*lda:]
//	b: (k, n), row p at b[p*ldb:]; or, if bT, b holds Bᵀ (n, k), row j
//	   at b[j*ldb:]
//	c: (m, n), row i at c[i*ldc:]
//
// The views may be column ranges of wider matrices (one head of
// attention's (T, 3D) qkv rows): only the m×n elements of c are written.
// limit caps the goroutines (0: Threads()); with limit 1 the product runs
// on the calling goroutine and allocates nothing, for callers that spread
// many small products over the threads themselves.
func GemmStrided(m, n, k int, a []float32, lda int, b []float32, ldb int, bT bool, c []float32, ldc int, accumulate bool, limit int) {
	if m <= 0 || n <= 0 {
		return
	}
	if lda < k || ldc < n || (bT && ldb < k) || (!bT && ldb < n) {
		panic("kernel: GemmStrided: leading dimension shorter than a row")
	}
	job := gemmJob{
		m: m, n: n, k: k,
		a: a, lda: lda,
		b: bSource{b: b, ldb: ldb, trans: bT},
		c: c, ldc: ldc,
		accumulate: accumulate,
		prepack:    true,
		limit:      limit,
	}
	job.run()
}
