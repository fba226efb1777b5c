package kernel

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// QConvShape describes an int8 convolution of one image in the
// channels-last layout (see ref.QConv, the oracle).
type QConvShape = ref.QConvShape

// Requant is the project's requantisation (see ref.Requant: float32
// multiplier, saturation in float, round half to even).
func Requant(acc int32, m float32, zp, lo, hi int32) uint8 { return ref.Requant(acc, m, zp, lo, hi) }

// QConvOp is an int8 convolution with its weights packed once for the
// kernel its shape selects: pointwise (1×1, stride 1, no padding, one
// group), depthwise (one input and one output channel per group) or
// general (any kernel, stride, padding, dilation and groups). Every path
// computes exactly ref.QConv. Run allocates nothing.
type QConvOp struct {
	S    QConvShape
	Kind string // "pointwise", "depthwise" or "general"
	w    []int8 // packed: pointwise (Cout, Cin); depthwise (K, KW, C); general (Cout, K, KW, Cin/Groups)
	w16  []int16
	bias []int32 // bias, with −XZero·Σw folded in on the pointwise path
	mult []float32
	// zlh: output zero point, lo, hi, input zero point for the
	// micro-kernels (in the op, so passing it does not allocate).
	zlh [4]int32
	// Depthwise blocks for q8dwKernel (C a multiple of 16).
	dwW    []int16
	dwB    []int32
	dwM    []float32
	dwOffs []int
	// Border pixels (dwBorder): tap offsets in a (K, KW, C) patch, and
	// KW·C input zero points for taps outside the input.
	dwPatchOffs []int
	dwPad       []uint8
}

// NewQConvOp checks the shape and packs w: (Cout, Cin/Groups, K, KW).
func NewQConvOp(s QConvShape, w []int8, bias []int32, mult []float32) (*QConvOp, error) {
	if s.Groups < 1 || s.Cin%s.Groups != 0 || s.Cout%s.Groups != 0 || s.K < 1 || s.KW < 1 || s.Stride < 1 || s.Dilation < 1 {
		return nil, fmt.Errorf("int8 conv: bad shape %+v", s)
	}
	cg := s.Cin / s.Groups
	if len(w) != s.Cout*cg*s.K*s.KW || len(bias) != s.Cout || len(mult) != s.Cout {
		return nil, fmt.Errorf("int8 conv: %d weights, %d biases, %d multipliers for shape %+v", len(w), len(bias), len(mult), s)
	}
	if s.Lo < 0 || s.Hi > 255 || s.Lo > s.Hi || s.YZero < s.Lo || s.YZero > s.Hi || s.XZero < 0 || s.XZero > 255 {
		return nil, fmt.Errorf("int8 conv: zero points or range out of uint8 (%+v)", s)
	}
	for _, m := range mult {
		if !(m > 0) || math.IsInf(float64(m), 0) {
			return nil, fmt.Errorf("int8 conv: multiplier %v must be positive and finite", m)
		}
	}
	op := &QConvOp{S: s, mult: append([]float32(nil), mult...), bias: append([]int32(nil), bias...),
		zlh: [4]int32{s.YZero, s.Lo, s.Hi, s.XZero}}
	switch {
	case s.K == 1 && s.KW == 1 && s.Stride == 1 && s.Pad == 0 && s.PadW == 0 && s.Groups == 1 && s.OutH == s.H && s.OutW == s.W:
		op.Kind = "pointwise"
		op.w = append([]int8(nil), w...)
		for o := range s.Cout {
			var sum int32
			for _, v := range w[o*s.Cin : (o+1)*s.Cin] {
				sum += int32(v)
			}
			op.bias[o] -= s.XZero * sum
		}
		op.packPointwise()
	case s.Groups == 1 && s.Cin*s.K*s.KW <= 1<<16:
		// A dense convolution (the stem): im2col rows (taps × input
		// channels, x − XZero, padding 0) through the pointwise
		// micro-kernel, weights packed (Cout, K·KW·Cin).
		op.Kind = "im2col"
		kk := s.K * s.KW
		op.w = make([]int8, len(w))
		for o := range s.Cout {
			for ci := range s.Cin {
				for t := range kk {
					op.w[(o*kk+t)*s.Cin+ci] = w[(o*s.Cin+ci)*kk+t]
				}
			}
		}
		op.packRows(kk * s.Cin)
	case cg == 1 && s.Groups == s.Cout:
		op.Kind = "depthwise"
		op.w = make([]int8, len(w))
		for c := range s.Cout {
			for t := range s.K * s.KW {
				op.w[t*s.Cout+c] = w[c*s.K*s.KW+t]
			}
		}
		op.packDepthwise()
	default:
		op.Kind = "general"
		op.w = make([]int8, len(w))
		kk := s.K * s.KW
		for o := range s.Cout {
			for ci := range cg {
				for t := range kk {
					op.w[(o*kk+t)*cg+ci] = w[(o*cg+ci)*kk+t]
				}
			}
		}
	}
	return op, nil
}

