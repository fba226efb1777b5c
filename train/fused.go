package train

import (
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
	bn  *bnT
	src []float32
	own bool // src holds only the channel's row (m values), not all C rows
}

// row returns channel ch's row of src (length m).
func (in bnSrc) row(ch, m int) []float32 {
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
			bnSumChannel(ins, ch, m, out, relu, workerScratch(scratch, wk))
		}
	})
}

// bnSumChannel is bnTrainForwardSum for channel ch; scratch holds
// fuseChunk values. It saves each BatchNorm's batch mean and 1/std (as
// float32, as used) for the backward pass.
func bnSumChannel(ins []bnSrc, ch, m int, out []float32, relu bool, scratch []float32) {
	for _, in := range ins {
		bn := in.bn.bn
		mean, is, unbiased := batchStats(in.row(ch, m), bn.Eps)
		in.bn.invstd[ch], in.bn.mean[ch] = float32(is), float32(mean)
		updateRunning(&bn.RunningMean.Data[ch], &bn.RunningVar.Data[ch], mean, unbiased)
	}
	o := out[ch*m : (ch+1)*m]
	for j0 := 0; j0 < m; j0 += fuseChunk {
		j1 := min(m, j0+fuseChunk)
		oc := o[j0:j1]
		for k, in := range ins {
			g, b := in.bn.bn.Weight.Data[ch], in.bn.bn.Bias.Data[ch]
			kernel.BNNorm(in.row(ch, m)[j0:j1], scratch, oc, in.bn.mean[ch], in.bn.invstd[ch], g, b, k > 0)
		}
		if relu {
			kernel.ReLU(oc)
		}
	}
}

// xhatChunk recomputes x̂ = (src−mean)·invstd of values [j0, j1) of channel
// ch's row (length m) of in into scratch and returns it.
func xhatChunk(in bnGrad, ch, m, j0, j1 int, scratch []float32) []float32 {
	xh := scratch[:j1-j0]
	src, _ := in.row(ch, m)
	kernel.BNNorm(src[j0:j1], xh, nil, in.bn.mean[ch], in.bn.invstd[ch], 0, 0, false)
	return xh
}

// bnGrad is one BatchNorm of a block in the backward pass: its input rows
// in src (x̂ recomputed from them), the input gradient written to dz (may
// be src).
type bnGrad struct {
	bn      *bnT
	src, dz []float32
	own     bool // src and dz hold only the channel's row, not all C rows
}

// row returns channel ch's rows of src and dz (length m).
func (in bnGrad) row(ch, m int) (src, dz []float32) {
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
			bnBackChannel(ins, ch, m, d, y, workerScratch(scratch, wk))
		}
	})
}

// bnBackChannel is bnBackwardSum for channel ch; scratch holds fuseChunk
// values.
func bnBackChannel(ins []bnGrad, ch, m int, d, y, scratch []float32) {
	var sdxa [8]float64
	sdx := sdxa[:0]
	for range ins {
		sdx = append(sdx, 0) // on the stack for up to 8 BatchNorms
	}
	dr := d[ch*m : (ch+1)*m]
	var sd float64
	for j0 := 0; j0 < m; j0 += fuseChunk {
		j1 := min(m, j0+fuseChunk)
		dc := dr[j0:j1]
		for k, in := range ins {
			xh := xhatChunk(in, ch, m, j0, j1, scratch)
			if k == 0 {
				var s, sx float64
				if y != nil { // the ReLU mask first, in the same pass
					s, sx = kernel.ReLUMaskDotSums(y[ch*m+j0:ch*m+j1], dc, xh)
				} else {
					s, sx = dotSums(dc, xh)
				}
				sd += s
				sdx[k] += sx
				continue
			}
			sdx[k] += kernel.Dot64(dc, xh)
		}
	}
	for k, in := range ins {
		in.bn.gW.Data[ch] += float32(sdx[k])
		in.bn.gB.Data[ch] += float32(sd)
	}
	md := float32(sd / float64(m))
	var kfa, mdxa [8]float32
	kf, mdx := kfa[:0], mdxa[:0]
	for k, in := range ins {
		kf = append(kf, in.bn.bn.Weight.Data[ch]*in.bn.invstd[ch])
		mdx = append(mdx, float32(sdx[k]/float64(m)))
	}
	for j0 := 0; j0 < m; j0 += fuseChunk {
		j1 := min(m, j0+fuseChunk)
		for k, in := range ins {
			xh := xhatChunk(in, ch, m, j0, j1, scratch)
			_, dz := in.row(ch, m)
			kernel.BNBackApply(dr[j0:j1], xh, dz[j0:j1], kf[k], md, mdx[k])
		}
	}
}
