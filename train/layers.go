package train

import (
	"math"
	"sync"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Activations inside the trainable net are channel-major, (C, N, H, W):
// element (c, n, y, x) is at ((c*N+n)*H+y)*W+x. Every channel is then one
// contiguous row of M = N·H·W values, so a 1×1 convolution over the whole
// batch is one GEMM W(Cout, Cin)·X(Cin, M), BatchNorm statistics are row
// reductions, and a depthwise convolution is a depthwise convolution of C·N
// planes.

// act is a channel-major activation.
type act struct {
	C, N, H, W int
	Data       []float32
}

// M is the number of values per channel.
func (a *act) M() int { return a.N * a.H * a.W }

// grow returns buf resliced to n values, reallocating if too small. The
// contents are unspecified.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// growZero is grow with the first n values set to zero.
func growZero(buf []float32, n int) []float32 {
	buf = grow(buf, n)
	clear(buf)
	return buf
}

// parFor runs fn over [0, n) split into contiguous chunks on up to
// kernel.Threads() goroutines (one if work, in multiply-adds, is small).
func parFor(n, work int, fn func(lo, hi int)) {
	parForW(n, work, func(_, lo, hi int) { fn(lo, hi) })
}

// parForW is parFor also passing the chunk's index, which is below
// kernel.Threads() (so per-worker scratch can be indexed by it).
func parForW(n, work int, fn func(wk, lo, hi int)) {
	w := kernel.Threads()
	if work < 1<<15 || w < 2 || n < 2 {
		fn(0, 0, n)
		return
	}
	w = min(w, n)
	chunk := (n + w - 1) / w
	var wg sync.WaitGroup
	for lo, wk := chunk, 1; lo < n; lo, wk = lo+chunk, wk+1 {
		hi := min(n, lo+chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(wk, lo, hi)
		}()
	}
	fn(0, 0, min(n, chunk))
	wg.Wait()
}

// transpose writes dst (cols × rows) = src (rows × cols)ᵀ.
func transpose(src []float32, rows, cols int, dst []float32) {
	const bs = 32
	src, dst = src[:rows*cols], dst[:rows*cols]
	parFor((rows+bs-1)/bs, rows*cols, func(lo, hi int) {
		for i0 := lo * bs; i0 < min(rows, hi*bs); i0 += bs {
			i1 := min(rows, i0+bs)
			for j0 := 0; j0 < cols; j0 += bs {
				j1 := min(cols, j0+bs)
				i := i0
				for ; i+4 <= i1; i += 4 {
					r0 := src[i*cols : i*cols+cols]
					r1 := src[(i+1)*cols : (i+1)*cols+cols]
					r2 := src[(i+2)*cols : (i+2)*cols+cols]
					r3 := src[(i+3)*cols : (i+3)*cols+cols]
					for j := j0; j < j1; j++ {
						d := dst[j*rows+i : j*rows+i+4 : j*rows+i+4]
						d[0], d[1], d[2], d[3] = r0[j], r1[j], r2[j], r3[j]
					}
				}
				for ; i < i1; i++ {
					row := src[i*cols : i*cols+cols]
					for j := j0; j < j1; j++ {
						dst[j*rows+i] = row[j]
					}
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------

// convOp is a convolution of a channel-major batch with a square kernel,
// either dense (groups 1) or depthwise with a channel multiplier: when DW is
// set, output channel o reads input channel o mod Cin only (Cout is a
// multiple of Cin). Stacking the k branches (and the zero-padded 1×1 scale
// branch) of a block into one convOp with Cout = branches·C lets them share
// one GEMM.
//
//	w: dense (Cout, Cin, K, K); depthwise (Cout, 1, K, K)
type convOp struct {
	Cin, Cout, K, S, P int
	DW                 bool
	CenterOnly         []bool // per branch of a depthwise stack: a zero-padded 1×1 kernel
}

func (c convOp) outSize(h, w int) (int, int) {
	return (h+2*c.P-c.K)/c.S + 1, (w+2*c.P-c.K)/c.S + 1
}

// pointwise reports whether the dense conv is a plain GEMM on the input.
func (c convOp) pointwise() bool { return !c.DW && c.K == 1 && c.S == 1 && c.P == 0 }

// convWork holds reusable scratch buffers of a convOp.
type convWork struct {
	col, colT, wT, dcol, dw, wexp []float32
	dws                           []dwScratch // per worker of dwBackward
}

// im2col writes col (Cin·K·K, N·OH·OW): row (ci·K+ky)·K+kx, column
// (n·OH+oy)·OW+ox, zero outside the image.
func (c convOp) im2col(x *act, oh, ow int, col []float32) {
	kk := c.K * c.K
	parFor(c.Cin*kk, c.Cin*kk*x.N*oh*ow, func(lo, hi int) { c.im2colRows(x, oh, ow, col, lo, hi) })
}

// im2colSerial is im2col on the calling goroutine.
func (c convOp) im2colSerial(x *act, oh, ow int, col []float32) {
	c.im2colRows(x, oh, ow, col, 0, c.Cin*c.K*c.K)
}

// im2colRows writes rows [lo, hi) of the im2col matrix.
func (c convOp) im2colRows(x *act, oh, ow int, col []float32, lo, hi int) {
	mo := x.N * oh * ow
	kk := c.K * c.K
	for p := lo; p < hi; p++ {
		ci, ky, kx := p/kk, p%kk/c.K, p%c.K
		dst := col[p*mo : (p+1)*mo]
		for n := 0; n < x.N; n++ {
			plane := x.Data[(ci*x.N+n)*x.H*x.W:][:x.H*x.W]
			for oy := 0; oy < oh; oy++ {
				d := dst[(n*oh+oy)*ow:][:ow]
				iy := oy*c.S - c.P + ky
				if uint(iy) >= uint(x.H) {
					clear(d)
					continue
				}
				row := plane[iy*x.W:][:x.W]
				for ox := range d {
					ix := ox*c.S - c.P + kx
					if uint(ix) < uint(x.W) {
						d[ox] = row[ix]
					} else {
						d[ox] = 0
					}
				}
			}
		}
	}
}

// col2im adds the columns of dcol back into dx (the adjoint of im2col).
func (c convOp) col2im(dcol []float32, n, h, w, oh, ow int, dx []float32) {
	parFor(c.Cin, c.Cin*c.K*c.K*n*oh*ow, func(lo, hi int) { c.col2imChannels(dcol, n, h, w, oh, ow, dx, lo, hi) })
}

// col2imSerial is col2im on the calling goroutine.
func (c convOp) col2imSerial(dcol []float32, n, h, w, oh, ow int, dx []float32) {
	c.col2imChannels(dcol, n, h, w, oh, ow, dx, 0, c.Cin)
}

// col2imChannels adds the rows of input channels [lo, hi).
func (c convOp) col2imChannels(dcol []float32, n, h, w, oh, ow int, dx []float32, lo, hi int) {
	mo := n * oh * ow
	kk := c.K * c.K
	for ci := lo; ci < hi; ci++ {
		for t := 0; t < kk; t++ {
			ky, kx := t/c.K, t%c.K
			src := dcol[(ci*kk+t)*mo:][:mo]
			for b := 0; b < n; b++ {
				plane := dx[(ci*n+b)*h*w:][:h*w]
				for oy := 0; oy < oh; oy++ {
					iy := oy*c.S - c.P + ky
					if uint(iy) >= uint(h) {
						continue
					}
					s := src[(b*oh+oy)*ow:][:ow]
					row := plane[iy*w:][:w]
					for ox, v := range s {
						ix := ox*c.S - c.P + kx
						if uint(ix) < uint(w) {
							row[ix] += v
						}
					}
				}
			}
		}
	}
}

// forward computes z (Cout, N, OH, OW) = conv(x, w).
func (c convOp) forward(x *act, w []float32, z []float32, ws *convWork) {
	oh, ow := c.outSize(x.H, x.W)
	mo := x.N * oh * ow
	if c.DW {
		// One depthwise call per output-channel block of Cin: planes
		// (ci, n) are the C·N "channels" of kernel.Conv2D, with the
		// weights repeated for every image.
		kk := c.K * c.K
		cn := c.Cin * x.N
		ws.wexp = grow(ws.wexp, cn*kk)
		p := kernel.Conv{InC: cn, InH: x.H, InW: x.W, OutC: cn, K: c.K, Stride: c.S, Pad: c.P, Groups: cn}
		for b := 0; b < c.Cout/c.Cin; b++ {
			for ci := 0; ci < c.Cin; ci++ {
				src := w[(b*c.Cin+ci)*kk:][:kk]
				for n := 0; n < x.N; n++ {
					copy(ws.wexp[(ci*x.N+n)*kk:], src)
				}
			}
			kernel.Conv2D(p, x.Data, ws.wexp, nil, z[b*c.Cin*mo:(b+1)*c.Cin*mo], false)
		}
		return
	}
	kd := c.Cin * c.K * c.K
	col := x.Data
	if !c.pointwise() {
		ws.col = grow(ws.col, kd*mo)
		c.im2col(x, oh, ow, ws.col)
		col = ws.col
	}
	kernel.Gemm(c.Cout, mo, kd, w, col, z, false)
}

// backward computes dw (overwritten) and, if dx is not nil, adds the input
// gradient to dx (channel-major like x), given dz (Cout, N, OH, OW). For a
// dense non-pointwise conv, forward must have run on the same x and ws (the
// im2col matrix is reused).
func (c convOp) backward(x *act, w, dz, dw, dx []float32, ws *convWork) {
	oh, ow := c.outSize(x.H, x.W)
	mo := x.N * oh * ow
	if c.DW {
		if dx != nil && c.S == 1 && 2*c.P == c.K-1 {
			// Same-padded stride 1: the input gradient is a depthwise
			// convolution of dZ with the flipped kernel (fast kernel).
			c.dwBackward(x, w, dz, dw, nil, oh, ow, ws)
			c.dwInputGradConv(x, w, dz, dx, ws)
			return
		}
		c.dwBackward(x, w, dz, dw, dx, oh, ow, ws)
		return
	}
	kd := c.Cin * c.K * c.K
	col := x.Data
	if !c.pointwise() {
		col = ws.col[:kd*mo]
	}
	// dW (Cout, kd) = dZ (Cout, mo) · colᵀ (mo, kd)
	ws.colT = grow(ws.colT, mo*kd)
	transpose(col, kd, mo, ws.colT)
	kernel.Gemm(c.Cout, kd, mo, dz, ws.colT, dw, false)
	if dx == nil {
		return
	}
	// dcol (kd, mo) = Wᵀ (kd, Cout) · dZ (Cout, mo)
	ws.wT = grow(ws.wT, kd*c.Cout)
	transpose(w, c.Cout, kd, ws.wT)
	if c.pointwise() {
		kernel.Gemm(kd, mo, c.Cout, ws.wT, dz, dx, true)
		return
	}
	ws.dcol = grow(ws.dcol, kd*mo)
	kernel.Gemm(kd, mo, c.Cout, ws.wT, dz, ws.dcol, false)
	c.col2im(ws.dcol, x.N, x.H, x.W, oh, ow, dx)
}

// dwInputGradConv adds to dx the input gradient of a same-padded stride-1
// depthwise stack: Σ_b conv(dZ_b, flip(w_b)), through kernel.Conv2D.
func (c convOp) dwInputGradConv(x *act, w, dz, dx []float32, ws *convWork) {
	kk := c.K * c.K
	cn := c.Cin * x.N
	size := cn * x.H * x.W
	ws.wexp = grow(ws.wexp, cn*kk)
	ws.dcol = grow(ws.dcol, size)
	p := kernel.Conv{InC: cn, InH: x.H, InW: x.W, OutC: cn, K: c.K, Stride: 1, Pad: c.P, Groups: cn}
	for b := 0; b < c.Cout/c.Cin; b++ {
		for ci := 0; ci < c.Cin; ci++ {
			src := w[(b*c.Cin+ci)*kk:][:kk]
			dst := ws.wexp[ci*x.N*kk:][:x.N*kk]
			for t := 0; t < kk; t++ {
				dst[t] = src[kk-1-t]
			}
			for n := 1; n < x.N; n++ {
				copy(dst[n*kk:(n+1)*kk], dst[:kk])
			}
		}
		kernel.Conv2D(p, dz[b*size:(b+1)*size], ws.wexp, nil, ws.dcol, false)
		tmp := ws.dcol
		parFor(len(tmp)/4096+1, len(tmp), func(lo, hi int) {
			i1 := min(len(tmp), hi*4096)
			d, s := dx[lo*4096:i1], tmp[lo*4096:i1]
			for i, v := range s {
				d[i] += v
			}
		})
	}
}

// dot returns Σ a[i]·b[i] (float32 products, four partial sums, float64 total).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		p, q := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += p[0] * q[0]
		s1 += p[1] * q[1]
		s2 += p[2] * q[2]
		s3 += p[3] * q[3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return float32(float64(s0) + float64(s1) + float64(s2) + float64(s3))
}

// axpy adds alpha·x to y.
func axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		p, q := x[i:i+4:i+4], y[i:i+4:i+4]
		q[0] += alpha * p[0]
		q[1] += alpha * p[1]
		q[2] += alpha * p[2]
		q[3] += alpha * p[3]
	}
	for ; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}

// ---------------------------------------------------------------------------
// BatchNorm
// ---------------------------------------------------------------------------

// bnMomentum is PyTorch's default BatchNorm momentum.
const bnMomentum = 0.1

// bnParams is one BatchNorm's tensors as flat slices.
type bnParams struct {
	gamma, beta, rmean, rvar []float32
	eps                      float64
}

// bnTrainForward normalises the rows z[c·m:(c+1)·m] (c < C) with the batch
// statistics, overwriting them with x̂, adds γ·x̂+β to sum (if not nil), stores
// 1/sqrt(var+eps) in invstd and, if update, updates the running statistics
// as PyTorch does (momentum 0.1, unbiased variance).
func bnTrainForward(bn bnParams, z []float32, m int, sum []float32, invstd []float32, update bool) {
	bnTrainForwardTo(bn, z, z, m, sum, invstd, update)
}

// bnTrainForwardTo is bnTrainForward reading the rows from src and writing
// x̂ to xhat (which may be src).
func bnTrainForwardTo(bn bnParams, src, xhat []float32, m int, sum []float32, invstd []float32, update bool) {
	c := len(bn.gamma)
	parFor(c, 3*c*m, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			row := src[ch*m : (ch+1)*m]
			// One pass around a shift (the first value), which keeps
			// E[x²]−E[x]² free of cancellation for float32 data.
			shift := float64(row[0])
			s, sq := shiftedSums(row, shift)
			mean := shift + s/float64(m)
			q := max(0, sq-s*s/float64(m)) // Σ(x−mean)²
			v := q / float64(m)
			is := 1 / math.Sqrt(v+bn.eps)
			invstd[ch] = float32(is)
			mf, isf := float32(mean), float32(is)
			dst := xhat[ch*m : (ch+1)*m]
			dst = dst[:len(row)]
			if sum != nil {
				g, b := bn.gamma[ch], bn.beta[ch]
				out := sum[ch*m : (ch+1)*m]
				out = out[:len(row)]
				for i, x := range row {
					h := (x - mf) * isf
					dst[i] = h
					out[i] += g*h + b
				}
			} else {
				for i, x := range row {
					dst[i] = (x - mf) * isf
				}
			}
			if update {
				unbiased := v
				if m > 1 {
					unbiased = q / float64(m-1)
				}
				bn.rmean[ch] = float32((1-bnMomentum)*float64(bn.rmean[ch]) + bnMomentum*mean)
				bn.rvar[ch] = float32((1-bnMomentum)*float64(bn.rvar[ch]) + bnMomentum*unbiased)
			}
		}
	})
}

// shiftedSums returns Σ(x−shift) and Σ(x−shift)² in float64, in four
// interleaved partial sums (independent dependency chains).
func shiftedSums(row []float32, shift float64) (s, sq float64) {
	var s0, s1, s2, s3, q0, q1, q2, q3 float64
	i := 0
	for ; i+4 <= len(row); i += 4 {
		p := row[i : i+4 : i+4]
		d0, d1, d2, d3 := float64(p[0])-shift, float64(p[1])-shift, float64(p[2])-shift, float64(p[3])-shift
		s0 += d0
		s1 += d1
		s2 += d2
		s3 += d3
		q0 += d0 * d0
		q1 += d1 * d1
		q2 += d2 * d2
		q3 += d3 * d3
	}
	for ; i < len(row); i++ {
		d := float64(row[i]) - shift
		s0 += d
		q0 += d * d
	}
	return (s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3)
}

// dotSums returns Σd and Σd·x (x at least as long as d) in float64, like
// shiftedSums.
func dotSums(d, x []float32) (sd, sdx float64) {
	x = x[:len(d)]
	var s0, s1, s2, s3, q0, q1, q2, q3 float64
	i := 0
	for ; i+4 <= len(d); i += 4 {
		p, q := d[i:i+4:i+4], x[i:i+4:i+4]
		p0, p1, p2, p3 := float64(p[0]), float64(p[1]), float64(p[2]), float64(p[3])
		s0 += p0
		s1 += p1
		s2 += p2
		s3 += p3
		q0 += p0 * float64(q[0])
		q1 += p1 * float64(q[1])
		q2 += p2 * float64(q[2])
		q3 += p3 * float64(q[3])
	}
	for ; i < len(d); i++ {
		s0 += float64(d[i])
		q0 += float64(d[i]) * float64(x[i])
	}
	return (s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3)
}

// bnEvalForward adds BN(z) with the running statistics to sum.
func bnEvalForward(bn bnParams, z []float32, m int, sum []float32) {
	c := len(bn.gamma)
	parFor(c, c*m, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			t := float64(bn.gamma[ch]) / math.Sqrt(float64(bn.rvar[ch])+bn.eps)
			b := float32(float64(bn.beta[ch]) - float64(bn.rmean[ch])*t)
			tf := float32(t)
			out := sum[ch*m : (ch+1)*m]
			for i, x := range z[ch*m : (ch+1)*m] {
				out[i] += x*tf + b
			}
		}
	})
}

// bnBackward turns x̂ (rows of xhat) into the input gradient given dy (rows
// of dy, shared by all branches): it adds Σdy·x̂ to dgamma and Σdy to dbeta,
// and writes dz = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂)) into dz (which may
// alias xhat).
func bnBackward(gamma, invstd []float32, xhat, dy []float32, m int, dgamma, dbeta []float32, dz []float32) {
	c := len(gamma)
	parFor(c, 3*c*m, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			xr := xhat[ch*m : (ch+1)*m]
			dr := dy[ch*m : (ch+1)*m]
			sd, sdx := dotSums(dr, xr)
			dgamma[ch] += float32(sdx)
			dbeta[ch] += float32(sd)
			k := gamma[ch] * invstd[ch]
			md, mdx := float32(sd/float64(m)), float32(sdx/float64(m))
			out := dz[ch*m : (ch+1)*m]
			out = out[:len(dr)]
			xr = xr[:len(dr)]
			for i, d := range dr {
				out[i] = k * (d - md - xr[i]*mdx)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Squeeze-Excite
// ---------------------------------------------------------------------------

// seParams are the SE weights as flat slices: reduce (hid, C) + (hid),
// expand (C, hid) + (C).
type seParams struct {
	c, hid     int
	wr, br     []float32
	we, be     []float32
	gwr, gbr   []float32 // gradients (accumulated)
	gwe, gbe   []float32
	mean, h, g []float32 // caches: (N, C), (N, hid), (N, C)
}

// forward computes out = s·gate for s (C, N, HW) channel-major.
func (p *seParams) forward(s []float32, n, hw int, out []float32) {
	c, hid := p.c, p.hid
	p.mean = grow(p.mean, n*c)
	p.h = grow(p.h, n*hid)
	p.g = grow(p.g, n*c)
	for ch := 0; ch < c; ch++ {
		for b := 0; b < n; b++ {
			var sum float64
			for _, v := range s[(ch*n+b)*hw:][:hw] {
				sum += float64(v)
			}
			p.mean[b*c+ch] = float32(sum / float64(hw))
		}
	}
	for b := 0; b < n; b++ {
		m := p.mean[b*c : (b+1)*c]
		for j := 0; j < hid; j++ {
			acc := float64(p.br[j])
			for ch, w := range p.wr[j*c : (j+1)*c] {
				acc += float64(w) * float64(m[ch])
			}
			p.h[b*hid+j] = float32(max(acc, 0))
		}
		h := p.h[b*hid : (b+1)*hid]
		for ch := 0; ch < c; ch++ {
			acc := float64(p.be[ch])
			for j, w := range p.we[ch*hid : (ch+1)*hid] {
				acc += float64(w) * float64(h[j])
			}
			p.g[b*c+ch] = float32(1 / (1 + math.Exp(-acc)))
		}
	}
	parFor(c, c*n*hw, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			for b := 0; b < n; b++ {
				g := p.g[b*c+ch]
				src := s[(ch*n+b)*hw:][:hw]
				dst := out[(ch*n+b)*hw:][:hw]
				for i, v := range src {
					dst[i] = v * g
				}
			}
		}
	})
}

// backward turns d (the gradient of out, (C, N, HW)) into the gradient of
// s in place and accumulates the SE weight gradients.
func (p *seParams) backward(s, d []float32, n, hw int) {
	c, hid := p.c, p.hid
	da := make([]float64, n*c) // gradient of the gate's pre-activation
	for ch := 0; ch < c; ch++ {
		for b := 0; b < n; b++ {
			src := s[(ch*n+b)*hw:][:hw]
			var dg float64
			for i, v := range d[(ch*n+b)*hw:][:hw] {
				dg += float64(v) * float64(src[i])
			}
			g := float64(p.g[b*c+ch])
			da[b*c+ch] = dg * g * (1 - g)
		}
	}
	dh := make([]float64, n*hid)
	for b := 0; b < n; b++ {
		h := p.h[b*hid : (b+1)*hid]
		for ch := 0; ch < c; ch++ {
			a := da[b*c+ch]
			p.gbe[ch] += float32(a)
			row := p.we[ch*hid : (ch+1)*hid]
			gr := p.gwe[ch*hid : (ch+1)*hid]
			for j := range row {
				gr[j] += float32(a * float64(h[j]))
				dh[b*hid+j] += a * float64(row[j])
			}
		}
	}
	dm := make([]float64, n*c)
	for b := 0; b < n; b++ {
		m := p.mean[b*c : (b+1)*c]
		for j := 0; j < hid; j++ {
			if p.h[b*hid+j] <= 0 {
				continue
			}
			g := dh[b*hid+j]
			p.gbr[j] += float32(g)
			row := p.wr[j*c : (j+1)*c]
			gr := p.gwr[j*c : (j+1)*c]
			for ch := range row {
				gr[ch] += float32(g * float64(m[ch]))
				dm[b*c+ch] += g * float64(row[ch])
			}
		}
	}
	parFor(c, c*n*hw, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			for b := 0; b < n; b++ {
				g := p.g[b*c+ch]
				add := float32(dm[b*c+ch] / float64(hw))
				dr := d[(ch*n+b)*hw:][:hw]
				for i, v := range dr {
					dr[i] = v*g + add
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------
// ReLU
// ---------------------------------------------------------------------------

// reluInPlace clamps x at zero.
func reluInPlace(x []float32) {
	parFor(len(x)/4096+1, len(x), func(lo, hi int) {
		for i := lo * 4096; i < min(len(x), hi*4096); i++ {
			x[i] = max(x[i], 0)
		}
	})
}

// reluBackward zeroes d where the ReLU output y is not positive (y >= 0,
// so y > 0 exactly when its bits are not zero; branch-free, since the signs
// are unpredictable).
func reluBackward(y, d []float32) {
	parFor(len(d)/4096+1, len(d), func(lo, hi int) {
		i1 := min(len(d), hi*4096)
		ys, ds := y[lo*4096:i1], d[lo*4096:i1]
		ys = ys[:len(ds)]
		for i, v := range ys {
			b := math.Float32bits(v)
			mask := uint32(int32(b|-b) >> 31) // all ones if b != 0
			ds[i] = math.Float32frombits(math.Float32bits(ds[i]) & mask)
		}
	})
}
