package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

// dwKernel computes nch channels of a 3×3 depthwise convolution with pad 1
// and a fixed stride: x (nch, h, wd), w (nch, 3, 3), b (nch) or empty for no
// bias, out (nch, oh, ow). See dw3x3s1Go and dw3x3s2Go for the exact loop.
type dwKernel func(x, w, b, out []float32, nch, h, wd int, relu bool)

// dwImpl is the set of 3×3 pad-1 depthwise kernels of one implementation
// level. The narrow kernels are used when an output row has at most narrow
// pixels (they use shorter vectors).
type dwImpl struct {
	level    cpu.Level
	s1, s2   dwKernel
	s1n, s2n dwKernel
	narrow   int
}

var dwPureGo = &dwImpl{level: cpu.PureGo, s1: dw3x3s1Go, s2: dw3x3s2Go, s1n: dw3x3s1Go, s2n: dw3x3s2Go}

// dwKernels are this family's kernels by level (see levelSet).
var dwKernels = newLevelSet(dwPureGo, dwAsm[:])

// kernel returns the kernel for the stride and output row width.
func (d *dwImpl) kernel(stride, ow int) dwKernel {
	narrow := ow <= d.narrow
	switch {
	case stride == 1 && narrow:
		return d.s1n
	case stride == 1:
		return d.s1
	case narrow:
		return d.s2n
	}
	return d.s2
}

// dwMinTaskWork is the least work (multiply-adds) worth a parallel task.
const dwMinTaskWork = 1 << 13

// depthwise computes a depthwise convolution (Groups == InC == OutC) directly,
// with bias and ReLU fused, then activation post (ActNone: none) on the
// channels each call has just computed, while they are in cache. 3×3 kernels with pad 1 and stride 1 or 2 (every
// depthwise layer of MobileOne) go through whole-channel kernels (assembly
// where available, see dwKernels.active); anything else uses the portable loops,
// one channel per task.
func depthwise(c Conv, x, w, bias, out []float32, relu bool, post Activation) {
	oh, ow := c.OutH(), c.OutW()
	oplane := oh * ow
	kk := c.K * c.K
	ch := c.InC
	if c.K == 3 && c.Pad == 1 && (c.Stride == 1 || c.Stride == 2) {
		dw3x3p1(c, x, w, bias, out, relu, post, dwKernels.active.kernel(c.Stride, ow))
		return
	}
	// Group channels into tasks of roughly equal, not-too-small size.
	per := max(1, min(ch, (1<<14)/max(1, oplane*kk)))
	nTasks := ceilDiv(ch, per)
	workers := workersFor(nTasks, ch*oplane*kk)
	if workers <= 1 {
		dwChannels(c, x, w, bias, out, relu, post, 0, ch)
		return
	}
	parallelFor(nTasks, workers, func(_ *scratch, t int) {
		dwChannels(c, x, w, bias, out, relu, post, t*per, min(ch, (t+1)*per))
	})
}

// dw3x3p1 runs kernel k over all channels, split into tasks of whole
// channels: one call when serial, else about four tasks per worker so that
// dynamic hand-out balances the load.
func dw3x3p1(c Conv, x, w, bias, out []float32, relu bool, post Activation, k dwKernel) {
	ch := c.InC
	oplane := c.OutH() * c.OutW()
	workers := workersFor(ch, ch*oplane*9)
	if workers <= 1 {
		dwRun(c, x, w, bias, out, relu, post, k, 0, ch)
		return
	}
	per := max(ceilDiv(ch, 4*workers), ceilDiv(dwMinTaskWork, oplane*9))
	nTasks := ceilDiv(ch, per)
	if nTasks <= 1 {
		dwRun(c, x, w, bias, out, relu, post, k, 0, ch)
		return
	}
	parallelFor(nTasks, min(workers, nTasks), func(_ *scratch, t int) {
		dwRun(c, x, w, bias, out, relu, post, k, t*per, min(ch, (t+1)*per))
	})
}

