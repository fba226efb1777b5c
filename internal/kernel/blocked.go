package kernel

// Channel-blocked activation layout (NCHW16c), used by the inference engine
// for every layer after the stem input.
//
// An activation of C channels and H×W pixels is stored as
//
//	x[(cb*H*W + p)*BlockC + j]  = channel cb*BlockC + j at pixel p = y*W + x,
//
// for cb < ceil(C/BlockC), p < H*W, j < BlockC: blocks of 16 channels, each a
// (H*W, 16) matrix. Channels C..roundUp(C,16)-1 of the last block are padding
// and hold zeros (every blocked op writes zeros there). One vector of 16
// floats (a ZMM register, or two YMM) holds the 16 channels of one pixel, so
// depthwise and pointwise layers both run at full vector width whatever the
// map size (7×7 maps waste nothing), and a 1×1 convolution reads its input
// directly, with no packing at run time.

// BlockC is the channel block of the blocked layout.
const BlockC = 16

// Blocks is the number of channel blocks holding c channels.
func Blocks(c int) int { return ceilDiv(c, BlockC) }

// BlockedLen is the number of floats of a blocked activation of c channels
// and hw pixels (padding channels included).
func BlockedLen(c, hw int) int { return Blocks(c) * BlockC * hw }

// ToBlocked converts one image from NCHW, src (c, hw), to the blocked
// layout, dst (BlockedLen(c, hw)); padding channels are set to zero.
func ToBlocked(c, hw int, src, dst []float32) {
	src = src[:c*hw]
	dst = dst[:BlockedLen(c, hw)]
	for cb := 0; cb < Blocks(c); cb++ {
		blk := dst[cb*hw*BlockC : (cb+1)*hw*BlockC]
		for j := 0; j < BlockC; j++ {
			ch := cb*BlockC + j
			if ch >= c {
				for p := 0; p < hw; p++ {
					blk[p*BlockC+j] = 0
				}
				continue
			}
			plane := src[ch*hw : (ch+1)*hw]
			for p, v := range plane {
				blk[p*BlockC+j] = v
			}
		}
	}
}

// FromBlocked converts one image from the blocked layout, src
// (BlockedLen(c, hw)), back to NCHW, dst (c, hw).
func FromBlocked(c, hw int, src, dst []float32) {
	src = src[:BlockedLen(c, hw)]
	dst = dst[:c*hw]
	for ch := 0; ch < c; ch++ {
		cb, j := ch/BlockC, ch%BlockC
		blk := src[cb*hw*BlockC : (cb+1)*hw*BlockC]
		plane := dst[ch*hw : (ch+1)*hw]
		for p := range plane {
			plane[p] = blk[p*BlockC+j]
		}
	}
}

// BlockedAvgPool writes the mean over the hw pixels of each of the c
// channels of the blocked activation x to out (c).
func BlockedAvgPool(c, hw int, x, out []float32) {
	x = x[:BlockedLen(c, hw)]
	out = out[:c]
	inv := 1 / float32(hw)
	var acc [BlockC]float32
	for cb := 0; cb < Blocks(c); cb++ {
		acc = [BlockC]float32{}
		blk := x[cb*hw*BlockC : (cb+1)*hw*BlockC]
		for p := 0; p+BlockC <= len(blk); p += BlockC {
			v := (*[BlockC]float32)(blk[p : p+BlockC])
			for j := range acc {
				acc[j] += v[j]
			}
		}
		for j := 0; j < BlockC && cb*BlockC+j < c; j++ {
			out[cb*BlockC+j] = acc[j] * inv
		}
	}
}

// BlockedScaleReLU computes x = max(x·g[channel], 0) in place on a blocked
// activation of c channels and hw pixels (the squeeze-excitation gate).
func BlockedScaleReLU(c, hw int, x, g []float32) {
	x = x[:BlockedLen(c, hw)]
	var gv [BlockC]float32
	for cb := 0; cb < Blocks(c); cb++ {
		gv = [BlockC]float32{}
		copy(gv[:], g[cb*BlockC:min(c, (cb+1)*BlockC)])
		blk := x[cb*hw*BlockC : (cb+1)*hw*BlockC]
		for p := 0; p+BlockC <= len(blk); p += BlockC {
			v := (*[BlockC]float32)(blk[p : p+BlockC])
			for j := range v {
				v[j] = max(v[j]*gv[j], 0)
			}
		}
	}
}
