package train

import (
	"math"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Activations inside the trainable net are channel-major with the batch
// innermost, (C, H, W, N): element (c, n, y, x) is at ((c*H+y)*W+x)*N+n.
// Every channel is one contiguous row of M = H·W·N values, so a 1×1
// convolution over the whole batch is one GEMM W(Cout, Cin)·X(Cin, M) and
// BatchNorm statistics are row reductions; and every pixel is a contiguous
// vector of N values, so a tap of a depthwise kernel is one vector operation
// per run of pixels (see dwconv.go).

// act is an activation in the trainer's layout (C, H, W, N).
type act struct {
	C, N, H, W int
	Data       []float32
}

// at returns the index of element (c, n, y, x).
func (a *act) at(c, n, y, x int) int { return ((c*a.H+y)*a.W+x)*a.N + n }

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
// kernel.Threads() workers of the kernels' pool (kernel.Parallel: its
// helpers spin briefly between jobs, so back-to-back passes start without
// waking a goroutine; a goroutine per chunk cost 25 % of S0's training
// step), or serially if work, in multiply-adds, is small.
func parFor(n, work int, fn func(lo, hi int)) {
	parForW(n, work, func(_, lo, hi int) { fn(lo, hi) })
}

// parForW is parFor also passing the chunk's index, which is below
// kernel.Threads() (so per-worker scratch can be indexed by it).
func parForW(n, work int, fn func(wk, lo, hi int)) {
	w := kernel.Threads()
	if work < parMinWork || w < 2 || n < 2 {
		fn(0, 0, n)
		return
	}
	w = min(w, n)
	chunk := (n + w - 1) / w
	kernel.Parallel((n+chunk-1)/chunk, w, func(t int) {
		lo := t * chunk
		fn(t, lo, min(n, lo+chunk))
	})
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
//
// D is the dilation (0 or 1: none): tap (ky, kx) of output pixel (oy, ox)
// reads input pixel (oy·S − P + ky·D, ox·S − P + kx·D), as PyTorch's
// Conv2d(dilation=D) does.
type convOp struct {
	Cin, Cout, K, S, P int
	D                  int
	DW                 bool
	CenterOnly         []bool // per branch of a depthwise stack: a zero-padded 1×1 kernel
	// BF16: a dense conv's matrix multiplies round their operands to
	// bfloat16 and sum in float32 (kernel.GemmBF16, on AMX or AVX512-BF16; Net.SetBF16),
	// when they have at least bf16MinCols columns.
	BF16 bool
}

func (c convOp) outSize(h, w int) (int, int) {
	ek := c.dil()*(c.K-1) + 1 // the dilated kernel's extent
	return (h+2*c.P-ek)/c.S + 1, (w+2*c.P-ek)/c.S + 1
}

// dil is the dilation, at least 1.
func (c convOp) dil() int { return max(1, c.D) }

// pointwise reports whether the dense conv is a plain GEMM on the input.
func (c convOp) pointwise() bool { return !c.DW && c.K == 1 && c.S == 1 && c.P == 0 }

// convWork holds reusable scratch buffers of a convOp.
type convWork struct {
	col, dcol []float32
	wc, dwc   []float32 // the weights and their gradient at the active taps (activeWeights)
	spans     spanTable
	phases    spanTable // the runs in phase order (strided depthwise; phaseTable)
	phase     []float32 // per worker: an input plane and a gradient plane in phase order
}

// Dense convolutions leave out the taps that read only padding
// (spanTable.active): the im2col matrix has a row per input channel and
// active tap, the weights are gathered to match (convWork.wc), and the
// weight gradient of an inactive tap is 0. For a dilated 3×3 kernel wider
// than the map (ASPP's rates 24 and 36 on a 16×16 map) that is one row in
// nine.

// im2col writes col (Cin·A, OH·OW·N), A the active taps of st: row ci·A+j
// is tap st.active[j] of input channel ci, column (oy·OW+ox)·N+n, zero
// outside the image.
func (c convOp) im2col(x *act, oh, ow int, col []float32, st *spanTable) {
	na := len(st.active)
	mo := x.N * oh * ow
	pin := x.H * x.W * x.N
	parFor(c.Cin*na, c.Cin*na*mo, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			ci, t := p/na, st.active[p%na]
			dst := col[p*mo : (p+1)*mo]
			xp := x.Data[ci*pin : (ci+1)*pin]
			if !st.full[t] {
				clear(dst)
			}
			for _, s := range st.spans[st.start[t]:st.start[t+1]] {
				copy(dst[s.z:s.z+s.n], xp[s.x:s.x+s.n])
			}
		}
	})
}

