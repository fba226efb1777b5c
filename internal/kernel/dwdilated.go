package kernel

import "sync"

// Dilated 3×3 depthwise convolutions (stride 1, padding = dilation d) on
// blocked activations, on the 3×3 pad-1 DepthwiseOp: output pixel (y, x)
// reads (y + (k−1)·d, x + (l−1)·d), pixels of its own phase (y mod d,
// x mod d), the neighbours one step away in that phase's sub-map, and zero
// beyond it. So the map is split into its d² phase sub-maps (each
// ⌈(H−py)/d⌉ × ⌈(W−px)/d⌉), each is convolved by an undilated 3×3 pad-1
// depthwise convolution with the same weights, and the results are put
// back in place. (DeepLabV3's dilated backbone stages: the reshuffle is two
// passes over the map, the convolution runs on the SIMD kernels.)

// DepthwiseDilatedOK reports whether NewDepthwiseDilatedOp supports c with
// dilation dil: a depthwise 3×3 convolution, stride 1, Pad == dil ≥ 1, and
// a non-empty map.
func DepthwiseDilatedOK(c Conv, dil int) bool {
	return c.Groups == c.InC && c.InC == c.OutC && c.InC > 0 && c.K == 3 && c.Stride == 1 &&
		dil >= 1 && c.Pad == dil && c.InH > 0 && c.InW > 0
}

// DepthwiseDilatedOp is a dilated 3×3 depthwise convolution on blocked
// activations with bias and optional ReLU fused. Run allocates nothing in
// steady state and may be called concurrently.
type DepthwiseDilatedOp struct {
	c      Conv
	dil    int
	nb     int
	phases []dwPhase
	bufs   sync.Pool // *[]float32: phase sub-maps in, then out
}

// dwPhase is one phase sub-map: its origin, size, offset in the phase
// buffer (per channel block, in pixels) and the op that convolves it.
type dwPhase struct {
	py, px, h, w, at int
	op               *DepthwiseOp
}

// NewDepthwiseDilatedOp packs the weights w (C, 1, 3, 3) and bias (C, or
// nil), fusing ReLU if relu. It panics if !DepthwiseDilatedOK(c, dil).
func NewDepthwiseDilatedOp(c Conv, dil int, w, bias []float32, relu bool) *DepthwiseDilatedOp {
	if !DepthwiseDilatedOK(c, dil) {
		panic("kernel: NewDepthwiseDilatedOp: unsupported convolution")
	}
	op := &DepthwiseDilatedOp{c: c, dil: dil, nb: Blocks(c.InC)}
	ops := map[[2]int]*DepthwiseOp{}
	at := 0
	for py := 0; py < min(dil, c.InH); py++ {
		for px := 0; px < min(dil, c.InW); px++ {
			h, wd := ceilDiv(c.InH-py, dil), ceilDiv(c.InW-px, dil)
			sub, ok := ops[[2]int{h, wd}]
			if !ok {
				sub = NewDepthwiseOp(Conv{InC: c.InC, InH: h, InW: wd, OutC: c.InC, K: 3, Stride: 1, Pad: 1, Groups: c.InC}, w, bias, relu)
				ops[[2]int{h, wd}] = sub
			}
			op.phases = append(op.phases, dwPhase{py, px, h, wd, at, sub})
			at += h * wd
		}
	}
	n := op.nb * c.InH * c.InW * BlockC
	op.bufs.New = func() any { b := make([]float32, 2*n); return &b }
	return op
}

// OutShape is the output's channels, height and width (the input's).
func (op *DepthwiseDilatedOp) OutShape() (c, h, w int) { return op.c.OutC, op.c.InH, op.c.InW }

// Run computes out = relu?(depthwise_dilated(x) + bias).
//
//	x, out: BlockedLen(C, InH·InW) floats, not overlapping; padding
//	channels of out are written as 0.
func (op *DepthwiseDilatedOp) Run(x, out []float32) {
	c, d := op.c, op.dil
	hw := c.InH * c.InW
	n := op.nb * hw * BlockC
	x, out = x[:n], out[:n]
	bp := op.bufs.Get().(*[]float32)
	in, res := (*bp)[:n], (*bp)[n:2*n]
	// The phase buffer holds, per phase, its sub-map of every channel
	// block: the layout each phase's DepthwiseOp reads.
	for _, ph := range op.phases {
		sub := ph.h * ph.w * BlockC
		base := op.nb * ph.at * BlockC
		for cb := 0; cb < op.nb; cb++ {
			src := x[cb*hw*BlockC : (cb+1)*hw*BlockC]
			dst := in[base+cb*sub : base+(cb+1)*sub]
			i := 0
			for y := ph.py; y < c.InH; y += d {
				for xx := ph.px; xx < c.InW; xx += d {
					copy(dst[i:i+BlockC], src[(y*c.InW+xx)*BlockC:])
					i += BlockC
				}
			}
		}
		ph.op.Run(in[base:base+op.nb*sub], res[base:base+op.nb*sub])
		for cb := 0; cb < op.nb; cb++ {
			src := res[base+cb*sub : base+(cb+1)*sub]
			dst := out[cb*hw*BlockC : (cb+1)*hw*BlockC]
			i := 0
			for y := ph.py; y < c.InH; y += d {
				for xx := ph.px; xx < c.InW; xx += d {
					copy(dst[(y*c.InW+xx)*BlockC:(y*c.InW+xx+1)*BlockC], src[i:i+BlockC])
					i += BlockC
				}
			}
		}
	}
	op.bufs.Put(bp)
}
