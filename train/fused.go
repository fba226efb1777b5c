package train

import (
	"math"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Block-level fused BatchNorm passes. A block sums the BatchNorms of its
// branches (and skip), all over rows of the same length m, so one sweep per
// channel handles every branch: the sum is written once (with the ReLU
// applied) instead of being read and written per branch, and in the backward
// pass the shared output gradient is read once per chunk for all branches.

// fuseChunk is the row chunk (values) the fused passes work on, small enough
// that the chunk of the sum or of the output gradient stays in L1.
const fuseChunk = 2048

// bnSrc is one BatchNorm of a block: its input rows in src (C, m). x̂ is
// not stored: the forward pass writes it chunk by chunk to an L1-sized
// scratch buffer, and the backward pass recomputes it from src with the
// saved batch mean and 1/std (the same kernel on the same values, so the
// same x̂). Writing x̂ back cost a pass over a tensor of several MB per
// BatchNorm that does not fit the L2 cache.
type bnSrc struct {
	bn    *bnT
	src   []float32
	own   bool       // src holds only the channel's row (m values), not all C rows
	scale *scaleFold // a 1×1 scale branch folded into this (skip) BatchNorm, or nil
}

// scaleFold is a depthwise block's 1×1 scale branch folded into its skip
// BatchNorm (block.planeBranches). Per channel the branch is z1 = w·x, so
// with the input's batch mean μ and biased variance v, s2 = 1/√(v+ε2)
// (the skip's) and s1 = 1/√(w²v+ε1), its statistics are w·μ and w²·v and
// its normalised output is ẑ1 = r·x̂, r = w·s1/s2. Both BatchNorms then sum
// to (γ2 + γ1·r)·x̂ + β1 + β2 in the forward pass; backward, with g the
// output gradient, S = mean(g·x̂) and c1 = γ1·s1:
//
//	dγ1 = r·Σg·x̂,  dβ1 = Σg,
//	dx  = (γ2·s2 + w·c1)·(g − ḡ) − (γ2·s2 + w·c1·r²)·S·x̂   (both branches),
//	dw  = Σ dz1·x = c1·Σg·x̂·ε1·s1²/s2,
//
// the last from Σ(g−ḡ)·x = Σg·x̂/s2 and Σx̂·x = m·v·s2. This is the
// unfolded branch's arithmetic up to rounding, without its plane.
type scaleFold struct {
	bn      *bnT
	w, dw   []float32 // the branch's rows of the stacked weights and their gradient (kk per channel)
	kk, ctr int       // taps per row and the centre tap
}

// row returns channel ch's row of src (length m).
func (in *bnSrc) row(ch, m int) []float32 {
	if in.own {
		return in.src[:m]
	}
	return in.src[ch*m : (ch+1)*m]
}

// bnScratch returns buf grown to one fuseChunk of scratch per worker of
// parForW.
func bnScratch(buf []float32) []float32 {
	return grow(buf, kernel.Threads()*fuseChunk)
}

// workerScratch is worker wk's chunk of a bnScratch buffer.
func workerScratch(buf []float32, wk int) []float32 {
	return buf[wk*fuseChunk : (wk+1)*fuseChunk]
}

// bnTrainForwardSum normalises every BatchNorm in ins with its batch
// statistics (like bnTrainForward, updating the running statistics but not
// num_batches_tracked), writes Σ γ·x̂+β (in the order of ins) to out, and
// clamps out at zero if relu. scratch comes from bnScratch.
func bnTrainForwardSum(ins []bnSrc, c, m int, out []float32, relu bool, scratch []float32) {
	parForW(c, 3*len(ins)*c*m, func(wk, lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			bnSumChannel(ins, ch, m, out[ch*m:(ch+1)*m], relu, workerScratch(scratch, wk))
		}
	})
}

