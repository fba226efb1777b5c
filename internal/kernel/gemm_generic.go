//go:build !amd64 || purego

package kernel

// haveAsm reports whether the assembly micro-kernels are linked in.
const haveAsm = false

// The assembly micro-kernels' pure-Go twins: same names and signatures, so
// the driver compiles unchanged; they are never selected (see impl.go).

// gemmAVX512x12x32 is the twin of the assembly kernel; see gemm12x32Go.
func gemmAVX512x12x32(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemm12x32Go(kc, a, b, c, ldc, bias, rows, cols, flags)
}

// gemmAVX2x6x16 is the twin of the assembly kernel; see gemm6x16Go.
func gemmAVX2x6x16(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemm6x16Go(kc, a, b, c, ldc, bias, rows, cols, flags)
}
