package kernel

// Pure-Go twins of the generated assembly micro-kernels (_gen/gemm). Each
// computes one mr×nr tile of C from packed panels with the epilogue fused:
//
//	for i := 0; i < rows; i++ {
//		for j := 0; j < cols; j++ {
//			var s float32
//			for p := 0; p < kc; p++ {
//				s += a[p*mr+i] * b[p*nr+j]
//			}
//			if flags&flagAcc != 0 {
//				s += c[i*ldc+j]
//			}
//			if flags&flagBias != 0 {
//				s += bias[i]
//			}
//			if flags&flagReLU != 0 {
//				s = max(s, 0)
//			}
//			c[i*ldc+j] = s
//		}
//	}
//
// (The assembly sums the k products in order, one FMA each, so results
// agree to rounding of the fused multiply-add.)

// Epilogue flags of a micro-kernel call.
const (
	flagAcc  = 1 // add the old C
	flagBias = 2 // add bias[i] to row i
	flagReLU = 4 // clamp at zero
)

// gemmTileGo is the reference loop above for any mr×nr.
func gemmTileGo(mr, nr, kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	a = a[:kc*mr]
	b = b[:kc*nr]
	for i := 0; i < rows; i++ {
		row := c[i*ldc : i*ldc+cols]
		for j := range row {
			var s float32
			for p := 0; p < kc; p++ {
				s += a[p*mr+i] * b[p*nr+j]
			}
			if flags&flagAcc != 0 {
				s += row[j]
			}
			if flags&flagBias != 0 {
				s += bias[i]
			}
			if flags&flagReLU != 0 {
				s = max(s, 0)
			}
			row[j] = s
		}
	}
}

// gemm12x32Go is the twin of gemmAVX512x12x32: gemmTileGo with mr=12, nr=32.
func gemm12x32Go(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemmTileGo(12, 32, kc, a, b, c, ldc, bias, rows, cols, flags)
}

// gemm6x16Go is the twin of gemmAVX2x6x16: gemmTileGo with mr=6, nr=16.
func gemm6x16Go(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemmTileGo(6, 16, kc, a, b, c, ldc, bias, rows, cols, flags)
}