// dwRun runs kernel k on channels [c0, c1), with activation post after
// it, a few channels at a time (about actPieceValues outputs, at least one
// channel) so that post finds them in cache. The slicing bounds-checks
// every buffer, so the kernel only touches memory it was given.
func dwRun(c Conv, x, w, bias, out []float32, relu bool, post Activation, k dwKernel, c0, c1 int) {
	plane, oplane := c.InH*c.InW, c.OutH()*c.OutW()
	step := c1 - c0
	if post != ActNone {
		step = max(1, actPieceValues/max(oplane, 1))
	}
	for a := c0; a < c1; a += step {
		e := min(c1, a+step)
		var b []float32
		if bias != nil {
			b = bias[a:e]
		}
		o := out[a*oplane : e*oplane]
		k(x[a*plane:e*plane], w[a*9:e*9], b, o, e-a, c.InH, c.InW, relu)
		actKernels.active.region(post, o, 1, len(o), len(o))
	}
}

// dw3x3s1Go is the portable twin of the stride-1 assembly kernels
// (dw3x3s1AVX512, dw3x3s1AVX512Y, dw3x3s1AVX2). It computes, for every
// channel ci < nch (plane = h·wd):
//
//	for oy := 0; oy < h; oy++ {
//		for ox := 0; ox < wd; ox++ {
//			s := b[ci] // 0 if len(b) == 0
//			for ky := 0; ky < 3; ky++ {
//				for kx := 0; kx < 3; kx++ {
//					iy, ix := oy-1+ky, ox-1+kx
//					if 0 <= iy && iy < h && 0 <= ix && ix < wd {
//						s += x[ci*plane+iy*wd+ix] * w[ci*9+ky*3+kx]
//					}
//				}
//			}
//			if relu {
//				s = max(s, 0)
//			}
//			out[ci*plane+oy*wd+ox] = s
//		}
//	}
func dw3x3s1Go(x, w, b, out []float32, nch, h, wd int, relu bool) {
	dw3x3Go(Conv{1, h, wd, 1, 3, 1, 1, 1}, x, w, b, out, nch, relu)
}

// dw3x3s2Go is the portable twin of the stride-2 assembly kernels
// (dw3x3s2AVX512, dw3x3s2AVX512Y, dw3x3s2AVX2). With oh = (h+1)/2,
// ow = (wd+1)/2 it computes, for every channel ci < nch:
//
//	for oy := 0; oy < oh; oy++ {
//		for ox := 0; ox < ow; ox++ {
//			s := b[ci] // 0 if len(b) == 0
//			for ky := 0; ky < 3; ky++ {
//				for kx := 0; kx < 3; kx++ {
//					iy, ix := 2*oy-1+ky, 2*ox-1+kx
//					if 0 <= iy && iy < h && 0 <= ix && ix < wd {
//						s += x[ci*h*wd+iy*wd+ix] * w[ci*9+ky*3+kx]
//					}
//				}
//			}
//			if relu {
//				s = max(s, 0)
//			}
//			out[ci*oh*ow+oy*ow+ox] = s
//		}
//	}
func dw3x3s2Go(x, w, b, out []float32, nch, h, wd int, relu bool) {
	dw3x3Go(Conv{1, h, wd, 1, 3, 2, 1, 1}, x, w, b, out, nch, relu)
}

// dw3x3Go runs dw3x3 on nch consecutive channels.
func dw3x3Go(c Conv, x, w, b, out []float32, nch int, relu bool) {
	plane, oplane := c.InH*c.InW, c.OutH()*c.OutW()
	for ci := 0; ci < nch; ci++ {
		var bv float32
		if len(b) > 0 {
			bv = b[ci]
		}
		dw3x3(c, x[ci*plane:ci*plane+plane], w[ci*9:ci*9+9], bv, out[ci*oplane:ci*oplane+oplane], relu)
	}
}

