package kernel

import (
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// dwChan is the channel order of a packed depthwise block: the order in
// which VPUNPCKLWD/VPUNPCKHWD leave the 16 channels of two YMM halves.
var dwChan = [16]int{0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15}

// q8dwKernel computes n output pixels of one 16-channel block of a
// depthwise convolution whose taps all lie inside the input; see q8dwGo,
// the pure-Go twin whose loops define it.
type q8dwKernel func(x []uint8, offs []int, n, xstep int, w []int16, bias []int32, mult []float32, out []uint8, ostep int, zlh *[4]int32)

// q8dwGo: for pixel i and packed position j (channel ch = dwChan[j]),
//
//	out[i·ostep + ch] = Requant(bias[j] + Σ_k x[i·xstep + offs[2k] + ch]·w[k·32 + (j/8)·16 + (j%8)·2]
//	                                    + x[i·xstep + offs[2k+1] + ch]·w[k·32 + (j/8)·16 + (j%8)·2 + 1], mult[j], zlh)
//
// with zlh = (zero point, lo, hi, ·); taps come in pairs (offs: byte
// offsets of the taps from the pixel's first tap; an odd tap count ends
// with a zero-weight partner). The input zero point's share of the sum,
// −XZero·Σ_t w[t], is folded into the packed bias (packDepthwise): the
// int32 sums are the same modulo 2³², hence the same accumulator.
func q8dwGo(x []uint8, offs []int, n, xstep int, w []int16, bias []int32, mult []float32, out []uint8, ostep int, zlh *[4]int32) {
	for i := range n {
		for j := range 16 {
			ch, half, e := dwChan[j], j/8, j%8
			acc := bias[j]
			for k := range len(offs) / 2 {
				xa := int32(x[i*xstep+offs[2*k]+ch])
				xb := int32(x[i*xstep+offs[2*k+1]+ch])
				acc += xa*int32(w[k*32+half*16+e*2]) + xb*int32(w[k*32+half*16+e*2+1])
			}
			out[i*ostep+ch] = ref.Requant(acc, mult[j], zlh[0], zlh[1], zlh[2])
		}
	}
}

var q8dwImpl q8dwKernel = q8dwGo

// packDepthwise packs the (K, KW, C) weights into 16-channel blocks of tap
// pairs (see q8dwGo) when C is a multiple of 16.
func (op *QConvOp) packDepthwise() {
	s := &op.S
	c, kk := s.Cout, s.K*s.KW
	if c%16 != 0 {
		return
	}
	np := (kk + 1) / 2
	op.dwW = make([]int16, c/16*np*32)
	op.dwB = make([]int32, c)
	op.dwM = make([]float32, c)
	for b := range c / 16 {
		for j := range 16 {
			ch := b*16 + dwChan[j]
			op.dwB[b*16+j], op.dwM[b*16+j] = op.bias[ch], op.mult[ch]
			for t := range kk {
				op.dwB[b*16+j] -= s.XZero * int32(op.w[t*c+ch])
			}
			for k := range np {
				for e := range 2 {
					if t := 2*k + e; t < kk {
						op.dwW[(b*np+k)*32+(j/8)*16+(j%8)*2+e] = int16(op.w[t*c+ch])
					}
				}
			}
		}
	}
	op.dwOffs = make([]int, 2*np)
	op.dwPatchOffs = make([]int, 2*np)
	for t := range 2 * np {
		if t < kk {
			ky, kx := t/s.KW, t%s.KW
			op.dwOffs[t] = (ky*s.Dilation*s.W + kx*s.Dilation) * c
			op.dwPatchOffs[t] = t * c
		}
	}
	op.dwPad = make([]uint8, s.KW*c)
	for i := range op.dwPad {
		op.dwPad[i] = uint8(s.XZero)
	}
}

// dwInterior returns the output columns [a, b) whose taps lie inside the
// input's width.
func dwInterior(s *QConvShape) (int, int) {
	a := (s.PadW + s.Stride - 1) / s.Stride
	b := a
	for b < s.OutW && b*s.Stride-s.PadW+(s.KW-1)*s.Dilation < s.W {
		b++
	}
	return a, b
}
