package train

import "github.com/mobileone-go/mobileone/internal/kernel"

// Depthwise backward without im2col.
//
// For a depthwise convolution with stride s and padding P, split the
// zero-padded input plane into s×s phases: phase (a, b) is the plane
// xq[i][j] = x[s·i+a−P][s·j+b−P] (zero outside the image) of PH×PW values,
// PH = OH+R, PW = OW+R, R = (K−1)/s. Tap (ky, kx) = (s·dy+a, s·dx+b) then
// reads xq_(a,b)[oy+dy][ox+dx] for output (oy, ox). If dZ is laid out the
// same way (dzq, PH×PW per image, zero outside OH×OW), the tap's weight
// gradient Σ dZ·x is a single dot product of dzq with xq_(a,b) shifted by
// dy·PW+dx over all images of the batch at once: the padding zeros of dzq
// cancel every term that would cross a row or an image. The input gradient
// is the adjoint: axpys into phase planes, added back into dx.

// dwScratch is one worker's buffers for dwBackward.
type dwScratch struct {
	xq, dzq, dxq []float32
}

// dwBackward writes the depthwise weight gradient dw (Cout, K·K) and, if dx
// is not nil, adds the input gradient to dx. One task per input channel owns
// that channel's weight gradients (of every branch) and input gradient.
// Branches flagged in c.CenterOnly (a zero-padded 1×1 kernel) only use the
// centre tap; their other taps are reported as 0.
func (c convOp) dwBackward(x *act, w, dz, dw, dx []float32, oh, ow int, ws *convWork) {
	kk := c.K * c.K
	nb := c.Cout / c.Cin
	mo := x.N * oh * ow
	s := c.S
	r := (c.K - 1) / s
	ph, pw := oh+r, ow+r
	lq := x.N * ph * pw // one phase plane stack
	lr := lq - r*pw - r // dot length: every tap offset stays in bounds
	ctr := (c.K/2)*c.K + c.K/2
	plane := x.N * x.H * x.W
	if nt := kernel.Threads(); len(ws.dws) < nt {
		ws.dws = append(ws.dws, make([]dwScratch, nt-len(ws.dws))...)
	}
	// tap offsets within the phase stack: phase index·lq + dy·PW + dx
	var offs [64]int
	toff := offs[:0]
	if kk > len(offs) {
		toff = make([]int, 0, kk)
	}
	for t := 0; t < kk; t++ {
		ky, kx := t/c.K, t%c.K
		toff = append(toff, ((ky%s)*s+kx%s)*lq+(ky/s)*pw+kx/s)
	}
	fused := s == 1 && c.K == 3
	// Small planes carry relatively much padding: the im2col form (K·K
	// rows of exactly N·OH·OW values, plain dot products) is then cheaper.
	// Costs in units of a dot3 multiply-add (a plain dot's is ~1.5).
	rate := 1.5
	if fused {
		rate = 1
	}
	if costPoly, costCol := float64(nb*lq)*(1+float64(kk)*rate)+float64(s*s*lq),
		float64(kk*mo)*(1+1.5*float64(nb)); costCol < costPoly {
		c.dwBackwardIm2col(x, w, dz, dw, dx, oh, ow, ws)
		return
	}
	parForW(c.Cin, nb*(kk+2)*lq, func(wk, lo, hi int) {
		sc := &ws.dws[wk]
		sc.xq = grow(sc.xq, s*s*lq)
		sc.dzq = growZero(sc.dzq, lq) // the padding stays zero
		if dx != nil {
			sc.dxq = grow(sc.dxq, s*s*lq)
		}
		dzq := sc.dzq
		for ci := lo; ci < hi; ci++ {
			c.phases(x.Data[ci*plane:(ci+1)*plane], x.N, x.H, x.W, ph, pw, sc.xq)
			if dx != nil {
				clear(sc.dxq)
			}
			for b := 0; b < nb; b++ {
				o := b*c.Cin + ci
				src := dz[o*mo : (o+1)*mo]
				for i := 0; i < x.N*oh; i++ {
					copy(dzq[i/oh*ph*pw+i%oh*pw:][:ow], src[i*ow:(i+1)*ow])
				}
				g := dw[o*kk : (o+1)*kk]
				center := b < len(c.CenterOnly) && c.CenterOnly[b]
				switch {
				case center:
					clear(g)
					g[ctr] = dotLong(dzq[:lr], sc.xq[toff[ctr]:])
				case fused:
					dot3x3(dzq[:lr], sc.xq, pw, g)
				default:
					for t, off := range toff {
						g[t] = dotLong(dzq[:lr], sc.xq[off:])
					}
				}
				if dx == nil {
					continue
				}
				wr := w[o*kk : (o+1)*kk]
				for t, off := range toff {
					if center && t != ctr {
						continue
					}
					axpy(wr[t], dzq[:lr], sc.dxq[off:off+lr])
				}
			}
			if dx != nil {
				c.unphase(sc.dxq, x.N, x.H, x.W, ph, pw, dx[ci*plane:(ci+1)*plane])
			}
		}
	})
}

