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
		op.groups(xs[i0:i1], outs[i0:i1], hw, 0, hw, 0, ceilDiv(op.cob, op.im.nb))
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
