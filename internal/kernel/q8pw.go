package kernel

import (
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// The pointwise int8 micro-kernel computes a tile of pwRows pixels ×
// pwCols output channels. Its operands are int16 so that one VPMADDWD
// multiplies two input channels by two weights and sums the pair into
// int32 exactly (no saturation: |255·127 + 255·128| < 2³¹):
//
//	x16: pwRows rows of kp pairs (x[p][2k], x[p][2k+1]) widened to int16
//	     (an odd Cin gets a zero pair partner)
//	w16: per block of pwCols outputs, kp pairs × pwCols outputs × 2
//	     (w[o][2k], w[o][2k+1]), outputs past Cout zero
const (
	pwRows = 4
	pwCols = 16
)

// q8pwKernel computes, for nb consecutive packed weight blocks b (kp ≥ 1, nb ≥ 1),
// r < pwRows and j < pwCols, with wb = w16[b·kp·pwCols·2:],
//
//	out[r·ldo + b·pwCols + j] = Requant(bias[b·pwCols+j] + Σ_k x16[r·2kp + k]·wb[...], mult[b·pwCols+j], zp, lo, hi)
//
// See q8pwGo, the pure-Go twin whose loops define it.
type q8pwKernel func(x16 []int16, kp, nb int, w16 []int16, bias []int32, mult []float32, out []uint8, ldo int, zlh *[4]int32)

// q8pwGo is the reference loop of the pointwise micro-kernel.
func q8pwGo(x16 []int16, kp, nb int, w16 []int16, bias []int32, mult []float32, out []uint8, ldo int, zlh *[4]int32) {
	for b := range nb {
		wb := w16[b*kp*pwCols*2 : (b+1)*kp*pwCols*2]
		for r := range pwRows {
			xr := x16[r*2*kp : (r+1)*2*kp]
			for j := range pwCols {
				o := b*pwCols + j
				acc := bias[o]
				for k := range kp {
					acc += int32(xr[2*k])*int32(wb[(k*pwCols+j)*2]) + int32(xr[2*k+1])*int32(wb[(k*pwCols+j)*2+1])
				}
				out[r*ldo+o] = ref.Requant(acc, mult[o], zlh[0], zlh[1], zlh[2])
			}
		}
	}
}

// widenU8 is dst[i] = int16(src[i]) for i < len(src): the widening of
// activations into the micro-kernel's rows (q8widenAVX2 is its twin).
func widenU8(dst []int16, src []uint8) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = int16(v)
	}
}

// q8widenImpl is the widening in use, chosen once from the CPU.
var q8widenImpl = widenU8

// q8pwImpl is the micro-kernel in use, chosen once from the CPU.
var q8pwImpl q8pwKernel = q8pwGo

// Q8Kernels names the int8 pointwise micro-kernel in use.
func Q8Kernels() string {
	if cpu.Selected() >= cpu.AVX2 && q8pwHaveAVX2 {
		return "int8 pointwise 4x16 avx2 (vpmaddwd, blocks looped in asm)"
	}
	return "int8 pointwise 4x16 pure go"
}

func (op *QConvOp) packPointwise() { op.packRows(op.S.Cin) }

// packRows packs op.w, (Cout, n) int8, into the micro-kernel's int16
// blocks (see q8pwKernel), and pads bias and multipliers to the blocks.
func (op *QConvOp) packRows(n int) {
	s := &op.S
	kp := (n + 1) / 2
	nb := (s.Cout + pwCols - 1) / pwCols
	op.w16 = make([]int16, nb*kp*pwCols*2)
	pb := make([]int32, nb*pwCols)
	pm := make([]float32, nb*pwCols)
	for o := range nb * pwCols {
		pm[o] = 1
		if o < s.Cout {
			pb[o], pm[o] = op.bias[o], op.mult[o]
		}
	}
	for b := range nb {
		for k := range kp {
			for j := range pwCols {
				o := b*pwCols + j
				if o >= s.Cout {
					continue
				}
				for e := range 2 {
					if ci := 2*k + e; ci < n {
						op.w16[((b*kp+k)*pwCols+j)*2+e] = int16(op.w[o*n+ci])
					}
				}
			}
		}
	}
	op.bias, op.mult = pb, pm
}