// QScratch is a worker's scratch for QConvOp.Run; one serves every op
// whose Cout and Cin it was made for (NewQScratch).
type QScratch struct {
	acc []int32
	x16 []int16
	t   []uint8
	dw  []uint8 // depthwise border patches and their outputs (dwBorder)
}

// ScratchC is the channel count NewQScratch must allow for the op (for
// im2col and depthwise ops, taps × channels).
func (op *QConvOp) ScratchC() int {
	if op.Kind == "im2col" || op.Kind == "depthwise" {
		return max(op.S.Cout, op.S.Cin*op.S.K*op.S.KW)
	}
	return max(op.S.Cout, op.S.Cin)
}

// NewQScratch makes scratch for ops whose ScratchC is at most maxC.
func NewQScratch(maxC int) *QScratch {
	return &QScratch{acc: make([]int32, maxC), x16: make([]int16, pwRows*(maxC+1)), t: make([]uint8, pwRows*pwCols),
		dw: make([]uint8, 2*dwPatchPix*maxC)}
}

// Run computes output rows [y0, y1) of one image: x (H, W, Cin) → out
// (OutH, OutW, Cout).
func (op *QConvOp) Run(x, out []uint8, y0, y1 int, sc *QScratch) {
	s := &op.S
	if len(x) < s.H*s.W*s.Cin || len(out) < s.OutH*s.OutW*s.Cout || y0 < 0 || y1 > s.OutH || len(sc.acc) < s.Cout || len(sc.x16) < pwRows*(op.ScratchC()+1) || len(sc.dw) < 2*dwPatchPix*op.ScratchC() {
		panic("kernel: int8 conv buffers too small")
	}
	switch op.Kind {
	case "pointwise", "im2col":
		op.runPointwise(x, out, y0*s.OutW, y1*s.OutW, sc)
	case "depthwise":
		op.runDepthwise(x, out, y0, y1, sc)
	default:
		op.runGeneral(x, out, y0, y1, sc.acc[:s.Cout])
	}
}

