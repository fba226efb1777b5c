package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

// K×K depthwise convolution (K = 3, 5 or 7, any pad <= K/2, stride 1 or 2)
// on blocked activations, for the shapes the 3×3 pad-1 kernels of
// dwblocked.go do not take. The kernels know no borders. DepthwiseOp (see
// runK) either copies the input rows of a band of output rows into a window
// with the padding made explicit (runKWindow), or, on wide maps
// (runKStrips), runs the output pixels whose windows lie inside the input
// straight from the input, the rows whose windows cross the top or bottom
// border one by one on the kernel rows inside, and the columns whose
// windows cross the left or right border from two narrow strips of input
// columns copied with their padding.

// dwbkKernel computes oh×ow output pixels of one channel block of a K×K
// depthwise convolution with stride s, K and s fixed by the kernel, from
// the kernel rows [ky0, ky0+nky) only, on input that needs no padding:
//
//	x   (ih, pw, 16)      rows of pw pixels: output row oy, kernel row ky
//	                      reads row oy·s+ky-ky0; ih >= (oh-1)·s+nky,
//	                      pw >= (ow-1)·s+K (the last row may end after
//	                      pixel (ow-1)·s+K)
//	w   (K·K+1, 16)       the taps (ky·K+kx), then the bias
//	out (oh, ostr, 16)    output row oy starts at pixel oy·ostr (ostr >= ow)
//
// with bias and ReLU (if relu) fused. See dwbkGo for the exact loop.
type dwbkKernel func(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool)

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

// dwbkStripMin is the least number of output columns whose windows read no
// padding for runK to take runKStrips (a variable for the tests). Narrower
// maps copy whole windows: a strip's few columns make groups too small to
// hide the FMA latency, and the rows crossing the top or bottom border cost
// a kernel call each. Measured on Zen 5 (one thread, loaded machine): strips
// win by 10–30% on 56×56 maps, lose slightly on 28×28 and by 1.5–2.5× on
// 14×14 and 7×7.
var dwbkStripMin = 25

// runK computes output rows [oy0, oy1) of channel blocks [b0, b1) with the
// border-free kernel op.kk, through runKStrips or runKWindow.
func (op *DepthwiseOp) runK(s *scratch, x, out []float32, b0, b1, oy0, oy1 int) {
	c := op.c
	xl, xr := dwbkColumns(c, op.ow)
	if xr-xl >= dwbkStripMin && xr > xl {
		op.runKStrips(s, x, out, b0, b1, oy0, oy1)
		return
	}
	op.runKWindow(s, x, out, b0, b1, oy0, oy1)
}

// dwbkColumns returns the output columns [xl, xr) of c whose windows read
// no padding column (xl = xr = ow if there is none).
func dwbkColumns(c Conv, ow int) (xl, xr int) {
	k, st, p, wd := c.K, c.Stride, c.Pad, c.InW
	xl = min(ow, ceilDiv(p, st))
	if wd+p-k >= 0 {
		xr = min(ow, (wd+p-k)/st+1)
	}
	if xr <= xl {
		xl, xr = ow, ow
	}
	return xl, xr
}

