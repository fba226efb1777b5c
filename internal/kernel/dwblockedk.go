package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

// K×K depthwise convolution (K = 3, 5 or 7, any pad <= K/2, stride 1 or 2)
// on blocked activations, for the shapes the 3×3 pad-1 kernels of
// dwblocked.go do not take. DepthwiseOp copies the input rows a band of
// output rows reads into a window with the padding made explicit (zero
// columns left and right, zero rows above and below the image), then runs a
// kernel that knows no borders.

// dwbkKernel computes every output row of one channel block of a K×K
// depthwise convolution with stride s, K and s fixed by the kernel, on a
// padded window:
//
//	x   (ih, pw, 16)      the window, ih >= (oh-1)·s+K, pw >= (ow-1)·s+K
//	w   (K·K+1, 16)       the taps (ky·K+kx), then the bias
//	out (oh, ow, 16)
//
// with bias and ReLU (if relu) fused. See dwbkGo for the exact loop.
type dwbkKernel func(x, w, out []float32, oh, ow, pw int, relu bool)

// dwbkImpl holds the window kernels of one level: k[K/2-1][s-1].
type dwbkImpl struct {
	level cpu.Level
	k     [3][2]dwbkKernel
}

var dwbkPureGo = &dwbkImpl{level: cpu.PureGo, k: [3][2]dwbkKernel{
	{dwbk3s1Go, dwbk3s2Go}, {dwbk5s1Go, dwbk5s2Go}, {dwbk7s1Go, dwbk7s2Go},
}}

// dwbkKernels are this family's kernels by level (see levelSet).
var dwbkKernels = newLevelSet(dwbkPureGo, dwbkAsm[:])

// dwbkWindowFloats bounds the window of one kernel call (floats): 64 KiB,
// about what stays in L1 and L2's nearest reaches while the taps reread it.
const dwbkWindowFloats = 16 << 10

// dwbkChunk returns how many output rows one window holds: as many as fit
// in dwbkWindowFloats, at least one.
func dwbkChunk(k, s, pw int) int {
	rows := dwbkWindowFloats / (pw * BlockC)
	return max(1, (rows-k)/s+1)
}

// runK computes output rows [oy0, oy1) of channel blocks [b0, b1) with the
// window kernel op.kk; s.b holds the window. The rows are taken in chunks
// (see dwbkChunk); the window's padding is cleared once per chunk, then
// every block copies in its input rows and runs the kernel.
func (op *DepthwiseOp) runK(s *scratch, x, out []float32, b0, b1, oy0, oy1 int) {
	c := op.c
	k, st, p := c.K, c.Stride, c.Pad
	h, wd, ow := c.InH, c.InW, op.ow
	pw := wd + 2*p
	rowF, inRow := pw*BlockC, wd*BlockC
	ib, ob, ws := h*wd*BlockC, op.oh*ow*BlockC, (k*k+1)*BlockC
	chunk := dwbkChunk(k, st, pw)
	for r0 := oy0; r0 < oy1; r0 += chunk {
		r1 := min(oy1, r0+chunk)
		nrows := (r1-r0-1)*st + k
		iy0 := r0*st - p
		// Window rows [v0, v1) hold input rows iy0+v0 … iy0+v1-1.
		v0, v1 := max(0, -iy0), min(nrows, h-iy0)
		var win []float32
		if p > 0 {
			s.b = grow(s.b, nrows*rowF)
			win = s.b
			clear(win[:v0*rowF])
			clear(win[v1*rowF:])
			for i := v0; i < v1; i++ {
				row := win[i*rowF : (i+1)*rowF]
				clear(row[:p*BlockC])
				clear(row[(p+wd)*BlockC:])
			}
		}
		for b := b0; b < b1; b++ {
			xb := x[b*ib : (b+1)*ib]
			if p == 0 {
				// No padding: the input rows are the window.
				win = xb[iy0*inRow : (iy0+nrows)*inRow]
			} else {
				for i := v0; i < v1; i++ {
					iy := iy0 + i
					copy(win[i*rowF+p*BlockC:i*rowF+(p+wd)*BlockC], xb[iy*inRow:(iy+1)*inRow])
				}
			}
			op.kk(win, op.wb[b*ws:(b+1)*ws], out[b*ob+r0*ow*BlockC:b*ob+r1*ow*BlockC], r1-r0, ow, pw, op.relu)
		}
	}
}

// dwbk3s1Go is the portable twin of dwbk3s1AVX512 and dwbk3s1AVX2; see dwbkGo.
func dwbk3s1Go(x, w, out []float32, oh, ow, pw int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, relu, 3, 1)
}

// dwbk3s2Go is the portable twin of dwbk3s2AVX512 and dwbk3s2AVX2; see dwbkGo.
func dwbk3s2Go(x, w, out []float32, oh, ow, pw int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, relu, 3, 2)
}

// dwbk5s1Go is the portable twin of dwbk5s1AVX512 and dwbk5s1AVX2; see dwbkGo.
func dwbk5s1Go(x, w, out []float32, oh, ow, pw int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, relu, 5, 1)
}

// dwbk5s2Go is the portable twin of dwbk5s2AVX512 and dwbk5s2AVX2; see dwbkGo.
func dwbk5s2Go(x, w, out []float32, oh, ow, pw int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, relu, 5, 2)
}

// dwbk7s1Go is the portable twin of dwbk7s1AVX512 and dwbk7s1AVX2; see dwbkGo.
func dwbk7s1Go(x, w, out []float32, oh, ow, pw int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, relu, 7, 1)
}

// dwbk7s2Go is the portable twin of dwbk7s2AVX512 and dwbk7s2AVX2; see dwbkGo.
func dwbk7s2Go(x, w, out []float32, oh, ow, pw int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, relu, 7, 2)
}

// dwbkGo computes, for every output row oy < oh, column ox < ow and lane
// j < 16:
//
//	acc := w[k*k*16+j] // bias
//	for ky := 0; ky < k; ky++ {
//		for kx := 0; kx < k; kx++ {
//			acc += x[((oy*s+ky)*pw+ox*s+kx)*16+j] * w[(ky*k+kx)*16+j]
//		}
//	}
//	if relu {
//		acc = max(acc, 0)
//	}
//	out[(oy*ow+ox)*16+j] = acc
//
// The assembly kernels sum the taps in the same order with fused
// multiply-adds.
func dwbkGo(x, w, out []float32, oh, ow, pw int, relu bool, k, s int) {
	if oh <= 0 || ow <= 0 {
		return
	}
	taps := k * k
	bias := (*[BlockC]float32)(w[taps*BlockC : (taps+1)*BlockC])
	wv := w[:taps*BlockC]
	for oy := range oh {
		orow := out[oy*ow*BlockC : (oy+1)*ow*BlockC]
		for ox := range ow {
			acc := *bias
			for ky := range k {
				row := x[((oy*s+ky)*pw+ox*s)*BlockC : ((oy*s+ky)*pw+ox*s+k)*BlockC]
				wr := wv[ky*k*BlockC : (ky+1)*k*BlockC]
				for kx := range k {
					xv := (*[BlockC]float32)(row[kx*BlockC:])
					wk := (*[BlockC]float32)(wr[kx*BlockC:])
					for j := range acc {
						acc[j] += xv[j] * wk[j]
					}
				}
			}
			if relu {
				for j := range acc {
					acc[j] = max(acc[j], 0)
				}
			}
			*(*[BlockC]float32)(orow[ox*BlockC:]) = acc
		}
	}
}
