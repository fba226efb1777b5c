package kernel

import (
	"fmt"
	"sync/atomic"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// microKernelFunc computes one rows×cols (≤ mr×nr) tile of C from a packed A
// panel and a packed B panel with the fused epilogue; see gemmTileGo.
type microKernelFunc func(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint)

// gemmImpl is one GEMM implementation: a micro-kernel, its tile shape (the
// packed panel layout) and its cache blocking.
type gemmImpl struct {
	level  cpu.Level
	name   string // kernel name for Kernels()
	mr, nr int
	kcMax  int // longest k slice (A and B panels of kcMax in L1/L2)
	mcMax  int // most rows of A per task (an mcMax×kcMax block in L2)
	kernel microKernelFunc
	// kernelN, if set, is an mr×nrN kernel (nrN < nr) for the last B
	// panel of a tile when it has at most nrN columns: it wastes fewer
	// lanes on sizes such as 14×14 = 6·32 + 4.
	kernelN microKernelFunc
	nrN     int
	// gemv computes a matrix-vector product (see gemvGo).
	gemv func(w, x, y []float32, in, rows int)
	// rowSum and scaleReLU are the per-channel reductions and rescaling
	// of pooling and squeeze-excitation (see rowSumGo, scaleReLUGo).
	rowSum    func(x, out []float32, c, hw int, scale float32)
	scaleReLU func(x, g []float32, c, hw int)
	// blockSum and blockScaleReLU are the same on one 16-channel block
	// of the blocked layout (see blockSumGo, blockScaleReLUGo).
	blockSum       func(x []float32, n int, out []float32)
	blockScaleReLU func(x, g []float32, n int)
	// stem, if set, is the direct 3×3 stride-2 kernel ConvOp uses for
	// dense convolutions with few input channels (see conv3x3s2Go).
	stem stemKernel
}

// stemKernel computes one output row of a dense 3×3 stride-2 convolution
// from a zero-padded input; see conv3x3s2Go.
type stemKernel func(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, ocb, ow int, relu bool)

var (
	implGo = &gemmImpl{level: cpu.PureGo, name: "gemm 4x8", mr: mr, nr: nr,
		kcMax: kcMax, mcMax: mcMax, kernel: gemmGo4x8, gemv: gemvGo,
		rowSum: rowSumGo, scaleReLU: scaleReLUGo,
		blockSum: blockSumGo, blockScaleReLU: blockScaleReLUGo}
	implAVX2 = &gemmImpl{level: cpu.AVX2, name: "gemm 6x16", mr: 6, nr: 16,
		kcMax: 256, mcMax: 144, kernel: gemmAVX2x6x16, gemv: gemvAVX2,
		rowSum: rowSumAVX2, scaleReLU: scaleReLUAVX2,
		blockSum: blockSumAVX2, blockScaleReLU: blockScaleReLUAVX2}
	implAVX512 = &gemmImpl{level: cpu.AVX512, name: "gemm 12x32", mr: 12, nr: 32,
		kcMax: 256, mcMax: 192, kernel: gemmAVX512x12x32,
		kernelN: gemmAVX512x12x16, nrN: 16, gemv: gemvAVX512, stem: conv3x3s2AVX512,
		rowSum: rowSumAVX512, scaleReLU: scaleReLUAVX512,
		blockSum: blockSumAVX512, blockScaleReLU: blockScaleReLUAVX512}
)

// active is the implementation the kernels use, chosen once at start-up.
var active atomic.Pointer[gemmImpl]

func init() { active.Store(implFor(cpu.Selected())) }

// implFor returns the implementation for level l, never more than the CPU
// and the build support.
func implFor(l cpu.Level) *gemmImpl {
	if !haveAsm {
		return implGo
	}
	l = min(l, cpu.Detected.Best())
	switch l {
	case cpu.AVX512:
		return implAVX512
	case cpu.AVX2:
		return implAVX2
	}
	return implGo
}

// levels lists the implementation levels this machine and build can run.
func levels() []cpu.Level {
	ls := []cpu.Level{cpu.PureGo}
	if haveAsm {
		for l := cpu.AVX2; l <= cpu.Detected.Best(); l++ {
			ls = append(ls, l)
		}
	}
	return ls
}

// setLevel forces the implementation (test hook) and returns a function that
// restores the previous one. Ops created meanwhile keep the level they were
// created with.
func setLevel(l cpu.Level) (restore func()) {
	old := active.Swap(implFor(l))
	return func() { active.Store(old) }
}

// Vectorized reports whether the kernels in use are SIMD assembly (not the
// pure-Go fallback).
func Vectorized() bool { return active.Load().level > cpu.PureGo }

// Kernels describes the kernels in use, e.g. "avx512 (gemm 12x32)".
func Kernels() string {
	im := active.Load()
	return fmt.Sprintf("%v (%s)", im.level, im.name)
}

// gemmGo4x8 adapts the pure-Go micro-kernel to microKernelFunc.
func gemmGo4x8(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	var acc [mr * nr]float32
	microKernel(kc, a, b, &acc)
	for r := 0; r < rows; r++ {
		dst := c[r*ldc : r*ldc+cols]
		src := acc[r*nr : r*nr+cols]
		var bv float32
		if flags&flagBias != 0 {
			bv = bias[r]
		}
		switch flags &^ flagBias {
		case flagAcc | flagReLU:
			for q, v := range src {
				dst[q] = max(v+dst[q]+bv, 0)
			}
		case flagAcc:
			for q, v := range src {
				dst[q] += v + bv
			}
		case flagReLU:
			for q, v := range src {
				dst[q] = max(v+bv, 0)
			}
		default:
			for q, v := range src {
				dst[q] = v + bv
			}
		}
	}
}
