package train

import (
	"cmp"
	"slices"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Convolutions in the trainer's layout (C, H, W, N): every pixel of a
// channel is a contiguous vector of the N images of the batch, so whether a
// kernel tap falls on the padding is decided per pixel, never per value.
// A tap over a run of output pixels is then one operation on contiguous
// vectors: an axpy (depthwise forward and input gradient), a dot product
// (depthwise weight gradient) or a copy (im2col). The runs are computed once
// per input geometry (spanTable). The 3×3 stride-1 depthwise convolutions
// (most of MobileOne's) skip the runs: one kernel call per channel plane
// sums all nine taps of a vector in registers (rows3).

// span is one run of a tap: output values [z, z+n) of a channel plane read
// input values [x, x+n) of the input channel plane.
type span struct{ z, x, n int }

// spanTable lists the runs of every tap of a convolution for one input
// geometry: tap t's runs are spans[start[t]:start[t+1]]; full[t] is set when
// they cover the whole output plane.
type spanTable struct {
	h, w, n int
	spans   []span
	start   []int
	full    []bool
	// byRow holds the same runs unmerged, ordered by output row and, within
	// a row, centre tap first: working through a large plane row by row
	// keeps the rows a tap reads and writes in L1 for all the taps.
	byRow []tapSpan
	// active lists the taps with at least one run, in order: a tap whose
	// every read falls in the padding (a dilated kernel larger than the
	// map: ASPP's large rates) contributes nothing.
	active []int
}

// tapSpan is a span of tap t.
type tapSpan struct {
	span
	t int
}

// rowOrderBytes is the plane size from which the depthwise passes go row by
// row (byRow) rather than tap by tap (fewer, merged runs).
const rowOrderBytes = 32 << 10

// tapRange returns the outputs [o0, o1) along one axis whose input
// o·s − p + k lies in [0, in).
func tapRange(k, s, p, in, out int) (int, int) {
	o0 := 0
	if d := p - k; d > 0 {
		o0 = (d + s - 1) / s
	}
	hi := in - 1 + p - k // o·s ≤ hi
	if hi < 0 {
		return 0, 0
	}
	return o0, max(o0, min(out, hi/s+1))
}

// spanTable returns the runs of c for an input of h×w pixels of n images,
// cached in ws.
func (c convOp) spanTable(ws *convWork, h, w, n int) *spanTable {
	return c.buildSpans(&ws.spans, h, w, n, false)
}

// Strided depthwise convolutions run on column phases. With stride S > 1,
// the taps of consecutive output pixels of a row read every S-th input
// pixel, so in the plane's own layout each run is one pixel (N values) long
// and a plane takes a kernel call per output pixel and tap. The passes
// first copy the input plane into phase order (phaseSplit): row by row,
// the pixels of columns ≡ 0 (mod S), then ≡ 1, …; there a tap's reads over
// a run of output pixels are contiguous, one run per output row and tap
// (phaseTable), and the input gradient is gathered back the same way
// (phaseMerge).

// phaseWidth is the pixels per phase of a row of w pixels at stride s.
func phaseWidth(w, s int) int { return (w + s - 1) / s }

// phaseSplit copies the plane xp (h rows of w pixels of n values) into dst
// in phase order at stride s: pixel (y, x) to phase x mod s, slot x div s of
// row y (slots beyond the row are left as they were).
func phaseSplit(xp, dst []float32, h, w, n, s int) {
	wp := phaseWidth(w, s)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := ((y*s+x%s)*wp + x/s) * n
			i := (y*w + x) * n
			copy(dst[o:o+n], xp[i:i+n])
		}
	}
}

// phaseMerge is phaseSplit's inverse for an input gradient: the plane dxp
// is set to (overwrite) or incremented by the phase-ordered src.
func phaseMerge(src, dxp []float32, h, w, n, s int, overwrite bool) {
	wp := phaseWidth(w, s)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := ((y*s+x%s)*wp + x/s) * n
			i := (y*w + x) * n
			if overwrite {
				copy(dxp[i:i+n], src[o:o+n])
			} else {
				kernel.Add(src[o:o+n], dxp[i:i+n])
			}
		}
	}
}