// runKStrips computes output rows [oy0, oy1) of channel blocks [b0, b1)
// with the border-free kernel op.kk from the input itself and two strips
// of padded columns; s.b holds the strips.
//
// In padded coordinates (input pixel (iy, ix) at (iy+p, ix+p)) output pixel
// (oy, ox) reads rows oy·s … oy·s+K-1 and columns ox·s … ox·s+K-1. Output
// columns [0, xl) read left padding, [xr, ow) right padding (if no column
// reads neither, [0, ow) all go to the left strip); output rows [yt, yb)
// read no padding rows.
func (op *DepthwiseOp) runKStrips(s *scratch, x, out []float32, b0, b1, oy0, oy1 int) {
	c := op.c
	k, st, p := c.K, c.Stride, c.Pad
	h, wd, oh, ow := c.InH, c.InW, op.oh, op.ow
	xl, xr := dwbkColumns(c, ow)
	yt, yb := min(oh, ceilDiv(p, st)), 0
	if h+p-k >= 0 {
		yb = min(oh, (h+p-k)/st+1)
	}
	// Strips: input rows [iya, iyb), the left one padded columns [0, wl),
	// the right one [xr·s, xr·s+wr).
	iya, iyb := max(0, oy0*st-p), min(h, (oy1-1)*st-p+k)
	nr := iyb - iya
	wl, wr := 0, 0
	if xl > 0 {
		wl = (xl-1)*st + k
	}
	if xr < ow {
		wr = (ow-1-xr)*st + k
	}
	ib, ob, ws := h*wd*BlockC, oh*ow*BlockC, (k*k+1)*BlockC
	var left, right []float32
	if wl+wr > 0 {
		s.b = grow(s.b, nr*(wl+wr)*BlockC)
		left, right = s.b[:nr*wl*BlockC], s.b[nr*wl*BlockC:]
	}
	for b := b0; b < b1; b++ {
		xb, wb, outb := x[b*ib:(b+1)*ib], op.wb[b*ws:(b+1)*ws], out[b*ob:(b+1)*ob]
		dwbkStrip(left, xb, wd, iya, iyb, wl, -p)
		dwbkStrip(right, xb, wd, iya, iyb, wr, xr*st-p)
		for ra := oy0; ra < oy1; {
			rb, ky0, ky1 := ra+1, 0, k
			if yt <= ra && ra < yb {
				rb = min(oy1, yb)
			} else {
				ky0, ky1 = max(0, p-ra*st), min(k, h+p-ra*st)
			}
			op.callK(xb, wd, p, p, wb, outb, ra, rb, xl, xr, ky0, ky1)
			op.callK(left, wl, iya+p, 0, wb, outb, ra, rb, 0, xl, ky0, ky1)
			op.callK(right, wr, iya+p, xr*st, wb, outb, ra, rb, xr, ow, ky0, ky1)
			ra = rb
		}
	}
}

// callK runs op.kk on output rows [r0, r1) and columns [c0, c1) of one
// block (outb), kernel rows [ky0, ky1), reading src: rows of pw pixels
// that hold padded row y0+i in row i and padded column x0+j in column j.
// The slicing bounds-checks the kernel's buffers.
func (op *DepthwiseOp) callK(src []float32, pw, y0, x0 int, wb, outb []float32, r0, r1, c0, c1, ky0, ky1 int) {
	if r0 >= r1 || c0 >= c1 {
		return
	}
	st, k, ow := op.c.Stride, op.c.K, op.ow
	n, m := r1-r0, c1-c0
	start := (r0*st+ky0-y0)*pw + c0*st - x0
	end := start + ((n-1)*st+ky1-ky0-1)*pw + (m-1)*st + k
	o := r0*ow + c0
	op.kk(src[start*BlockC:end*BlockC], wb, outb[o*BlockC:(o+(n-1)*ow+m)*BlockC],
		n, m, pw, ow, ky0, ky1-ky0, op.relu)
}

// dwbkStrip fills dst (rows of w pixels) with the input rows [iya, iyb) of
// the block xb (rows of wd pixels), columns ix0 … ix0+w-1; the columns
// outside the input are zero.
func dwbkStrip(dst, xb []float32, wd, iya, iyb, w, ix0 int) {
	if w == 0 {
		return
	}
	a, e := max(0, -ix0), min(w, wd-ix0) // the columns inside, [a, e)
	for iy := iya; iy < iyb; iy++ {
		row := dst[(iy-iya)*w*BlockC : (iy-iya+1)*w*BlockC]
		in := xb[iy*wd*BlockC : (iy+1)*wd*BlockC]
		for j := 0; j < w; j++ {
			px := (*[BlockC]float32)(row[j*BlockC:])
			if j < a || j >= e {
				*px = [BlockC]float32{}
			} else {
				*px = *(*[BlockC]float32)(in[(ix0+j)*BlockC:])
			}
		}
	}
}