// dwChannels computes depthwise output channels [c0, c1).
func dwChannels(c Conv, x, w, bias, out []float32, relu bool, post Activation, c0, c1 int) {
	oh, ow := c.OutH(), c.OutW()
	plane, oplane := c.InH*c.InW, oh*ow
	kk := c.K * c.K
	for ci := c0; ci < c1; ci++ {
		var bv float32
		if bias != nil {
			bv = bias[ci]
		}
		xc := x[ci*plane : ci*plane+plane]
		oc := out[ci*oplane : ci*oplane+oplane]
		wc := w[ci*kk : ci*kk+kk]
		switch {
		case c.K == 3 && c.Pad <= 1:
			dw3x3(c, xc, wc, bv, oc, relu)
		case c.Stride == 1 && c.Pad < c.K:
			dwRowsS1(c, xc, wc, bv, oc, relu)
		case c.Pad < c.K:
			dwRowsStrided(c, xc, wc, bv, oc, relu)
		default:
			dwGeneric(c, xc, wc, bv, oc, relu, 0, oh, 0, ow)
		}
		actKernels.active.region(post, oc, 1, len(oc), len(oc))
	}
}

// dwRowsS1 computes one channel of a stride-1 depthwise convolution of any
// kernel size (5×5, 7×7 …; pad < K) tap by tap: for each tap, every output
// row gains w·(the input row shifted by the tap) over the columns where the
// tap is inside the image, one vector Axpy per row and tap, so no pixel
// tests bounds. It equals dwGeneric up to the order of the additions.
func dwRowsS1(c Conv, xc, wc []float32, bv float32, oc []float32, relu bool) {
	oh, ow := c.OutH(), c.OutW()
	for i := range oc[:oh*ow] {
		oc[i] = bv
	}
	for ky := 0; ky < c.K; ky++ {
		for oy := 0; oy < oh; oy++ {
			iy := oy - c.Pad + ky
			if uint(iy) >= uint(c.InH) {
				continue
			}
			xr := xc[iy*c.InW : (iy+1)*c.InW]
			or := oc[oy*ow : (oy+1)*ow]
			for kx := 0; kx < c.K; kx++ {
				// output column ox reads input column ox − Pad + kx
				lo, hi := max(0, c.Pad-kx), min(ow, c.InW+c.Pad-kx)
				if lo >= hi {
					continue
				}
				Axpy(wc[ky*c.K+kx], xr[lo-c.Pad+kx:hi-c.Pad+kx], or[lo:hi])
			}
		}
	}
	if relu {
		for i, v := range oc[:oh*ow] {
			oc[i] = max(v, 0)
		}
	}
}

// dwRowsStrided is dwRowsS1 for any stride: each tap adds w·x over the run
// of output columns where it is inside the image, reading every Stride-th
// input column (a scalar loop without bounds tests per pixel).
func dwRowsStrided(c Conv, xc, wc []float32, bv float32, oc []float32, relu bool) {
	oh, ow := c.OutH(), c.OutW()
	s := c.Stride
	for i := range oc[:oh*ow] {
		oc[i] = bv
	}
	for ky := 0; ky < c.K; ky++ {
		for oy := 0; oy < oh; oy++ {
			iy := oy*s - c.Pad + ky
			if uint(iy) >= uint(c.InH) {
				continue
			}
			xr := xc[iy*c.InW : (iy+1)*c.InW]
			or := oc[oy*ow : (oy+1)*ow]
			for kx := 0; kx < c.K; kx++ {
				// output column ox reads input column ox·s − Pad + kx
				lo := max(0, (c.Pad-kx+s-1)/s)
				hi := min(ow, (c.InW+c.Pad-kx+s-1)/s)
				if lo >= hi {
					continue
				}
				w := wc[ky*c.K+kx]
				off := lo*s - c.Pad + kx
				xs := xr[off : off+(hi-lo-1)*s+1]
				ys := or[lo:hi]
				for j := range ys {
					ys[j] += w * xs[j*s]
				}
			}
		}
	}
	if relu {
		for i, v := range oc[:oh*ow] {
			oc[i] = max(v, 0)
		}
	}
}