// runPointwise computes output pixels [p0, p1) of a 1×1 convolution, or
// of a dense one through im2col rows.
func (op *QConvOp) runPointwise(x, out []uint8, p0, p1 int, sc *QScratch) {
	s := &op.S
	cin, cout := s.Cin, s.Cout
	if op.Kind == "im2col" {
		cin = s.Cin * s.K * s.KW
	}
	kp := (cin + 1) / 2
	nb := (cout + pwCols - 1) / pwCols
	kern := q8pwImpl
	if cpu.Selected() < cpu.AVX2 {
		kern = q8pwGo
	}
	widen := q8widenImpl
	if cpu.Selected() < cpu.AVX2 {
		widen = widenU8
	}
	x16 := sc.x16[:pwRows*2*kp]
	for p := p0; p < p1; p += pwRows {
		rows := min(pwRows, p1-p)
		for r := range pwRows {
			xr := x16[r*2*kp : (r+1)*2*kp]
			if r >= rows {
				clear(xr)
				continue
			}
			if op.Kind == "im2col" {
				op.im2colRow(x, p+r, xr)
			} else if cin&1 == 1 || r == 0 {
				// Even Cin: the rows' pixels are contiguous in x and in
				// x16, widened with one call.
				n := 1
				if cin&1 == 0 {
					n = rows
				}
				widen(x16[r*2*kp : (r+n)*2*kp][:n*cin], x[(p+r)*cin:(p+r+n)*cin])
			}
			if cin&1 == 1 {
				xr[cin] = 0
			}
		}
		b0 := 0
		if rows == pwRows && cout >= pwCols {
			// The full blocks of a full tile: one call, straight into out.
			b0 = cout / pwCols
			kern(x16, kp, b0, op.w16, op.bias, op.mult, out[p*cout:], cout, &op.zlh)
		}
		for b := b0; b < nb; b++ {
			w := op.w16[b*kp*pwCols*2 : (b+1)*kp*pwCols*2]
			bias, mult := op.bias[b*pwCols:(b+1)*pwCols], op.mult[b*pwCols:(b+1)*pwCols]
			kern(x16, kp, 1, w, bias, mult, sc.t, pwCols, &op.zlh)
			n := min(pwCols, cout-b*pwCols)
			for r := range rows {
				copy(out[(p+r)*cout+b*pwCols:(p+r)*cout+b*pwCols+n], sc.t[r*pwCols:r*pwCols+n])
			}
		}
	}
}

// im2colRow writes output pixel p's receptive field, tap-major, as
// x − XZero (0 for padding: the real value 0) into xr.
func (op *QConvOp) im2colRow(x []uint8, p int, xr []int16) {
	s := &op.S
	oy, ox := p/s.OutW, p%s.OutW
	xz := int16(s.XZero)
	iy0, ix0 := oy*s.Stride-s.Pad, ox*s.Stride-s.PadW
	if s.Dilation == 1 && iy0 >= 0 && iy0+s.K <= s.H && ix0 >= 0 && ix0+s.KW <= s.W {
		// Every tap inside: per kernel row, the KW taps' channels are
		// contiguous in x as in xr.
		n := s.KW * s.Cin
		for ky := range s.K {
			src := x[((iy0+ky)*s.W+ix0)*s.Cin:][:n]
			dst := xr[ky*n:][:n]
			for c, v := range src {
				dst[c] = int16(v) - xz
			}
		}
		return
	}
	i := 0
	for ky := range s.K {
		iy := oy*s.Stride - s.Pad + ky*s.Dilation
		for kx := range s.KW {
			ix := ox*s.Stride - s.PadW + kx*s.Dilation
			dst := xr[i : i+s.Cin]
			i += s.Cin
			if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
				clear(dst)
				continue
			}
			for c, v := range x[(iy*s.W+ix)*s.Cin : (iy*s.W+ix+1)*s.Cin] {
				dst[c] = int16(v) - xz
			}
		}
	}
}