// col2im adds the rows of dcol (laid out as im2col's) back into dx (the
// adjoint of im2col).
func (c convOp) col2im(dcol []float32, x *act, oh, ow int, dx []float32, st *spanTable) {
	na := len(st.active)
	mo := x.N * oh * ow
	pin := x.H * x.W * x.N
	parFor(c.Cin, c.Cin*na*mo, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			dxp := dx[ci*pin : (ci+1)*pin]
			for j, t := range st.active {
				src := dcol[(ci*na+j)*mo:][:mo]
				for _, s := range st.spans[st.start[t]:st.start[t+1]] {
					kernel.Add(src[s.z:s.z+s.n], dxp[s.x:s.x+s.n])
				}
			}
		}
	})
}

// activeWeights returns w (Cout, Cin·K·K) restricted to the active taps
// of st, (Cout, Cin·A) (w itself when every tap is active).
func (c convOp) activeWeights(w []float32, st *spanTable, ws *convWork) []float32 {
	kk, na := c.K*c.K, len(st.active)
	if na == kk {
		return w
	}
	ws.wc = grow(ws.wc, c.Cout*c.Cin*na)
	for r := 0; r < c.Cout*c.Cin; r++ {
		for j, t := range st.active {
			ws.wc[r*na+j] = w[r*kk+t]
		}
	}
	return ws.wc
}

// forward computes z (Cout, OH, OW, N) = conv(x, w).
func (c convOp) forward(x *act, w []float32, z []float32, ws *convWork) {
	if c.DW {
		c.dwForward(x, w, z, ws)
		return
	}
	oh, ow := c.outSize(x.H, x.W)
	mo := x.N * oh * ow
	if c.pointwise() {
		c.gemms(mo).nn(c.Cout, mo, c.Cin, w, x.Data, z, false)
		return
	}
	st := c.spanTable(ws, x.H, x.W, x.N)
	kd := c.Cin * len(st.active)
	if kd == 0 {
		clear(z[:c.Cout*mo])
		return
	}
	ws.col = grow(ws.col, kd*mo)
	c.im2col(x, oh, ow, ws.col, st)
	c.gemms(mo).nn(c.Cout, mo, kd, c.activeWeights(w, st, ws), ws.col, z, false)
}

// bf16MinCols is the fewest columns (batch × output pixels) for which a
// dense conv with BF16 set multiplies in bfloat16: below it, rounding and
// packing the operands costs more than the tile unit saves (S0 at 32×32,
// batch 64, where stages 3–4 have 256 and 64 columns: 848–910 images/s
// with them in bfloat16, 975–1,005 in float32).
const bf16MinCols = 512

// bf16 reports whether the conv's GEMMs over mo columns run in bfloat16.
func (c convOp) bf16(mo int) bool { return c.BF16 && mo >= bf16MinCols }

// gemms is a set of matrix products: c (+)= a·b, aᵀ·b and a·bᵀ.
type gemms struct {
	nn, tn, nt func(m, n, k int, a, b, c []float32, accumulate bool)
}

// gemms is the products of the conv's GEMMs over mo columns (and of a
// folded block's over its batch: folded.go): bfloat16 ones if bf16(mo),
// else float32.
func (c convOp) gemms(mo int) gemms {
	if c.bf16(mo) {
		return gemms{kernel.GemmBF16, kernel.GemmBF16TN, kernel.GemmBF16NT}
	}
	return gemms{kernel.Gemm, kernel.GemmTN, kernel.GemmNT}
}

// backward computes dw (overwritten) and, if dx is not nil, adds the input
// gradient to dx (laid out like x), given dz (Cout, OH, OW, N). For a
// dense non-pointwise conv, forward must have run on the same x and ws (the
// im2col matrix is reused).
func (c convOp) backward(x *act, w, dz, dw, dx []float32, ws *convWork) {
	c.backwardTo(x, w, dz, dw, dx, ws, false)
}