// dwbkWindowFloats bounds the window of one kernel call (floats): 64 KiB,
// about what stays in L1 and L2's nearest reaches while the taps reread it.
const dwbkWindowFloats = 16 << 10

// dwbkChunk returns how many output rows one window holds: as many as fit
// in dwbkWindowFloats, at least one.
func dwbkChunk(k, s, pw int) int {
	rows := dwbkWindowFloats / (pw * BlockC)
	return max(1, (rows-k)/s+1)
}

// runKWindow computes output rows [oy0, oy1) of channel blocks [b0, b1)
// with the kernel op.kk on windows that hold the padding: s.b holds the
// window. The rows are taken in chunks (see dwbkChunk); the window's
// padding is cleared once per chunk, then every block copies in its input
// rows and runs the kernel.
func (op *DepthwiseOp) runKWindow(s *scratch, x, out []float32, b0, b1, oy0, oy1 int) {
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
			op.kk(win, op.wb[b*ws:(b+1)*ws], out[b*ob+r0*ow*BlockC:b*ob+r1*ow*BlockC], r1-r0, ow, pw, ow, 0, k, op.relu)
		}
	}
}

// dwbk3s1Go is the portable twin of dwbk3s1AVX512 and dwbk3s1AVX2; see dwbkGo.
func dwbk3s1Go(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, ostr, ky0, nky, relu, 3, 1)
}

// dwbk3s2Go is the portable twin of dwbk3s2AVX512 and dwbk3s2AVX2; see dwbkGo.
func dwbk3s2Go(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, ostr, ky0, nky, relu, 3, 2)
}

// dwbk5s1Go is the portable twin of dwbk5s1AVX512 and dwbk5s1AVX2; see dwbkGo.
func dwbk5s1Go(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, ostr, ky0, nky, relu, 5, 1)
}

// dwbk5s2Go is the portable twin of dwbk5s2AVX512 and dwbk5s2AVX2; see dwbkGo.
func dwbk5s2Go(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, ostr, ky0, nky, relu, 5, 2)
}

// dwbk7s1Go is the portable twin of dwbk7s1AVX512 and dwbk7s1AVX2; see dwbkGo.
func dwbk7s1Go(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, ostr, ky0, nky, relu, 7, 1)
}

// dwbk7s2Go is the portable twin of dwbk7s2AVX512 and dwbk7s2AVX2; see dwbkGo.
func dwbk7s2Go(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool) {
	dwbkGo(x, w, out, oh, ow, pw, ostr, ky0, nky, relu, 7, 2)
}

// dwbkGo computes, for every output row oy < oh, column ox < ow and lane
// j < 16:
//
//	acc := w[k*k*16+j] // bias
//	for ky := ky0; ky < ky0+nky; ky++ {
//		for kx := 0; kx < k; kx++ {
//			acc += x[((oy*s+ky-ky0)*pw+ox*s+kx)*16+j] * w[(ky*k+kx)*16+j]
//		}
//	}
//	if relu {
//		acc = max(acc, 0)
//	}
//	out[(oy*ostr+ox)*16+j] = acc
//
// The assembly kernels sum the taps in the same order with fused
// multiply-adds.
func dwbkGo(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool, k, s int) {
	if oh <= 0 || ow <= 0 || nky <= 0 {
		return
	}
	taps := k * k
	bias := (*[BlockC]float32)(w[taps*BlockC : (taps+1)*BlockC])
	wv := w[:taps*BlockC]
	for oy := range oh {
		orow := out[oy*ostr*BlockC : (oy*ostr+ow)*BlockC]
		for ox := range ow {
			acc := *bias
			for i := range nky {
				ky := ky0 + i
				row := x[((oy*s+i)*pw+ox*s)*BlockC : ((oy*s+i)*pw+ox*s+k)*BlockC]
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