// phaseTable is spanTable for a strided convolution whose input planes are
// in phase order (phaseSplit), cached in ws.
func (c convOp) phaseTable(ws *convWork, h, w, n int) *spanTable {
	return c.buildSpans(&ws.phases, h, w, n, true)
}

// buildSpans fills st with the runs of c for an input of h×w pixels of n
// images, in the plane's layout or (phased) in phase order, unless st
// already holds them.
func (c convOp) buildSpans(st *spanTable, h, w, n int, phased bool) *spanTable {
	if st.h == h && st.w == w && st.n == n && st.start != nil {
		return st
	}
	oh, ow := c.outSize(h, w)
	kk := c.K * c.K
	*st = spanTable{h: h, w: w, n: n, spans: st.spans[:0], start: make([]int, kk+1), full: make([]bool, kk), byRow: st.byRow[:0],
		active: st.active}
	d := c.dil()
	for t := 0; t < kk; t++ {
		ky, kx := t/c.K*d, t%c.K*d // the tap's offsets in input pixels
		st.start[t] = len(st.spans)
		oy0, oy1 := tapRange(ky, c.S, c.P, h, oh)
		ox0, ox1 := tapRange(kx, c.S, c.P, w, ow)
		total := 0
		add := func(s span) {
			total += s.n
			st.byRow = append(st.byRow, tapSpan{s, t})
			if k := len(st.spans) - 1; k >= st.start[t] {
				if p := &st.spans[k]; p.z+p.n == s.z && p.x+p.n == s.x {
					p.n += s.n
					return
				}
			}
			st.spans = append(st.spans, s)
		}
		for oy := oy0; oy < oy1; oy++ {
			iy := oy*c.S - c.P + ky
			if phased {
				if ox1 > ox0 {
					col := ox0*c.S - c.P + kx
					x := ((iy*c.S+col%c.S)*phaseWidth(w, c.S) + col/c.S) * n
					add(span{z: (oy*ow + ox0) * n, x: x, n: (ox1 - ox0) * n})
				}
				continue
			}
			if c.S == 1 {
				if ox1 > ox0 {
					add(span{z: (oy*ow + ox0) * n, x: (iy*w + ox0 - c.P + kx) * n, n: (ox1 - ox0) * n})
				}
				continue
			}
			for ox := ox0; ox < ox1; ox++ {
				add(span{z: (oy*ow + ox) * n, x: (iy*w + ox*c.S - c.P + kx) * n, n: n})
			}
		}
		st.full[t] = total == oh*ow*n
	}
	st.start[kk] = len(st.spans)
	st.active = st.active[:0]
	for t := 0; t < kk; t++ {
		if st.start[t+1] > st.start[t] {
			st.active = append(st.active, t)
		}
	}
	ctr := (c.K/2)*c.K + c.K/2
	rowLen := ow * n
	slices.SortStableFunc(st.byRow, func(a, b tapSpan) int {
		if ra, rb := a.z/rowLen, b.z/rowLen; ra != rb {
			return ra - rb
		}
		return cmp.Compare(b2i(a.t != ctr), b2i(b.t != ctr))
	})
	return st
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dwForward computes the depthwise z (Cout, OH, OW, N) = conv(x, w); output
// channel o reads input channel o mod Cin.
func (c convOp) dwForward(x *act, w, z []float32, ws *convWork) {
	if c.rows3() {
		c.dwForwardRows(x, w, z)
		return
	}
	oh, ow := c.outSize(x.H, x.W)
	st, pp := c.dwSpans(ws, x)
	pin := x.H * x.W * x.N
	parForW(c.Cin, c.Cout*c.K*c.K*oh*ow*x.N, func(wk, lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			xp := x.Data[ci*pin : (ci+1)*pin]
			if pp > 0 {
				buf := ws.phase[2*wk*pp : (2*wk+1)*pp]
				phaseSplit(xp, buf, x.H, x.W, x.N, c.S)
				xp = buf
			}
			c.dwChannelForward(x, xp, w, z, ci, false, st)
		}
	})
}