// dwGeneric computes output rows [y0, y1) × columns [x0, x1) of one channel
// with bounds checks on every tap.
func dwGeneric(c Conv, xc, wc []float32, bv float32, oc []float32, relu bool, y0, y1, x0, x1 int) {
	ow, k := c.OutW(), c.K
	for oy := y0; oy < y1; oy++ {
		for ox := x0; ox < x1; ox++ {
			s := bv
			for ky := 0; ky < k; ky++ {
				iy := oy*c.Stride - c.Pad + ky
				if uint(iy) >= uint(c.InH) {
					continue
				}
				for kx := 0; kx < k; kx++ {
					ix := ox*c.Stride - c.Pad + kx
					if uint(ix) >= uint(c.InW) {
						continue
					}
					s += xc[iy*c.InW+ix] * wc[ky*k+kx]
				}
			}
			if relu {
				s = max(s, 0) // branch-free: signs are unpredictable
			}
			oc[oy*ow+ox] = s
		}
	}
}

// dw3x3 computes one channel of a 3×3 depthwise convolution, pad 0 or 1.
func dw3x3(c Conv, xc, wc []float32, bv float32, oc []float32, relu bool) {
	oh, ow := c.OutH(), c.OutW()
	s, pad, inW := c.Stride, c.Pad, c.InW
	// Interior: all three input rows/columns inside the image.
	//   oy*s - pad >= 0  and  oy*s - pad + 2 <= InH-1.
	if c.InH+pad < 3 || c.InW+pad < 3 {
		dwGeneric(c, xc, wc, bv, oc, relu, 0, oh, 0, ow)
		return
	}
	ylo, yhi := ceilDiv(pad, s), min(oh-1, (c.InH-3+pad)/s) // inclusive
	xlo, xhi := ceilDiv(pad, s), min(ow-1, (c.InW-3+pad)/s)
	if ylo > yhi || xlo > xhi {
		dwGeneric(c, xc, wc, bv, oc, relu, 0, oh, 0, ow)
		return
	}
	// Borders.
	dwGeneric(c, xc, wc, bv, oc, relu, 0, ylo, 0, ow)
	dwGeneric(c, xc, wc, bv, oc, relu, yhi+1, oh, 0, ow)
	dwGeneric(c, xc, wc, bv, oc, relu, ylo, yhi+1, 0, xlo)
	dwGeneric(c, xc, wc, bv, oc, relu, ylo, yhi+1, xhi+1, ow)

	w9 := wc[:9]
	w0, w1, w2 := w9[0], w9[1], w9[2]
	w3, w4, w5 := w9[3], w9[4], w9[5]
	w6, w7, w8 := w9[6], w9[7], w9[8]
	n := xhi - xlo + 1
	for oy := ylo; oy <= yhi; oy++ {
		iy := oy*s - pad
		ix0 := xlo*s - pad
		// Each row slice covers exactly the taps the interior needs.
		span := (n-1)*s + 3
		r0 := xc[iy*inW+ix0 : iy*inW+ix0+span]
		r1 := xc[(iy+1)*inW+ix0 : (iy+1)*inW+ix0+span]
		r2 := xc[(iy+2)*inW+ix0 : (iy+2)*inW+ix0+span]
		dst := oc[oy*ow+xlo : oy*ow+xlo+n]
		if s == 1 {
			for i := range dst {
				a := r0[i : i+3 : i+3]
				b := r1[i : i+3 : i+3]
				d := r2[i : i+3 : i+3]
				// Three independent row sums keep the add chain short.
				v := (bv + a[0]*w0 + a[1]*w1 + a[2]*w2) +
					(b[0]*w3 + b[1]*w4 + b[2]*w5) +
					(d[0]*w6 + d[1]*w7 + d[2]*w8)
				if relu {
					v = max(v, 0) // branch-free: signs are unpredictable
				}
				dst[i] = v
			}
		} else {
			for i := range dst {
				o := i * s
				a := r0[o : o+3 : o+3]
				b := r1[o : o+3 : o+3]
				d := r2[o : o+3 : o+3]
				// Three independent row sums keep the add chain short.
				v := (bv + a[0]*w0 + a[1]*w1 + a[2]*w2) +
					(b[0]*w3 + b[1]*w4 + b[2]*w5) +
					(d[0]*w6 + d[1]*w7 + d[2]*w8)
				if relu {
					v = max(v, 0) // branch-free: signs are unpredictable
				}
				dst[i] = v
			}
		}
	}
}
