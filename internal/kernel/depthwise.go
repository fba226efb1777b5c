package kernel

// depthwise computes a depthwise convolution (Groups == InC == OutC) directly,
// one channel per task, with bias and ReLU fused. 3×3 kernels with pad ≤ 1 use
// an interior fast path without per-tap bounds checks; the border rows and
// columns (and any other kernel size) use the checked generic loop.
func depthwise(c Conv, x, w, bias, out []float32, relu bool) {
	oh, ow := c.OutH(), c.OutW()
	oplane := oh * ow
	kk := c.K * c.K
	ch := c.InC
	// Group channels into tasks of roughly equal, not-too-small size.
	per := max(1, min(ch, (1<<14)/max(1, oplane*kk)))
	nTasks := ceilDiv(ch, per)
	workers := workersFor(nTasks, ch*oplane*kk)
	if workers <= 1 {
		dwChannels(c, x, w, bias, out, relu, 0, ch)
		return
	}
	parallelFor(nTasks, workers, func(_ *scratch, t int) {
		dwChannels(c, x, w, bias, out, relu, t*per, min(ch, (t+1)*per))
	})
}

// dwChannels computes depthwise output channels [c0, c1).
func dwChannels(c Conv, x, w, bias, out []float32, relu bool, c0, c1 int) {
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
		if c.K == 3 && c.Pad <= 1 {
			dw3x3(c, xc, wc, bv, oc, relu)
		} else {
			dwGeneric(c, xc, wc, bv, oc, relu, 0, oh, 0, ow)
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