// dwChannelForward is dwForward (not rows3) for input channel ci, whose
// plane is xp, in the order of the runs st (dwSpans: phase order for a
// strided c; x gives the geometry), writing the planes of output channel
// ci of every branch to z (all Cout planes, or only channel ci's if own).
func (c convOp) dwChannelForward(x *act, xp, w, z []float32, ci int, own bool, st *spanTable) {
	oh, ow := c.outSize(x.H, x.W)
	kk := c.K * c.K
	nb := c.Cout / c.Cin
	pout := oh * ow * x.N
	ctr := (c.K/2)*c.K + c.K/2
	for b := 0; b < nb; b++ {
		o := b*c.Cin + ci
		zp := planeAt(z, b, c.Cin, ci, pout, own)
		wo := w[o*kk : (o+1)*kk]
		center := b < len(c.CenterOnly) && c.CenterOnly[b]
		if pout*4 >= rowOrderBytes && st.full[ctr] && kk <= maxTaps {
			for _, s := range st.byRow {
				switch {
				case s.t == ctr:
					kernel.Scale(wo[ctr], xp[s.x:s.x+s.n], zp[s.z:s.z+s.n])
				case !center:
					kernel.Axpy(wo[s.t], xp[s.x:s.x+s.n], zp[s.z:s.z+s.n])
				}
			}
			continue
		}
		first := ctr
		if !st.full[ctr] {
			clear(zp)
			first = -1
		} else {
			for _, s := range st.spans[st.start[ctr]:st.start[ctr+1]] {
				kernel.Scale(wo[ctr], xp[s.x:s.x+s.n], zp[s.z:s.z+s.n])
			}
		}
		for t := 0; t < kk; t++ {
			if t == first || (center && t != ctr) {
				continue
			}
			wt := wo[t]
			for _, s := range st.spans[st.start[t]:st.start[t+1]] {
				kernel.Axpy(wt, xp[s.x:s.x+s.n], zp[s.z:s.z+s.n])
			}
		}
	}
}

// rows3 reports whether c is a 3×3, stride-1, pad-1, undilated convolution, which
// the depthwise passes run with all nine taps of a vector in one pass
// (kernel.Conv3Plane, kernel.Corr3Plane) instead of tap by tap.
func (c convOp) rows3() bool { return c.K == 3 && c.S == 1 && c.P == 1 && c.dil() == 1 }

// dwForwardRows is dwForward of a rows3 convolution: one Conv3Plane per
// branch and channel; a centre-only branch (the 1×1 scale branch) is a
// scaled copy of its channel.
func (c convOp) dwForwardRows(x *act, w, z []float32) {
	parFor(c.Cin, c.Cout*9*x.H*x.W*x.N, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			c.dwForwardPlane(x, w, z, ci, false)
		}
	})
}

// planeGeom returns the branches and the output channels per branch of a
// convolution that dwForwardPlane and dwBackwardPlane can run channel by
// channel: a depthwise one (output channel ci of every branch reads input
// channel ci), or a dense one with a single input channel (the stem on
// grey images: every output channel reads input channel 0), whose
// branches are listed in CenterOnly.
func (c convOp) planeGeom() (nb, outC int) {
	if c.DW {
		return c.Cout / c.Cin, c.Cin
	}
	if c.Cin != 1 || len(c.CenterOnly) == 0 {
		panic("train: channel-by-channel planes need a depthwise or single-input-channel convolution")
	}
	return len(c.CenterOnly), c.Cout / len(c.CenterOnly)
}

// planeIn is the input plane that output channel ci of every branch reads.
func (c convOp) planeIn(x *act, ci int) []float32 {
	p := x.H * x.W * x.N
	if !c.DW {
		ci = 0
	}
	return x.Data[ci*p : (ci+1)*p]
}

// planeAt returns plane b·outC+ci of t (Cout planes of p values) or, if
// own, plane b of t (only channel ci's planes, branch by branch).
func planeAt(t []float32, b, outC, ci, p int, own bool) []float32 {
	o := b*outC + ci
	if own {
		o = b
	}
	return t[o*p : (o+1)*p]
}