// backwardTo is backward; with overwrite set, the input gradient is
// written to dx instead of added (a pointwise convolution's GEMM writes it
// directly, saving a pass that clears dx).
func (c convOp) backwardTo(x *act, w, dz, dw, dx []float32, ws *convWork, overwrite bool) {
	if c.DW {
		// Each channel's plane is cleared by its worker, just before it
		// is accumulated into (not the whole tensor on this goroutine).
		c.dwBackward(x, w, dz, dw, dx, ws, overwrite)
		return
	}
	if overwrite && dx != nil && !c.pointwise() {
		clear(dx)
	}
	oh, ow := c.outSize(x.H, x.W)
	mo := x.N * oh * ow
	gm := c.gemms(mo)
	if c.pointwise() {
		// dW (Cout, Cin) = dZ (Cout, mo) · Xᵀ; dX = Wᵀ · dZ
		gm.nt(c.Cout, c.Cin, mo, dz, x.Data, dw, false)
		if dx != nil {
			gm.tn(c.Cin, mo, c.Cout, w, dz, dx, !overwrite)
		}
		return
	}
	st := c.spanTable(ws, x.H, x.W, x.N)
	kk, na := c.K*c.K, len(st.active)
	kd := c.Cin * na
	if kd == 0 {
		clear(dw[:c.Cout*c.Cin*kk])
		return
	}
	col := ws.col[:kd*mo]
	// dW (Cout, kd) = dZ (Cout, mo) · colᵀ, scattered to the active taps
	dwa := dw
	if na < kk {
		ws.dwc = grow(ws.dwc, c.Cout*kd)
		dwa = ws.dwc
	}
	gm.nt(c.Cout, kd, mo, dz, col, dwa, false)
	if na < kk {
		clear(dw[:c.Cout*c.Cin*kk])
		for r := 0; r < c.Cout*c.Cin; r++ {
			for j, t := range st.active {
				dw[r*kk+t] = dwa[r*na+j]
			}
		}
	}
	if dx == nil {
		return
	}
	// dcol (kd, mo) = Wᵀ (kd, Cout) · dZ (Cout, mo)
	ws.dcol = grow(ws.dcol, kd*mo)
	gm.tn(kd, mo, c.Cout, c.activeWeights(w, st, ws), dz, ws.dcol, false)
	c.col2im(ws.dcol, x, oh, ow, dx, st)
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
	momentum                 float64 // of the running statistics; 0 means PyTorch's 0.1
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
			mean, is, unbiased := batchStats(row, bn.eps)
			invstd[ch] = float32(is)
			mf, isf := float32(mean), float32(is)
			var out []float32
			if sum != nil {
				out = sum[ch*m : (ch+1)*m]
			}
			kernel.BNNorm(row, xhat[ch*m:(ch+1)*m], out, mf, isf, bn.gamma[ch], bn.beta[ch], true)
			if update {
				if bn.momentum != 0 {
					updateRunningM(&bn.rmean[ch], &bn.rvar[ch], mean, unbiased, bn.momentum)
				} else {
					updateRunning(&bn.rmean[ch], &bn.rvar[ch], mean, unbiased)
				}
			}
		}
	})
}

// batchStats returns a row's mean, 1/sqrt(var+eps) and unbiased variance,
// in one pass around a shift (the first value), which keeps E[x²]−E[x]²
// free of cancellation for float32 data.
func batchStats(row []float32, eps float64) (mean, invstd, unbiased float64) {
	m := float64(len(row))
	shift := float64(row[0])
	s, sq := shiftedSums(row, shift)
	mean = shift + s/m
	q := max(0, sq-s*s/m) // Σ(x−mean)²
	v := q / m
	unbiased = v
	if len(row) > 1 {
		unbiased = q / (m - 1)
	}
	return mean, 1 / math.Sqrt(v+eps), unbiased
}

// updateRunning updates running statistics as PyTorch does (momentum 0.1).
func updateRunning(rmean, rvar *float32, mean, unbiased float64) {
	*rmean = float32((1-bnMomentum)*float64(*rmean) + bnMomentum*mean)
	*rvar = float32((1-bnMomentum)*float64(*rvar) + bnMomentum*unbiased)
}

// updateRunningM is updateRunning with another momentum (SSDLite's
// BatchNorms use 0.03).
func updateRunningM(rmean, rvar *float32, mean, unbiased, momentum float64) {
	*rmean = float32((1-momentum)*float64(*rmean) + momentum*mean)
	*rvar = float32((1-momentum)*float64(*rvar) + momentum*unbiased)
}

