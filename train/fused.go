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

// bnSrc is one BatchNorm of a block: its rows in src (C, m), x̂ written to
// xhat (may be src).
type bnSrc struct {
	bn        *bnT
	src, xhat []float32
}

// bnTrainForwardSum normalises every BatchNorm in ins with its batch
// statistics (like bnTrainForward, updating the running statistics but not
// num_batches_tracked), writes Σ γ·x̂+β (in the order of ins) to out, and
// clamps out at zero if relu.
func bnTrainForwardSum(ins []bnSrc, c, m int, out []float32, relu bool) {
	parFor(c, 3*len(ins)*c*m, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			bnSumChannel(ins, ch, m, out, relu)
		}
	})
}

// bnSumChannel is bnTrainForwardSum for channel ch.
func bnSumChannel(ins []bnSrc, ch, m int, out []float32, relu bool) {
	var mfa, isfa [8]float32
	mf, isf := mfa[:0], isfa[:0] // on the stack for up to 8 BatchNorms
	for _, in := range ins {
		bn := in.bn.bn
		mean, is, unbiased := batchStats(in.src[ch*m:(ch+1)*m], bn.Eps)
		in.bn.invstd[ch] = float32(is)
		mf, isf = append(mf, float32(mean)), append(isf, float32(is))
		updateRunning(&bn.RunningMean.Data[ch], &bn.RunningVar.Data[ch], mean, unbiased)
	}
	o := out[ch*m : (ch+1)*m]
	for j0 := 0; j0 < m; j0 += fuseChunk {
		j1 := min(m, j0+fuseChunk)
		oc := o[j0:j1]
		for k, in := range ins {
			g, b := in.bn.bn.Weight.Data[ch], in.bn.bn.Bias.Data[ch]
			kernel.BNNorm(in.src[ch*m+j0:ch*m+j1], in.xhat[ch*m+j0:ch*m+j1], oc, mf[k], isf[k], g, b, k > 0)
		}
		if relu {
			kernel.ReLU(oc)
		}
	}
}

// bnGrad is one BatchNorm of a block in the backward pass: x̂ rows in xhat,
// the input gradient written to dz (may be xhat).
type bnGrad struct {
	bn       *bnT
	xhat, dz []float32
}

// bnBackwardSum is bnBackward for every BatchNorm in ins, which share the
// output gradient d (C, m). If y is not nil, d is first multiplied in place
// by the ReLU mask y > 0 (y the block's ReLU output).
func bnBackwardSum(ins []bnGrad, c, m int, d, y []float32) {
	parFor(c, 3*len(ins)*c*m, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			bnBackChannel(ins, ch, m, d, y)
		}
	})
}

// bnBackChannel is bnBackwardSum for channel ch.
func bnBackChannel(ins []bnGrad, ch, m int, d, y []float32) {
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
			if k == 0 {
				var s, sx float64
				if y != nil { // the ReLU mask first, in the same pass
					s, sx = kernel.ReLUMaskDotSums(y[ch*m+j0:ch*m+j1], dc, in.xhat[ch*m+j0:ch*m+j1])
				} else {
					s, sx = dotSums(dc, in.xhat[ch*m+j0:ch*m+j1])
				}
				sd += s
				sdx[k] += sx
				continue
			}
			sdx[k] += kernel.Dot64(dc, in.xhat[ch*m+j0:ch*m+j1])
		}
	}
	for k, in := range ins {
		in.bn.gW.Data[ch] += float32(sdx[k])
		in.bn.gB.Data[ch] += float32(sd)
	}
	md := float32(sd / float64(m))
	for k, in := range ins {
		kf := in.bn.bn.Weight.Data[ch] * in.bn.invstd[ch]
		mdx := float32(sdx[k] / float64(m))
		kernel.BNBackApply(dr, in.xhat[ch*m:(ch+1)*m], in.dz[ch*m:(ch+1)*m], kf, md, mdx)
	}
}