// dwForwardPlane is dwForwardRows for output channel ci of every branch,
// written to z (all Cout planes, or only channel ci's if own).
func (c convOp) dwForwardPlane(x *act, w, z []float32, ci int, own bool) {
	nb, outC := c.planeGeom()
	p := x.H * x.W * x.N // input and output planes have the same size
	xp := c.planeIn(x, ci)
	for b := 0; b < nb; b++ {
		o := b*outC + ci
		wo, zp := w[o*9:(o+1)*9], planeAt(z, b, outC, ci, p, own)
		if b < len(c.CenterOnly) && c.CenterOnly[b] {
			kernel.Scale(wo[4], xp, zp)
			continue
		}
		kernel.Conv3Plane((*[9]float32)(wo), xp, zp, x.H, x.W, x.N, false)
	}
}

// dwBackwardRows is dwBackward of a rows3 convolution: per branch and
// channel, the weight gradient from Corr3Plane(dz, x) and, if dx is not
// nil, dx += the convolution of dz with the kernel flipped; a centre-only
// branch needs one DotAxpy (its other taps are reported as 0).
func (c convOp) dwBackwardRows(x *act, w, dz, dw, dx []float32, overwrite bool) {
	parFor(c.Cin, 2*c.Cout*9*x.H*x.W*x.N, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			c.dwBackwardPlane(x, w, dz, dw, dx, ci, false, overwrite)
		}
	})
}

// dwBackwardPlane is dwBackwardRows for output channel ci of every branch,
// given dz (all Cout planes, or only channel ci's if own); with overwrite,
// channel ci's plane of dx is cleared before the gradient is added to it.
// dx must be nil for a dense convolution (its input channel is shared by
// every output channel).
func (c convOp) dwBackwardPlane(x *act, w, dz, dw, dx []float32, ci int, own, overwrite bool) {
	nb, outC := c.planeGeom()
	p := x.H * x.W * x.N
	xp := c.planeIn(x, ci)
	var dxp []float32
	if dx != nil {
		if !c.DW {
			panic("train: dwBackwardPlane: no input gradient for a dense convolution")
		}
		dxp = dx[ci*p : (ci+1)*p]
		if overwrite {
			clear(dxp)
		}
	}
	for b := 0; b < nb; b++ {
		o := b*outC + ci
		wo, dzp, dwo := w[o*9:(o+1)*9], planeAt(dz, b, outC, ci, p, own), dw[o*9:(o+1)*9]
		if b < len(c.CenterOnly) && c.CenterOnly[b] {
			clear(dwo)
			if dxp != nil {
				dwo[4] = float32(kernel.DotAxpy(wo[4], dzp, xp, dxp))
			} else {
				dwo[4] = float32(kernel.Dot64(dzp, xp))
			}
			continue
		}
		var g [9]float64
		kernel.Corr3Plane(dzp, xp, x.H, x.W, x.N, &g)
		for t := range g {
			dwo[t] = float32(g[t])
		}
		if dxp == nil {
			continue
		}
		var wf [9]float32
		for t := range wf {
			wf[t] = wo[8-t]
		}
		kernel.Conv3Plane(&wf, dzp, dxp, x.H, x.W, x.N, true)
	}
}

// maxTaps bounds K·K for the row-ordered depthwise backward.
const maxTaps = 49