// runDepthwise: per output pixel, the taps accumulate across the channel
// vector (weights packed (K, KW, C)). With packed 16-channel blocks, the
// interior runs q8dwKernel on the input itself and the border pixels run
// it on patches (see dwBorder); otherwise every pixel is dwPixel.
func (op *QConvOp) runDepthwise(x, out []uint8, y0, y1 int, sc *QScratch) {
	s := &op.S
	c := s.Cout
	if op.dwW == nil {
		for oy := y0; oy < y1; oy++ {
			for ox := 0; ox < s.OutW; ox++ {
				op.dwPixel(x, out, oy, ox, sc.acc[:c])
			}
		}
		return
	}
	kern := q8dwImpl
	if cpu.Selected() < cpu.AVX2 {
		kern = q8dwGo
	}
	a, b := dwInterior(s)
	np := len(op.dwOffs) / 2
	bd := dwBorder{op: op, x: x, out: out, sc: sc, kern: kern}
	for oy := y0; oy < y1; oy++ {
		iy0 := oy*s.Stride - s.Pad
		if iy0 >= 0 && iy0+(s.K-1)*s.Dilation < s.H && a < b {
			for blk := range c / 16 {
				base := (iy0*s.W+a*s.Stride-s.PadW)*c + blk*16
				kern(x[base:], op.dwOffs, b-a, s.Stride*c, op.dwW[blk*np*32:(blk+1)*np*32], op.dwB[blk*16:blk*16+16],
					op.dwM[blk*16:blk*16+16], out[(oy*s.OutW+a)*c+blk*16:], c, &op.zlh)
			}
			for ox := 0; ox < a; ox++ {
				bd.add(oy, ox)
			}
			for ox := b; ox < s.OutW; ox++ {
				bd.add(oy, ox)
			}
			continue
		}
		for ox := 0; ox < s.OutW; ox++ {
			bd.add(oy, ox)
		}
	}
	bd.flush()
}

// dwPatchPix is how many border pixels dwBorder gathers per kernel call.
const dwPatchPix = 8

// dwBorder runs depthwise border pixels (taps partly outside the input)
// through q8dwKernel: each pixel's receptive field is copied into a
// patch (K, KW, C) of the scratch (a kernel row's inside taps with one
// copy when the dilation is 1), taps outside the input filled with the
// input zero point (x − XZero = 0: padding adds nothing, as in ref.QConv),
// dwPatchPix patches per call; the outputs go to scratch and are copied
// to their pixels.
type dwBorder struct {
	op   *QConvOp
	x    []uint8
	out  []uint8
	sc   *QScratch
	kern q8dwKernel
	n    int
	pix  [dwPatchPix]int
}

func (bd *dwBorder) add(oy, ox int) {
	op, s := bd.op, &bd.op.S
	c, kk := s.Cout, s.K*s.KW
	patch := bd.sc.dw[bd.n*kk*c : (bd.n+1)*kk*c]
	ix0 := ox*s.Stride - s.PadW
	for ky := range s.K {
		iy := oy*s.Stride - s.Pad + ky*s.Dilation
		row := patch[ky*s.KW*c : (ky+1)*s.KW*c]
		if iy < 0 || iy >= s.H {
			copy(row, op.dwPad)
			continue
		}
		if s.Dilation == 1 {
			// The taps inside the input are contiguous in x: one copy,
			// zero points either side.
			kx0 := min(max(0, -ix0), s.KW)
			kx1 := max(min(s.KW, s.W-ix0), kx0)
			copy(row[:kx0*c], op.dwPad)
			copy(row[kx0*c:kx1*c], bd.x[(iy*s.W+ix0+kx0)*c:])
			copy(row[kx1*c:], op.dwPad)
			continue
		}
		for kx := range s.KW {
			ix := ox*s.Stride - s.PadW + kx*s.Dilation
			dst := patch[(ky*s.KW+kx)*c : (ky*s.KW+kx+1)*c]
			if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
				copy(dst, op.dwPad)
				continue
			}
			copy(dst, bd.x[(iy*s.W+ix)*c:(iy*s.W+ix+1)*c])
		}
	}
	bd.pix[bd.n] = oy*s.OutW + ox
	bd.n++
	if bd.n == dwPatchPix {
		bd.flush()
	}
}

func (bd *dwBorder) flush() {
	if bd.n == 0 {
		return
	}
	op, s := bd.op, &bd.op.S
	c, kk := s.Cout, s.K*s.KW
	np := len(op.dwOffs) / 2
	res := bd.sc.dw[dwPatchPix*kk*c : dwPatchPix*kk*c+bd.n*c]
	for blk := range c / 16 {
		bd.kern(bd.sc.dw[blk*16:], op.dwPatchOffs, bd.n, kk*c, op.dwW[blk*np*32:(blk+1)*np*32], op.dwB[blk*16:blk*16+16],
			op.dwM[blk*16:blk*16+16], res[blk*16:], c, &op.zlh)
	}
	for i, p := range bd.pix[:bd.n] {
		copy(bd.out[p*c:(p+1)*c], res[i*c:(i+1)*c])
	}
	bd.n = 0
}