// dwBackwardIm2col is dwBackward through each channel's im2col matrix
// (K·K, N·OH·OW): the weight gradients are dot products of its rows with
// each branch's dZ row, the input gradient col2im of Σ_b w_b·dZ_b.
func (c convOp) dwBackwardIm2col(x *act, w, dz, dw, dx []float32, oh, ow int, ws *convWork) {
	kk := c.K * c.K
	nb := c.Cout / c.Cin
	mo := x.N * oh * ow
	ctr := (c.K/2)*c.K + c.K/2
	if nt := kernel.Threads(); len(ws.dws) < nt {
		ws.dws = append(ws.dws, make([]dwScratch, nt-len(ws.dws))...)
	}
	parForW(c.Cin, nb*2*kk*mo, func(wk, lo, hi int) {
		sc := &ws.dws[wk]
		sc.xq = grow(sc.xq, kk*mo)
		col := sc.xq
		var dcol []float32
		if dx != nil {
			sc.dxq = grow(sc.dxq, kk*mo)
			dcol = sc.dxq
		}
		one := convOp{Cin: 1, Cout: 1, K: c.K, S: c.S, P: c.P}
		for ci := lo; ci < hi; ci++ {
			plane := x.H * x.W * x.N
			xc := &act{C: 1, N: x.N, H: x.H, W: x.W, Data: x.Data[ci*plane : (ci+1)*plane]}
			one.im2colSerial(xc, oh, ow, col)
			if dcol != nil {
				clear(dcol)
			}
			for b := 0; b < nb; b++ {
				o := b*c.Cin + ci
				dzr := dz[o*mo : (o+1)*mo]
				center := b < len(c.CenterOnly) && c.CenterOnly[b]
				for t := 0; t < kk; t++ {
					if center && t != ctr {
						dw[o*kk+t] = 0
						continue
					}
					dw[o*kk+t] = dotLong(dzr, col[t*mo:(t+1)*mo])
					if dcol != nil {
						axpy(w[o*kk+t], dzr, dcol[t*mo:(t+1)*mo])
					}
				}
			}
			if dx != nil {
				one.col2imSerial(dcol, x.N, x.H, x.W, oh, ow, dx[ci*plane:(ci+1)*plane])
			}
		}
	})
}