// shiftedSums returns Σ(x−shift) and Σ(x−shift)² in float64.
func shiftedSums(row []float32, shift float64) (s, sq float64) {
	return kernel.SumSq(row, float32(shift))
}

// dotSums returns Σd and Σd·x (x at least as long as d) in float64.
func dotSums(d, x []float32) (sd, sdx float64) { return kernel.DotSums(d, x[:len(d)]) }

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
			kernel.BNBackApply(dr, xr, dz[ch*m:(ch+1)*m], k, md, mdx)
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

// forward computes out = s·gate for s (C, HW, N).
func (p *seParams) forward(s []float32, n, hw int, out []float32) {
	c, hid := p.c, p.hid
	p.mean = grow(p.mean, n*c)
	p.h = grow(p.h, n*hid)
	p.g = grow(p.g, n*c)
	acc := make([]float64, n)
	for ch := 0; ch < c; ch++ {
		clear(acc)
		plane := s[ch*hw*n : (ch+1)*hw*n]
		for i := 0; i < hw; i++ {
			for b, v := range plane[i*n : (i+1)*n] {
				acc[b] += float64(v)
			}
		}
		for b, v := range acc {
			p.mean[b*c+ch] = float32(v / float64(hw))
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
		gv := make([]float32, n)
		for ch := lo; ch < hi; ch++ {
			for b := range gv {
				gv[b] = p.g[b*c+ch]
			}
			for i := 0; i < hw; i++ {
				src := s[(ch*hw+i)*n:][:n]
				dst := out[(ch*hw+i)*n:][:n]
				for b, v := range src {
					dst[b] = v * gv[b]
				}
			}
		}
	})
}

// backward turns d (the gradient of out, (C, HW, N)) into the gradient of
// s in place and accumulates the SE weight gradients.
func (p *seParams) backward(s, d []float32, n, hw int) {
	c, hid := p.c, p.hid
	da := make([]float64, n*c) // gradient of the gate's pre-activation
	dg := make([]float64, n)
	for ch := 0; ch < c; ch++ {
		clear(dg)
		for i := 0; i < hw; i++ {
			src := s[(ch*hw+i)*n:][:n]
			for b, v := range d[(ch*hw+i)*n:][:n] {
				dg[b] += float64(v) * float64(src[b])
			}
		}
		for b := range dg {
			g := float64(p.g[b*c+ch])
			da[b*c+ch] = dg[b] * g * (1 - g)
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
		gv, add := make([]float32, n), make([]float32, n)
		for ch := lo; ch < hi; ch++ {
			for b := range gv {
				gv[b] = p.g[b*c+ch]
				add[b] = float32(dm[b*c+ch] / float64(hw))
			}
			for i := 0; i < hw; i++ {
				dr := d[(ch*hw+i)*n:][:n]
				for b, v := range dr {
					dr[b] = v*gv[b] + add[b]
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
		kernel.ReLU(x[lo*4096 : min(len(x), hi*4096)])
	})
}

// reluBackward zeroes d where the ReLU output y is not positive (y >= 0).
func reluBackward(y, d []float32) {
	parFor(len(d)/4096+1, len(d), func(lo, hi int) {
		i1 := min(len(d), hi*4096)
		kernel.ReLUMask(y[lo*4096:i1], d[lo*4096:i1])
	})
}

// relu6InPlace clamps x to [0, 6].
func relu6InPlace(x []float32) {
	parFor(len(x)/4096+1, len(x), func(lo, hi int) {
		for i, v := range x[lo*4096 : min(len(x), hi*4096)] {
			x[lo*4096+i] = min(max(v, 0), 6)
		}
	})
}

// relu6Backward zeroes d where the ReLU6 output y is clamped (y <= 0 or
// y >= 6), as PyTorch's hardtanh backward (gradient only strictly inside).
func relu6Backward(y, d []float32) {
	parFor(len(d)/4096+1, len(d), func(lo, hi int) {
		for i := lo * 4096; i < min(len(d), hi*4096); i++ {
			if y[i] <= 0 || y[i] >= 6 {
				d[i] = 0
			}
		}
	})
}

// parMinWork is the work (multiply-adds) below which parFor runs serially
// (1<<11 to 1<<17 measured the same on S0's training step).
const parMinWork = 1 << 15