// bnSumChannel is bnTrainForwardSum for channel ch, writing the channel's
// row o (m values); scratch holds fuseChunk values. It saves each
// BatchNorm's batch mean and 1/std (as float32, as used) for the backward
// pass.
func bnSumChannel(ins []bnSrc, ch, m int, o []float32, relu bool, scratch []float32) {
	// Each BatchNorm's row and parameters of this channel, looked up once
	// per channel rather than per chunk (see bnBackChannel).
	var rowA [8][]float32
	var meanA, isA, gA, bA [8]float32
	rows, means, iss, gs, bs := rowA[:0], meanA[:0], isA[:0], gA[:0], bA[:0]
	for k := range ins {
		in := &ins[k]
		bn := in.bn.bn
		row := in.row(ch, m)
		mean, is, unbiased := batchStats(row, bn.Eps)
		in.bn.invstd[ch], in.bn.mean[ch] = float32(is), float32(mean)
		updateRunning(&bn.RunningMean.Data[ch], &bn.RunningVar.Data[ch], mean, unbiased)
		g, b := bn.Weight.Data[ch], bn.Bias.Data[ch]
		if sf := in.scale; sf != nil {
			sb := sf.bn.bn
			w := float64(sf.w[ch*sf.kk+sf.ctr])
			v := unbiased * float64(m-1) / float64(m) // biased
			s1 := 1 / math.Sqrt(w*w*v+sb.Eps)
			sf.bn.invstd[ch], sf.bn.mean[ch] = float32(s1), float32(w*mean)
			updateRunning(&sb.RunningMean.Data[ch], &sb.RunningVar.Data[ch], w*mean, w*w*unbiased)
			g = float32(float64(g) + float64(sb.Weight.Data[ch])*w*s1/is)
			b += sb.Bias.Data[ch]
		}
		rows, means, iss = append(rows, row), append(means, float32(mean)), append(iss, float32(is))
		gs, bs = append(gs, g), append(bs, b)
	}
	bnNormRows(rows, means, iss, gs, bs, o[:m], relu, scratch)
}

// bnNormRows writes o = Σ_k gs[k]·(rows[k]−means[k])·iss[k] + bs[k],
// clamped at zero if relu, chunk by chunk (scratch: fuseChunk values).
func bnNormRows(rows [][]float32, means, iss, gs, bs []float32, o []float32, relu bool, scratch []float32) {
	m := len(o)
	for j0 := 0; j0 < m; j0 += fuseChunk {
		j1 := min(m, j0+fuseChunk)
		oc := o[j0:j1]
		for k, row := range rows {
			kernel.BNNorm(row[j0:j1], scratch, oc, means[k], iss[k], gs[k], bs[k], k > 0)
		}
		if relu {
			kernel.ReLU(oc)
		}
	}
}

// xhatChunk recomputes x̂ = (src−mean)·invstd of values [j0, j1) of a
// channel's row src into scratch and returns it.
func xhatChunk(src []float32, mean, invstd float32, j0, j1 int, scratch []float32) []float32 {
	xh := scratch[:j1-j0]
	kernel.BNNorm(src[j0:j1], xh, nil, mean, invstd, 0, 0, false)
	return xh
}

// bnGrad is one BatchNorm of a block in the backward pass: its input rows
// in src (x̂ recomputed from them), the input gradient written to dz (may
// be src).
type bnGrad struct {
	bn      *bnT
	src, dz []float32
	own     bool       // src and dz hold only the channel's row, not all C rows
	scale   *scaleFold // a folded 1×1 scale branch (see bnSrc), or nil
}

// row returns channel ch's rows of src and dz (length m).
func (in *bnGrad) row(ch, m int) (src, dz []float32) {
	if in.own {
		return in.src[:m], in.dz[:m]
	}
	return in.src[ch*m : (ch+1)*m], in.dz[ch*m : (ch+1)*m]
}

// bnBackwardSum is bnBackward for every BatchNorm in ins, which share the
// output gradient d (C, m). If y is not nil, d is first multiplied in place
// by the ReLU mask y > 0 (y the block's ReLU output). scratch comes from
// bnScratch.
func bnBackwardSum(ins []bnGrad, c, m int, d, y, scratch []float32) {
	parForW(c, 3*len(ins)*c*m, func(wk, lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			bnBackChannel(ins, ch, m, d[ch*m:(ch+1)*m], chanRow(y, ch, m), workerScratch(scratch, wk))
		}
	})
}

// chanRow is channel ch's row of t (C rows of m values), nil if t is nil.
func chanRow(t []float32, ch, m int) []float32 {
	if t == nil {
		return nil
	}
	return t[ch*m : (ch+1)*m]
}