// phases writes the s×s phase planes (each n·ph·pw) of one channel's
// images xc (n, h, w) to xq.
func (c convOp) phases(xc []float32, n, h, w, ph, pw int, xq []float32) {
	s := c.S
	lq := n * ph * pw
	for a := 0; a < s; a++ {
		for b := 0; b < s; b++ {
			q := xq[(a*s+b)*lq : (a*s+b+1)*lq]
			for img := 0; img < n; img++ {
				xi := xc[img*h*w : (img+1)*h*w]
				for i := 0; i < ph; i++ {
					d := q[(img*ph+i)*pw:][:pw]
					iy := s*i + a - c.P
					if uint(iy) >= uint(h) {
						clear(d)
						continue
					}
					row := xi[iy*w : (iy+1)*w]
					if s == 1 {
						// ix = j + b − P: zeros, a copy of the row, zeros.
						j0 := max(0, c.P-b)
						j1 := min(pw, w+c.P-b)
						clear(d[:j0])
						if j1 > j0 {
							copy(d[j0:j1], row[j0+b-c.P:])
							clear(d[j1:])
						} else {
							clear(d[j0:])
						}
						continue
					}
					for j := range d {
						ix := s*j + b - c.P
						if uint(ix) < uint(w) {
							d[j] = row[ix]
						} else {
							d[j] = 0
						}
					}
				}
			}
		}
	}
}

// unphase adds the phase planes dxq back into one channel's input gradient
// dxc (n, h, w): the adjoint of phases.
func (c convOp) unphase(dxq []float32, n, h, w, ph, pw int, dxc []float32) {
	s := c.S
	lq := n * ph * pw
	for a := 0; a < s; a++ {
		for b := 0; b < s; b++ {
			q := dxq[(a*s+b)*lq : (a*s+b+1)*lq]
			for img := 0; img < n; img++ {
				di := dxc[img*h*w : (img+1)*h*w]
				for i := 0; i < ph; i++ {
					iy := s*i + a - c.P
					if uint(iy) >= uint(h) {
						continue
					}
					src := q[(img*ph+i)*pw:][:pw]
					row := di[iy*w : (iy+1)*w]
					for j, v := range src {
						ix := s*j + b - c.P
						if uint(ix) < uint(w) {
							row[ix] += v
						}
					}
				}
			}
		}
	}
}

// longChunk is how many products dotLong and dot3x3 add in float32 before
// folding into float64.
const longChunk = 512

// dotLong returns Σ a[i]·b[i] (b at least as long as a): float32 partial
// sums over chunks, accumulated in float64.
func dotLong(a, b []float32) float32 {
	var s float64
	for len(a) > 0 {
		n := min(len(a), longChunk)
		s += float64(dot(a[:n], b[:n]))
		a, b = a[n:], b[n:]
	}
	return float32(s)
}

// dot3x3 writes g[ky·3+kx] = Σ d[i]·xq[i+ky·pw+kx] for a 3×3 kernel, in one
// pass over d per kernel row (xq at least len(d)+2·pw+2 long).
func dot3x3(d, xq []float32, pw int, g []float32) {
	for ky := 0; ky < 3; ky++ {
		dot3(d, xq[ky*pw:], g[ky*3:ky*3+3])
	}
}

// dot3 writes g[k] = Σ d[i]·x[i+k] for k < 3 (x at least len(d)+2 long):
// float32 partial sums over chunks, accumulated in float64.
func dot3(d, x []float32, g []float32) {
	var s0, s1, s2 float64
	x = x[:len(d)+2]
	for len(d) > 0 {
		n := min(len(d), longChunk)
		dd := d[:n]
		x0, x1, x2 := x[0:n], x[1:n+1], x[2:n+2]
		var a0, a1, a2, b0, b1, b2 float32
		i := 0
		for ; i+2 <= len(dd); i += 2 {
			p := dd[i : i+2 : i+2]
			v, w := p[0], p[1]
			a0 += v * x0[i]
			a1 += v * x1[i]
			a2 += v * x2[i]
			b0 += w * x0[i+1]
			b1 += w * x1[i+1]
			b2 += w * x2[i+1]
		}
		if i < len(dd) {
			v := dd[i]
			a0 += v * x0[i]
			a1 += v * x1[i]
			a2 += v * x2[i]
		}
		s0 += float64(a0 + b0)
		s1 += float64(a1 + b1)
		s2 += float64(a2 + b2)
		d, x = d[n:], x[n:]
	}
	g[0], g[1], g[2] = float32(s0), float32(s1), float32(s2)
}