// dwBackward writes the depthwise weight gradient dw (Cout, K·K) and, if dx
// is not nil, adds the input gradient to dx, given dz (Cout, OH, OW, N).
// One task per input channel owns that channel's weight gradients (of every
// branch) and input gradient. Branches flagged in c.CenterOnly (a
// zero-padded 1×1 kernel) only use the centre tap; their other taps are
// reported as 0. With overwrite set, each channel's plane of dx is cleared
// (by the worker that owns the channel) before the channel's gradient is
// added to it.
func (c convOp) dwBackward(x *act, w, dz, dw, dx []float32, ws *convWork, overwrite bool) {
	if c.rows3() {
		c.dwBackwardRows(x, w, dz, dw, dx, overwrite)
		return
	}
	oh, ow := c.outSize(x.H, x.W)
	st, pp := c.dwSpans(ws, x)
	pin := x.H * x.W * x.N
	parForW(c.Cin, 2*c.Cout*c.K*c.K*oh*ow*x.N, func(wk, lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			xp := x.Data[ci*pin : (ci+1)*pin]
			var dxp []float32
			if dx != nil {
				dxp = dx[ci*pin : (ci+1)*pin]
			}
			if pp == 0 {
				c.dwChannelBackward(x, xp, dxp, w, dz, dw, ci, false, overwrite, st)
				continue
			}
			xph, dxph := ws.phase[2*wk*pp:(2*wk+1)*pp], ws.phase[(2*wk+1)*pp:(2*wk+2)*pp]
			phaseSplit(xp, xph, x.H, x.W, x.N, c.S)
			if dxp == nil {
				dxph = nil
			}
			c.dwChannelBackward(x, xph, dxph, w, dz, dw, ci, false, true, st)
			if dxp != nil {
				phaseMerge(dxph, dxp, x.H, x.W, x.N, c.S, overwrite)
			}
		}
	})
}

// dwChannelBackward is dwBackward (not rows3) for input channel ci, whose
// plane is xp and its gradient plane dxp (nil: none), both in the order of
// the runs st (dwSpans: phase order for a strided c; x gives the
// geometry), given the planes of output channel ci of every branch in dz
// (all Cout planes, or only channel ci's if own); with overwrite, dxp is
// cleared first.
func (c convOp) dwChannelBackward(x *act, xp, dxp, w, dz, dw []float32, ci int, own, overwrite bool, st *spanTable) {
	oh, ow := c.outSize(x.H, x.W)
	kk := c.K * c.K
	nb := c.Cout / c.Cin
	pout := oh * ow * x.N
	ctr := (c.K/2)*c.K + c.K/2
	if dxp != nil && overwrite {
		clear(dxp)
	}
	for b := 0; b < nb; b++ {
		o := b*c.Cin + ci
		dzp := planeAt(dz, b, c.Cin, ci, pout, own)
		center := b < len(c.CenterOnly) && c.CenterOnly[b]
		if pout*4 >= rowOrderBytes && kk <= maxTaps {
			var g [maxTaps]float64
			for _, s := range st.byRow {
				if center && s.t != ctr {
					continue
				}
				d := dzp[s.z : s.z+s.n]
				if dxp != nil {
					g[s.t] += kernel.DotAxpy(w[o*kk+s.t], d, xp[s.x:s.x+s.n], dxp[s.x:s.x+s.n])
				} else {
					g[s.t] += kernel.Dot64(d, xp[s.x:s.x+s.n])
				}
			}
			for t := 0; t < kk; t++ {
				dw[o*kk+t] = float32(g[t])
			}
			continue
		}
		for t := 0; t < kk; t++ {
			if center && t != ctr {
				dw[o*kk+t] = 0
				continue
			}
			var g float64
			wt := w[o*kk+t]
			for _, s := range st.spans[st.start[t]:st.start[t+1]] {
				d := dzp[s.z : s.z+s.n]
				if dxp != nil {
					g += kernel.DotAxpy(wt, d, xp[s.x:s.x+s.n], dxp[s.x:s.x+s.n])
				} else {
					g += kernel.Dot64(d, xp[s.x:s.x+s.n])
				}
			}
			dw[o*kk+t] = float32(g)
		}
	}
}

// dwSpans returns the runs of the depthwise c on x and, for a strided c,
// the size of a plane in phase order (0: not phased), with ws.phase holding
// two such planes per worker.
func (c convOp) dwSpans(ws *convWork, x *act) (*spanTable, int) {
	if c.S == 1 {
		return c.spanTable(ws, x.H, x.W, x.N), 0
	}
	pp := x.H * c.S * phaseWidth(x.W, c.S) * x.N
	ws.phase = grow(ws.phase, 2*kernel.Threads()*pp)
	return c.phaseTable(ws, x.H, x.W, x.N), pp
}
