package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// dpbf16Tiles is amxTiles for CPUs with AVX512-BF16 but no tile unit (AMD
// Zen 4 and 5, Intel Cooper Lake): the same job on the same packed
// operands, with VDPBF16PS (16 float32 lanes += 16 products of bfloat16
// pairs per instruction, twice the multiply-adds of a float32 FMA).
//
// A 16-row strip of C is computed as two halves of 8 rows; per half and
// per pair of 16-column strips, 16 ZMM accumulators (8 rows × 2 strips)
// take, for each pair of k values, the two B rows of the VNNI tiles (16
// columns' pairs each, one load) and the 8 rows' A pairs (one broadcast
// each). A pair row r of k step t of a B strip lies 64·(16t + r) bytes
// into the strip, so the pairs of a strip are one contiguous run, as are
// a row's pairs in A.
//
// Neither Go's assembler nor avo knows VDPBF16PS; it is emitted as bytes
// (EVEX, register operands only) by evexDPBF16PS.

// evexDPBF16PS encodes VDPBF16PS zmm(d), zmm(s), zmm(r): per float32 lane
// i, d[i] += s.bf16[2i+1]·r.bf16[2i+1] + s.bf16[2i]·r.bf16[2i] (EVEX.512.F3.0F38.W0
// 52 /r, Intel SDM vol. 2; the bits of P0–P2 hold the registers' high
// bits inverted).
func evexDPBF16PS(d, s, r int) [6]byte {
	inv := func(ok bool) byte {
		if ok {
			return 0
		}
		return 1
	}
	p0 := inv(d&8 != 0)<<7 | inv(r&16 != 0)<<6 | inv(r&8 != 0)<<5 | inv(d&16 != 0)<<4 | 0x2 // map 0F38
	p1 := byte(^s&15)<<3 | 1<<2 | 0x2                                                       // W0, F3
	p2 := byte(2)<<5 | inv(s&16 != 0)<<3                                                    // 512 bits, no mask
	return [6]byte{0x62, p0, p1, p2, 0x52, 0xC0 | byte(d&7)<<3 | byte(r&7)}
}

var zmm = [32]VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}

func vdpbf16ps(d, s, r int) {
	Comment(fmt.Sprintf("VDPBF16PS Z%d, Z%d, Z%d", r, s, d))
	for _, b := range evexDPBF16PS(d, s, r) {
		raw(b)
	}
}

// Registers of dpbf16Tiles (args is RAX, as in amxTiles).
var (
	dpL    = RDX // lda in bytes
	dpL3   = RBX // 3·lda
	dpA0   = RSI // rows 0, 1, 2, 4, 6 of the half strip
	dpA3   = RDI // rows 3, 5, 7
	dpB0   = R8
	dpB1   = R10
	dpCnt  = RCX
	dpTmp  = R9
	dpARow = R11 // the half strip's first A row
	dpCRow = R12 // the half strip's first C row
	dpHalf = R13 // halves left in the column
)

// offNLeft holds dpbf16Tiles' count of strips of columns left (the slot
// amxTiles uses for its A row).
const offNLeft = offARow

// dpRows addresses the 8 A rows of a half strip from two row pointers
// and lda, 3·lda: row r is base + index·scale (no index: base alone).
var dpRows = [8]struct {
	base, index Register
	scale       uint8
}{
	{dpA0, nil, 0}, {dpA0, dpL, 1}, {dpA0, dpL, 2}, {dpA3, nil, 0},
	{dpA0, dpL, 4}, {dpA3, dpL, 2}, {dpA0, dpL3, 2}, {dpA3, dpL, 4},
}

// dpRow is the address of A row i (0–7) of the half strip, disp bytes on.
func dpRow(i, disp int) Mem {
	r := dpRows[i]
	if r.index == nil {
		return Mem{Base: r.base, Disp: disp}
	}
	return Mem{Base: r.base, Index: r.index, Scale: r.scale, Disp: disp}
}

// dpAcc is the accumulator of row i, strip j of a block nr strips wide.
func dpAcc(i, j, nr int) int { return nr*i + j }

// dpUnroll is how many pairs of k values one loop iteration takes (16·kt
// pairs per block, so any divisor of 16 works).
const dpUnroll = 4