// bnBackChannel is bnBackwardSum for channel ch, given the channel's rows
// of the output gradient dr (overwritten by the mask) and of the ReLU
// output yr (nil: no mask); scratch holds fuseChunk values.
func bnBackChannel(ins []bnGrad, ch, m int, dr, yr, scratch []float32) {
	// Each BatchNorm's rows and saved statistics of this channel, looked
	// up once per channel: passing the bnGrad by value to a helper per
	// chunk cost ~50 ns a call (its spilled words re-read as one 16-byte
	// load, a store-forwarding stall), 3 % of a 28×28 training step.
	var srcA, dzA [8][]float32
	var meanA, isA [8]float32
	var sdxa [8]float64
	srcs, dzs, means, iss, sdx := srcA[:0], dzA[:0], meanA[:0], isA[:0], sdxa[:0]
	for k := range ins {
		in := &ins[k]
		src, dz := in.row(ch, m)
		srcs, dzs = append(srcs, src), append(dzs, dz)
		means, iss = append(means, in.bn.mean[ch]), append(iss, in.bn.invstd[ch])
		sdx = append(sdx, 0) // on the stack for up to 8 BatchNorms
	}
	// Σg and Σg·x̂ = invstd·Σg·(src−mean) without forming x̂.
	dr = dr[:m]
	var sd float64
	for j0 := 0; j0 < m; j0 += fuseChunk {
		j1 := min(m, j0+fuseChunk)
		dc := dr[j0:j1]
		for k, src := range srcs {
			var s, sx float64
			switch {
			case k > 0:
				_, sx = kernel.DotSumsShift(dc, src[j0:j1], means[k])
			case yr != nil: // the ReLU mask first, in the same pass
				s, sx = kernel.ReLUMaskDotSumsShift(yr[j0:j1], dc, src[j0:j1], means[k])
			default:
				s, sx = kernel.DotSumsShift(dc, src[j0:j1], means[k])
			}
			sd += s
			sdx[k] += sx
		}
	}
	for k := range sdx {
		sdx[k] *= float64(iss[k])
	}
	var kfa, mdxa, bxa [8]float32
	kf, mdx, bx := kfa[:0], mdxa[:0], bxa[:0]
	for k := range ins {
		bn := ins[k].bn
		bn.gW.Data[ch] += float32(sdx[k])
		bn.gB.Data[ch] += float32(sd)
		kf = append(kf, bn.bn.Weight.Data[ch]*iss[k])
		mdx = append(mdx, float32(sdx[k]/float64(m)))
		bx = append(bx, 0)
		if sf := ins[k].scale; sf != nil {
			kf[k], mdx[k], bx[k] = backScaleFold(sf, ch, m, sd, sdx[k], float64(bn.bn.Weight.Data[ch]), float64(iss[k]))
		}
	}
	md := float32(sd / float64(m))
	for j0 := 0; j0 < m; j0 += fuseChunk {
		j1 := min(m, j0+fuseChunk)
		for k, src := range srcs {
			// dz = kf·(g − ḡ − x̂·mdx), x̂·mdx = (src − mean)·(invstd·mdx).
			if bx[k] != 0 {
				// A folded branch whose dx coefficients nearly cancel.
				xh := xhatChunk(src, means[k], iss[k], j0, j1, scratch)
				dc, out := dr[j0:j1], dzs[k][j0:j1]
				for i, g := range dc {
					out[i] = kf[k]*(g-md) - bx[k]*xh[i]
				}
				continue
			}
			kernel.BNBackApplySrc(dr[j0:j1], src[j0:j1], dzs[k][j0:j1], kf[k], md, means[k], mdx[k]*iss[k])
		}
	}
}

// backScaleFold accumulates the gradients of a folded scale branch's
// BatchNorm and writes its weight's (see scaleFold), given Σg and Σg·x̂ of
// channel ch and the skip's γ2 and s2. It returns the dx coefficients of
// both branches for BNBackApply, dx = kf·(g − ḡ − x̂·mdx), or, if kf is
// too small for mdx to be formed safely, kf and the coefficient bx of x̂
// (dx = kf·(g − ḡ) − bx·x̂, bx ≠ 0).
func backScaleFold(sf *scaleFold, ch, m int, sd, sdx, g2, s2 float64) (kf, mdx, bx float32) {
	sb := sf.bn.bn
	w := float64(sf.w[ch*sf.kk+sf.ctr])
	s1 := float64(sf.bn.invstd[ch])
	g1 := float64(sb.Weight.Data[ch])
	r := w * s1 / s2
	sf.bn.gW.Data[ch] += float32(r * sdx)
	sf.bn.gB.Data[ch] += float32(sd)
	c1 := g1 * s1
	row := sf.dw[ch*sf.kk : (ch+1)*sf.kk]
	clear(row)
	row[sf.ctr] = float32(c1 * sdx * sb.Eps * s1 * s1 / s2)
	a := g2*s2 + w*c1
	b := (g2*s2 + w*c1*r*r) * sdx / float64(m) // times x̂
	if math.Abs(a) < 1e-6*(math.Abs(g2*s2)+math.Abs(w*c1)) || float32(a) == 0 {
		if b == 0 {
			return float32(a), 0, 0
		}
		return float32(a), 0, float32(b)
	}
	return float32(a), float32(b / a), 0
}
