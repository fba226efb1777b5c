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

// gemmAVX512x12x16 is the twin of the assembly kernel; see gemm12x16Go.
func gemmAVX512x12x16(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemm12x16Go(kc, a, b, c, ldc, bias, rows, cols, flags)
}

// gemvAVX512 is the twin of the assembly kernel; see gemvGo.
func gemvAVX512(w, x, y []float32, in, rows int) { gemvGo(w, x, y, in, rows) }

// conv3x3s2AVX512 is the twin of the assembly kernel; see conv3x3s2Go.
func conv3x3s2AVX512(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, ocb, ow int, relu bool) {
	conv3x3s2Go(xp, chStride, ldx, w, b, out, ldo, cin, ocb, ow, relu)
}

// rowSumAVX512 is the twin of the assembly kernel; see rowSumGo.
func rowSumAVX512(x, out []float32, c, hw int, scale float32) { rowSumGo(x, out, c, hw, scale) }

// scaleReLUAVX512 is the twin of the assembly kernel; see scaleReLUGo.
func scaleReLUAVX512(x, g []float32, c, hw int) { scaleReLUGo(x, g, c, hw) }

// gemmAVX2x6x16 is the twin of the assembly kernel; see gemm6x16Go.
func gemmAVX2x6x16(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemm6x16Go(kc, a, b, c, ldc, bias, rows, cols, flags)
}

// gemvAVX2 is the twin of the assembly kernel; see gemvGo.
func gemvAVX2(w, x, y []float32, in, rows int) { gemvGo(w, x, y, in, rows) }

// rowSumAVX2 is the twin of the assembly kernel; see rowSumGo.
func rowSumAVX2(x, out []float32, c, hw int, scale float32) { rowSumGo(x, out, c, hw, scale) }

// scaleReLUAVX2 is the twin of the assembly kernel; see scaleReLUGo.
func scaleReLUAVX2(x, g []float32, c, hw int) { scaleReLUGo(x, g, c, hw) }

// blockSumAVX512 is the twin of the assembly kernel; see blockSumGo.
func blockSumAVX512(x []float32, n int, out []float32) { blockSumGo(x, n, out) }

// blockSumAVX2 is the twin of the assembly kernel; see blockSumGo.
func blockSumAVX2(x []float32, n int, out []float32) { blockSumGo(x, n, out) }

// blockScaleReLUAVX512 is the twin of the assembly kernel; see blockScaleReLUGo.
func blockScaleReLUAVX512(x, g []float32, n int) { blockScaleReLUGo(x, g, n) }

// blockScaleReLUAVX2 is the twin of the assembly kernel; see blockScaleReLUGo.
func blockScaleReLUAVX2(x, g []float32, n int) { blockScaleReLUGo(x, g, n) }

// prefetchLines is a no-op without assembly.
func prefetchLines(b []float32, n int) {}

// prefetchLinesL2 is a no-op without assembly.
func prefetchLinesL2(b []float32, n int) {}