// dpBlock emits 8 rows × nr strips of C at dpCRow from A at dpARow and B
// at offBCur.
func dpBlock(nr int) {
	id := fmt.Sprintf("dp%d", nr)
	CMPQ(field(offAcc), U8(0))
	JNE(LabelRef("acc_" + id))
	for i := 0; i < 8*nr; i++ {
		VPXORD(zmm[i], zmm[i], zmm[i])
	}
	JMP(LabelRef("init_" + id))
	Label("acc_" + id)
	MOVQ(dpCRow, dpA0)
	MOVQ(field(offLdc), dpCnt)
	for i := 0; i < 8; i++ {
		for j := 0; j < nr; j++ {
			VMOVUPS(Mem{Base: dpA0, Disp: 64 * j}, zmm[dpAcc(i, j, nr)])
		}
		ADDQ(dpCnt, dpA0)
	}
	Label("init_" + id)
	MOVQ(dpARow, dpA0)
	LEAQ(Mem{Base: dpA0, Index: dpL3, Scale: 1}, dpA3)
	MOVQ(field(offBCur), dpB0)
	if nr == 2 {
		MOVQ(field(offBStride), dpB1)
		ADDQ(dpB0, dpB1)
	}
	MOVQ(field(offKt), dpCnt)
	SHLQ(U8(4), dpCnt) // 16·kt pairs
	SHRQ(U8(2), dpCnt) // dpUnroll per iteration
	Label("k_" + id)
	for u := 0; u < dpUnroll; u++ {
		VMOVUPS(Mem{Base: dpB0, Disp: 64 * u}, zmm[16])
		if nr == 2 {
			VMOVUPS(Mem{Base: dpB1, Disp: 64 * u}, zmm[17])
		}
		for i := 0; i < 8; i++ {
			VPBROADCASTD(dpRow(i, 4*u), zmm[18+i])
			for j := 0; j < nr; j++ {
				vdpbf16ps(dpAcc(i, j, nr), 18+i, 16+j)
			}
		}
	}
	ADDQ(U8(4*dpUnroll), dpA0)
	ADDQ(U8(4*dpUnroll), dpA3)
	ADDQ(U32(64*dpUnroll), dpB0)
	if nr == 2 {
		ADDQ(U32(64*dpUnroll), dpB1)
	}
	DECQ(dpCnt)
	JNZ(LabelRef("k_" + id))
	MOVQ(dpCRow, dpA0)
	MOVQ(field(offLdc), dpCnt)
	for i := 0; i < 8; i++ {
		for j := 0; j < nr; j++ {
			VMOVUPS(zmm[dpAcc(i, j, nr)], Mem{Base: dpA0, Disp: 64 * j})
		}
		ADDQ(dpCnt, dpA0)
	}
}

// dpColumn emits the walk down the half strips of one column of nr
// strips, then moves to the next column.
func dpColumn(nr int) {
	id := fmt.Sprintf("dp%d", nr)
	MOVQ(field(offA), dpARow)
	MOVQ(field(offCCol), dpCRow)
	MOVQ(field(offMStrips), dpHalf)
	SHLQ(U8(1), dpHalf)
	Label("h_" + id)
	dpBlock(nr)
	MOVQ(dpL, dpTmp)
	SHLQ(U8(3), dpTmp)
	ADDQ(dpTmp, dpARow)
	MOVQ(field(offLdc), dpTmp)
	SHLQ(U8(3), dpTmp)
	ADDQ(dpTmp, dpCRow)
	DECQ(dpHalf)
	JNZ(LabelRef("h_" + id))
	MOVQ(field(offBStride), dpTmp)
	if nr == 2 {
		SHLQ(U8(1), dpTmp)
	}
	ADDQ(dpTmp, field(offBCur))
	ADDQ(U8(byte(64*nr)), field(offCCol))
	SUBQ(U8(byte(nr)), field(offNLeft))
}

// dpKernel emits dpbf16Tiles.
func dpKernel() {
	TEXT("dpbf16Tiles", NOSPLIT, "func(p *[14]uintptr)")
	Pragma("noescape")
	Doc("dpbf16Tiles computes the C tiles described by p with AVX512-BF16; see tileJob.runGo.")
	Load(Param("p"), args)
	MOVQ(field(offLda), dpL)
	LEAQ(Mem{Base: dpL, Index: dpL, Scale: 2}, dpL3)
	MOVQ(field(offB), dpTmp)
	MOVQ(dpTmp, field(offBCur))
	MOVQ(field(offC), dpTmp)
	MOVQ(dpTmp, field(offCCol))
	MOVQ(field(offNStrips), dpTmp)
	MOVQ(dpTmp, field(offNLeft))
	Label("dp_n2")
	CMPQ(field(offNLeft), U8(2))
	JLT(LabelRef("dp_n1"))
	dpColumn(2)
	JMP(LabelRef("dp_n2"))
	Label("dp_n1")
	CMPQ(field(offNLeft), U8(1))
	JLT(LabelRef("dp_done"))
	dpColumn(1)
	Label("dp_done")
	VZEROUPPER()
	RET()
}