// dwPixel computes one output pixel of a depthwise convolution, skipping
// taps outside the input.
func (op *QConvOp) dwPixel(x, out []uint8, oy, ox int, acc []int32) {
	s := &op.S
	c := s.Cout
	copy(acc, op.bias)
	for ky := 0; ky < s.K; ky++ {
		iy := oy*s.Stride - s.Pad + ky*s.Dilation
		if iy < 0 || iy >= s.H {
			continue
		}
		for kx := 0; kx < s.KW; kx++ {
			ix := ox*s.Stride - s.PadW + kx*s.Dilation
			if ix < 0 || ix >= s.W {
				continue
			}
			xr := x[(iy*s.W+ix)*c : (iy*s.W+ix+1)*c]
			wr := op.w[(ky*s.KW+kx)*c : (ky*s.KW+kx+1)*c]
			xz := s.XZero
			for i := range acc {
				acc[i] += (int32(xr[i]) - xz) * int32(wr[i])
			}
		}
	}
	requantRow(acc, op.mult, s, out[(oy*s.OutW+ox)*c:(oy*s.OutW+ox+1)*c])
}

func (op *QConvOp) runGeneral(x, out []uint8, y0, y1 int, acc []int32) {
	s := &op.S
	cg, og, kk := s.Cin/s.Groups, s.Cout/s.Groups, s.K*s.KW
	for oy := y0; oy < y1; oy++ {
		for ox := 0; ox < s.OutW; ox++ {
			copy(acc, op.bias)
			for ky := 0; ky < s.K; ky++ {
				iy := oy*s.Stride - s.Pad + ky*s.Dilation
				if iy < 0 || iy >= s.H {
					continue
				}
				for kx := 0; kx < s.KW; kx++ {
					ix := ox*s.Stride - s.PadW + kx*s.Dilation
					if ix < 0 || ix >= s.W {
						continue
					}
					px := x[(iy*s.W+ix)*s.Cin : (iy*s.W+ix+1)*s.Cin]
					t := ky*s.KW + kx
					if cg == 1 { // e.g. a grey stem: one tap is one product per output
						for o := range acc {
							acc[o] += (int32(px[o/og]) - s.XZero) * int32(op.w[o*kk+t])
						}
						continue
					}
					for o := range acc {
						xr := px[(o/og)*cg : (o/og+1)*cg]
						wr := op.w[(o*kk+t)*cg : (o*kk+t+1)*cg]
						var a int32
						for i, v := range xr {
							a += (int32(v) - s.XZero) * int32(wr[i])
						}
						acc[o] += a
					}
				}
			}
			requantRow(acc, op.mult, s, out[(oy*s.OutW+ox)*s.Cout:(oy*s.OutW+ox+1)*s.Cout])
		}
	}
}

func requantRow(acc []int32, mult []float32, s *QConvShape, out []uint8) {
	mult = mult[:len(acc)]
	out = out[:len(acc)]
	lo, hi := float32(s.Lo-s.YZero), float32(s.Hi-s.YZero)
	for i, a := range acc {
		out[i] = uint8(requantFast(a, mult[i], lo, hi) + s.YZero)
	}
}

// requantFast is ref.Requant without the zero point, rounding with the
// float32 magic number 1.5·2²³: adding it to f (|f| ≤ 2²², guaranteed by
// the saturation to [lo, hi] ⊂ [−255, 255] before it) leaves round-half-
// even(f) in the low mantissa bits, as the FPU rounds the sum to float32.
func requantFast(acc int32, m, lo, hi float32) int32 {
	f := float32(float32(acc) * m)
	f = min(max(f, lo), hi)
	return int32(math.Float32bits(float32(f+12582912))) - 0x4B400000
}
