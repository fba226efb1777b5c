package kernel

import (
	"os"
	"strconv"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// RunImages computes outs[i] = conv1×1(xs[i]) + bias (then ReLU if the op
// fuses it) for several images of hw pixels each, on the calling goroutine,
// with every chunk of weights applied to all the images while it is in L1:
// the weights are read once for the whole group of images instead of once
// per image. That is what the late layers of a batch need, where the
// weights (up to 7 MB in S3/S4's last layer) are many times one image's
// input (150 KB at 7×7×768) but the inputs of a few images together still
// fit in L2. Each image's output is bit-identical to Run's (the tiles and
// the order of the sums are the same).
//
// xs[i] and outs[i] are laid out as for Run (they may be longer); len(outs)
// must be len(xs).
func (op *PointwiseOp) RunImages(xs [][]float32, hw int, outs [][]float32) {
	if len(xs) != len(outs) {
		panic("kernel: RunImages: inputs and outputs differ in number")
	}
	if hw <= 0 || op.cob == 0 || len(xs) == 0 {
		return
	}
	if op.cib == 0 {
		for _, out := range outs {
			op.biasOnly(hw, out[:BlockedLen(op.cout, hw)])
		}
		return
	}
	// Images in chunks whose inputs together fit imgChunkBytes, all
	// weight groups per chunk.
	per := op.ImagesPerChunk(hw)
	for i0 := 0; i0 < len(xs); i0 += per {
		i1 := min(len(xs), i0+per)
		op.runImages(xs[i0:i1], hw, outs[i0:i1])
	}
}

// ImagesPerChunk is how many images of hw pixels RunImages runs together
// (their inputs fit in L2 beside the weights streaming through).
func (op *PointwiseOp) ImagesPerChunk(hw int) int {
	return max(1, imgChunkBytes()/(4*BlockedLen(op.cin, max(hw, 1))))
}

// imgChunkOverride, if set (MOBILEONE_IMGCHUNK=KiB), replaces the input
// budget of a RunImages chunk.
var imgChunkOverride = func() int {
	if v, err := strconv.Atoi(os.Getenv("MOBILEONE_IMGCHUNK")); err == nil && v > 0 {
		return v << 10
	}
	return 0
}()

// imgChunkBytes bounds the inputs of the images RunImages runs together
// (it reads every weight once per such chunk).
func imgChunkBytes() int {
	if imgChunkOverride > 0 {
		return imgChunkOverride
	}
	return max(pwKernels.active.chunk, cpu.L2Bytes*3/4)
}

// runImages is RunImages on one chunk of images.
func (op *PointwiseOp) runImages(xs [][]float32, hw int, outs [][]float32) {
	im := op.im
	kdim := op.cib * BlockC
	stride := hw * BlockC
	kcb := im.kcb
	nTiles := ceilDiv(hw, im.r)
	var last uint
	if op.bias != nil {
		last |= pwBias
	}
	if op.relu {
		last |= pwReLU
	}
	nGroups := ceilDiv(op.cob, im.nb)
	for g := 0; g < nGroups; g++ {
		ob0 := g * im.nb
		nb := min(im.nb, op.cob-ob0)
		panel := op.w[ob0*BlockC*kdim : (ob0+nb)*BlockC*kdim]
		var bias []float32
		if op.bias != nil {
			bias = op.bias[ob0*BlockC : (ob0+nb)*BlockC]
		}
		// The next group's weights go to L2 over this group's tiles.
		ahead, aheadPer := op.l2Ahead(g+1, nGroups, ceilDiv(op.cib, kcb)*nTiles*len(xs), true)
		for k0 := 0; k0 < op.cib; k0 += kcb {
			kb := min(kcb, op.cib-k0)
			var flags uint
			if k0 > 0 {
				flags = pwAcc
			}
			if k0+kb == op.cib {
				flags |= last
			}
			wk := panel[k0*BlockC*nb*BlockC : (k0+kb)*BlockC*nb*BlockC]
			// The next weight chunk comes in a slice per tile while this
			// one runs over the tiles of every image (as in Run).
			var next []float32
			if k0+kb < op.cib {
				next = panel[(k0+kb)*BlockC*nb*BlockC : min(op.cib, k0+2*kb)*BlockC*nb*BlockC]
			} else if g+1 < nGroups {
				nob := (g + 1) * im.nb
				nnb := min(im.nb, op.cob-nob)
				next = op.w[nob*BlockC*kdim : nob*BlockC*kdim+min(op.cib, kcb)*BlockC*nnb*BlockC]
			}
			per := ceilDiv(ceilDiv(len(next), 16), nTiles*len(xs)) // lines per tile
			for i, x := range xs {
				xk := x[k0*stride : (k0+kb)*stride]
				_ = x[:BlockedLen(op.cin, hw)]
				_ = outs[i][:BlockedLen(op.cout, hw)]
				ob := outs[i][ob0*stride : (ob0+nb)*stride]
				for p := 0; p < hw; p += im.r {
					rows := min(im.r, hw-p)
					xt := xk[p*BlockC : (kb-1)*stride+(p+rows)*BlockC]
					ot := ob[p*BlockC : (nb-1)*stride+(p+rows)*BlockC]
					if n := min(per, len(next)/16); n > 0 && pwPrefetch {
						prefetchLines(next, n)
						next = next[n*16:]
					}
					if n := min(aheadPer, len(ahead)/16); n > 0 {
						prefetchLinesL2(ahead, n)
						ahead = ahead[n*16:]
					}
					im.kern[rows][nb](xt, wk, ot, bias, kb, stride, stride, flags)
				}
			}
		}
	}
}
