// Command q8pw generates the int8 pointwise (1×1) convolution micro-kernel
// of package kernel for AVX2: internal/kernel/q8pw_amd64.s and its Go stub.
//
//	cd internal/kernel/_gen && go run ./q8pw -out ../q8pw_amd64.s -stubs ../q8pw_stub_amd64.go
//
// q8pwAVX2 has the signature and the meaning of q8pwGo (q8pw.go, the
// pure-Go twin whose loops define it): a tile of 4 pixels × nb blocks of
// 16 output channels (kp ≥ 1, nb ≥ 1); for block b, with wb = w16[b·kp·32:],
//
//	out[r·ldo + 16b + j] = Requant(bias[16b+j] + Σ_k x16[r·2kp + 2k]·wb[(k·16+j)·2] + x16[r·2kp + 2k+1]·wb[(k·16+j)·2+1], mult[16b+j], zlh)
//
// Exactness: the operands are int16 (uint8 activations and int8 weights
// widened when packed), and VPMADDWD multiplies int16 pairs and adds the two
// products into int32 without saturation (|255·127 + 255·128| < 2³¹); the
// int32 accumulation wraps like Go's int32 (and cannot overflow for fewer
// than 2³¹/(255·128) ≈ 65,000 input channels). Per input-channel pair, the
// kernel loads the pair's weights for the 16 outputs (two YMM: 8 outputs ×
// 2 int16 each), broadcasts each pixel's pair (VPBROADCASTD, one int32 =
// two int16) and issues 8 VPMADDWD + 8 VPADDD into 8 accumulators. The
// loop over the blocks is inside, so one call does the whole tile (the
// activations, 4·2kp int16, stay in L1; the constants stay in registers).
//
// Requantisation is ref.Requant's, step by step: VCVTDQ2PS (round to
// nearest even, as Go's float32(int32)), VMULPS by the multiplier (one
// float32 rounding, as Go's float32 product), VMAXPS/VMINPS with lo−zp and
// hi−zp (saturation in float, so the conversion cannot overflow),
// VCVTPS2DQ (MXCSR's default round-to-nearest-even, which Go keeps, =
// math.RoundToEven), VPADDD zp; the values are then in [lo, hi] ⊂ [0, 255]
// and the two packs (VPACKSSDW, VPACKUSWB) are exact.
package main

