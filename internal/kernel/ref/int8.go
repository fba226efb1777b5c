package ref

import "math"

// Requant is the project's requantisation, the one every int8 kernel must
// reproduce bit for bit:
//
//	f = fl32(fl32(acc) · m)                  (float32 conversion and product, IEEE round-to-nearest-even)
//	f = min(max(f, lo−zp), hi−zp)            (saturate in float, so no conversion can overflow)
//	y = roundHalfEven(f) + zp                (ties to even, as ONNX QuantizeLinear and CVTPS2DQ)
//
// acc is the int32 accumulator (bias included), m the float32 multiplier
// (input scale · weight scale / output scale), zp the output zero point and
// [lo, hi] the output range (lo = zp for a fused ReLU). fl32(acc) is exact
// for |acc| ≤ 2²⁴ and rounds to nearest even above.
func Requant(acc int32, m float32, zp, lo, hi int32) uint8 {
	f := float32(float32(acc) * m)
	if l := float32(lo - zp); f < l {
		f = l
	}
	if h := float32(hi - zp); f > h {
		f = h
	}
	return uint8(int32(math.RoundToEven(float64(f))) + zp)
}

// QConvShape describes an int8 convolution of one image in the
// channels-last layout.
type QConvShape struct {
	H, W, Cin      int // input (H, W, Cin)
	Cout, K, KW    int // weights (Cout, Cin/Groups, K, KW)
	Stride, Pad    int // same stride in both directions
	PadW, Dilation int
	Groups         int
	OutH, OutW     int
	XZero          int32 // input zero point: padding is the real value 0, i.e. XZero
	YZero, Lo, Hi  int32 // output zero point and clamp range
}

// QConv is the exact integer convolution:
//
//	x:    (H, W, Cin) uint8, real value (x − XZero)·sx
//	w:    (Cout, Cin/Groups, K, KW) int8, real value w·sw[o]
//	bias: (Cout) int32, real value bias·sx·sw[o]
//	mult: (Cout) float32 = sx·sw[o]/sy
//	out:  (OutH, OutW, Cout) uint8 = Requant(bias[o] + Σ (x−XZero)·w, mult[o], YZero, Lo, Hi)
//
// Padded taps contribute nothing (the padded real value is 0).
func QConv(s QConvShape, x []uint8, w []int8, bias []int32, mult []float32, out []uint8) {
	cg, og := s.Cin/s.Groups, s.Cout/s.Groups
	for oy := 0; oy < s.OutH; oy++ {
		for ox := 0; ox < s.OutW; ox++ {
			for o := 0; o < s.Cout; o++ {
				g := o / og
				acc := bias[o]
				for ci := 0; ci < cg; ci++ {
					c := g*cg + ci
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
							xv := int32(x[(iy*s.W+ix)*s.Cin+c]) - s.XZero
							acc += xv * int32(w[((o*cg+ci)*s.K+ky)*s.KW+kx])
						}
					}
				}
				out[(oy*s.OutW+ox)*s.Cout+o] = Requant(acc, mult[o], s.YZero, s.Lo, s.Hi)
			}
		}
	}
}