import (
	"flag"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const rows = 4

func kernel() {
	TEXT("q8pwAVX2", NOSPLIT, "func(x16 []int16, kp, nb int, w16 []int16, bias []int32, mult []float32, out []uint8, ldo int, zlh *[4]int32)")
	Pragma("noescape")
	Doc("q8pwAVX2 computes a 4-pixel tile of nb 16-channel blocks of an int8 pointwise convolution with AVX2 (VPMADDWD); see q8pwGo.")
	// Row r at xr[r] + idx; idx advances over the pairs and is reset for
	// each block.
	x := Load(Param("x16").Base(), GP64())
	ldx := Load(Param("kp"), GP64())
	SHLQ(Imm(2), ldx) // bytes per pixel row: 2kp int16
	var xr [rows]GPVirtual
	for r := range rows {
		xr[r] = GP64()
		if r == 0 {
			MOVQ(x, xr[r])
		} else {
			LEAQ(Mem{Base: xr[r-1], Index: ldx, Scale: 1}, xr[r])
		}
	}
	w := Load(Param("w16").Base(), GP64())
	nb := Load(Param("nb"), GP64())
	bias := Load(Param("bias").Base(), GP64())
	mult := Load(Param("mult").Base(), GP64())
	ob := Load(Param("out").Base(), GP64())

	// Constants: zp, lo−zp and hi−zp (as float32), for every block.
	zlh := Load(Param("zlh"), GP64())
	zp32, lo32, hi32 := GP32(), GP32(), GP32()
	MOVL(Mem{Base: zlh}, zp32)
	MOVL(Mem{Base: zlh, Disp: 4}, lo32)
	MOVL(Mem{Base: zlh, Disp: 8}, hi32)
	SUBL(zp32, lo32)
	SUBL(zp32, hi32)
	zp, lo, hi := YMM(), YMM(), YMM()
	bcast := func(g GPVirtual, v VecVirtual, float bool) {
		VMOVD(g, v.AsX())
		VPBROADCASTD(v.AsX(), v)
		if float {
			VCVTDQ2PS(v, v)
		}
	}
	bcast(zp32, zp, false)
	bcast(lo32, lo, true)
	bcast(hi32, hi, true)

	Label("block")
	var acc [rows][2]VecVirtual
	for r := range rows {
		for h := range 2 {
			acc[r][h] = YMM()
			VPXOR(acc[r][h], acc[r][h], acc[r][h])
		}
	}
	idx := GP64()
	XORQ(idx, idx)
	row := func(r int) Mem { return Mem{Base: xr[r], Index: idx, Scale: 1} }
	k := Load(Param("kp"), GP64())
	Label("pair")
	w0, w1 := YMM(), YMM()
	VMOVDQU(Mem{Base: w}, w0)
	VMOVDQU(Mem{Base: w, Disp: 32}, w1)
	for r := range rows {
		b, t := YMM(), YMM()
		VPBROADCASTD(row(r), b)
		VPMADDWD(w0, b, t)
		VPADDD(t, acc[r][0], acc[r][0])
		VPMADDWD(w1, b, t)
		VPADDD(t, acc[r][1], acc[r][1])
	}
	ADDQ(Imm(4), idx)
	ADDQ(Imm(64), w) // after the pairs, w is the next block's
	DECQ(k)
	JNZ(LabelRef("pair"))

	for h := range 2 {
		for r := range rows {
			a := acc[r][h]
			VPADDD(Mem{Base: bias, Disp: 32 * h}, a, a)
			VCVTDQ2PS(a, a)
			VMULPS(Mem{Base: mult, Disp: 32 * h}, a, a)
			VMAXPS(lo, a, a)
			VMINPS(hi, a, a)
			VCVTPS2DQ(a, a)
			VPADDD(zp, a, a)
		}
	}
	ldo := Load(Param("ldo"), GP64())
	o := GP64()
	MOVQ(ob, o)
	for r := range rows {
		p := acc[r][0]
		VPACKSSDW(acc[r][1], acc[r][0], p) // per lane: 4 of cols 0–7, 4 of cols 8–15
		VPERMQ(Imm(0xD8), p, p)            // cols 0–7, then 8–15, as int16
		hiX := acc[r][1].AsX()
		VEXTRACTI128(Imm(1), p, hiX)
		VPACKUSWB(hiX, p.AsX(), hiX)
		VMOVDQU(hiX, Mem{Base: o})
		if r < rows-1 {
			ADDQ(ldo, o)
		}
	}
	ADDQ(Imm(64), bias)
	ADDQ(Imm(64), mult)
	ADDQ(Imm(16), ob)
	DECQ(nb)
	JNZ(LabelRef("block"))
	VZEROUPPER()
	RET()
}

// depthwise generates q8dwAVX2 (see q8dwGo in q8dw.go): n output pixels
// of one 16-channel block of a depthwise convolution whose taps are all
// inside the input (or in a patch padded with the input zero point). Per
// pair of taps, both taps' 16 uint8 channels are widened to int16
// (VPMOVZXBW) and interleaved (VPUNPCKLWD/VPUNPCKHWD: channels 0–3, 8–11
// and 4–7, 12–15) so that VPMADDWD against the weights packed in the same
// order adds both taps' products per channel into int32, exactly
// (|x·w| ≤ 255·128 fits int16's operands, the pair sum int32). The input
// zero point is not subtracted: its share, −XZero·Σw, is in the packed
// bias. Bias and multipliers are packed in that channel order too, and
// VPACKSSDW of the two halves puts the channels back in order.
func depthwise() {
	TEXT("q8dwAVX2", NOSPLIT, "func(x []uint8, offs []int, n, xstep int, w []int16, bias []int32, mult []float32, out []uint8, ostep int, zlh *[4]int32)")
	Pragma("noescape")
	Doc("q8dwAVX2 computes n pixels of a 16-channel block of an int8 depthwise convolution with AVX2; see q8dwGo.")
	x := Load(Param("x").Base(), GP64())
	offs := Load(Param("offs").Base(), GP64())
	npairs := Load(Param("offs").Len(), GP64())
	SHRQ(Imm(1), npairs)
	n := Load(Param("n"), GP64())
	xstep := Load(Param("xstep"), GP64())
	ostep := Load(Param("ostep"), GP64())
	out := Load(Param("out").Base(), GP64())
	zlh := Load(Param("zlh"), GP64())
	zp32, lo32, hi32 := GP32(), GP32(), GP32()
	MOVL(Mem{Base: zlh}, zp32)
	MOVL(Mem{Base: zlh, Disp: 4}, lo32)
	MOVL(Mem{Base: zlh, Disp: 8}, hi32)
	SUBL(zp32, lo32)
	SUBL(zp32, hi32)
	zp, lo, hi := YMM(), YMM(), YMM()
	for _, c := range []struct {
		g     GPVirtual
		v     VecVirtual
		float bool
	}{{zp32, zp, false}, {lo32, lo, true}, {hi32, hi, true}} {
		xv := XMM()
		VMOVD(c.g, xv)
		VPBROADCASTD(xv, c.v)
		if c.float {
			VCVTDQ2PS(c.v, c.v)
		}
	}
	w := Load(Param("w").Base(), GP64())
	bias := Load(Param("bias").Base(), GP64())
	mult := Load(Param("mult").Base(), GP64())

	Label("pixel")
	CMPQ(n, Imm(0))
	JE(LabelRef("end"))
	accL, accH := YMM(), YMM()
	VMOVDQU(Mem{Base: bias}, accL)
	VMOVDQU(Mem{Base: bias, Disp: 32}, accH)
	k, wp, op := GP64(), GP64(), GP64()
	XORQ(k, k)
	MOVQ(w, wp)
	MOVQ(offs, op)
	Label("pair")
	CMPQ(k, npairs)
	JE(LabelRef("pairsdone"))
	oa, ob := GP64(), GP64()
	MOVQ(Mem{Base: op}, oa)
	MOVQ(Mem{Base: op, Disp: 8}, ob)
	xa, xb := YMM(), YMM()
	VPMOVZXBW(Mem{Base: x, Index: oa, Scale: 1}, xa)
	VPMOVZXBW(Mem{Base: x, Index: ob, Scale: 1}, xb)
	l, h := YMM(), YMM()
	VPUNPCKLWD(xb, xa, l)
	VPUNPCKHWD(xb, xa, h)
	VPMADDWD(Mem{Base: wp}, l, l)
	VPMADDWD(Mem{Base: wp, Disp: 32}, h, h)
	VPADDD(l, accL, accL)
	VPADDD(h, accH, accH)
	ADDQ(Imm(16), op)
	ADDQ(Imm(64), wp)
	INCQ(k)
	JMP(LabelRef("pair"))
	Label("pairsdone")
	for i, a := range []VecVirtual{accL, accH} {
		VCVTDQ2PS(a, a)
		VMULPS(Mem{Base: mult, Disp: 32 * i}, a, a)
		VMAXPS(lo, a, a)
		VMINPS(hi, a, a)
		VCVTPS2DQ(a, a)
		VPADDD(zp, a, a)
	}
	p := YMM()
	VPACKSSDW(accH, accL, p) // lane 0: channels 0–7, lane 1: 8–15
	hx := XMM()
	VEXTRACTI128(Imm(1), p, hx)
	VPACKUSWB(hx, p.AsX(), hx)
	VMOVDQU(hx, Mem{Base: out})
	ADDQ(ostep, out)
	ADDQ(xstep, x)
	DECQ(n)
	JMP(LabelRef("pixel"))
	Label("end")
	VZEROUPPER()
	RET()
}

// widen generates q8widenAVX2 (see widenU8 in q8pw.go): dst[i] =
// int16(src[i]) for i < len(src), 16 at a time with VPMOVZXBW, the tail
// one by one.
func widen() {
	TEXT("q8widenAVX2", NOSPLIT, "func(dst []int16, src []uint8)")
	Pragma("noescape")
	Doc("q8widenAVX2 widens uint8 to int16 with AVX2 (VPMOVZXBW); see widenU8.")
	dst := Load(Param("dst").Base(), GP64())
	src := Load(Param("src").Base(), GP64())
	n := Load(Param("src").Len(), GP64())
	Label("wide")
	CMPQ(n, Imm(16))
	JL(LabelRef("tail"))
	v := YMM()
	VPMOVZXBW(Mem{Base: src}, v)
	VMOVDQU(v, Mem{Base: dst})
	ADDQ(Imm(16), src)
	ADDQ(Imm(32), dst)
	SUBQ(Imm(16), n)
	JMP(LabelRef("wide"))
	Label("tail")
	TESTQ(n, n)
	JE(LabelRef("done"))
	b := GP32()
	MOVBLZX(Mem{Base: src}, b)
	MOVW(b.As16(), Mem{Base: dst})
	INCQ(src)
	ADDQ(Imm(2), dst)
	DECQ(n)
	JMP(LabelRef("tail"))
	Label("done")
	VZEROUPPER()
	RET()
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	kernel()
	depthwise()
	widen()
	Generate()
}
