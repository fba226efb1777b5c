// Command amx generates the AMX (Advanced Matrix Extensions) bfloat16 tile
// kernel of GemmBF16 and the AVX-512 kernels that pack its operands:
// internal/kernel/amx_amd64.s and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./amx -out ../amx_amd64.s -stubs ../amx_stub_amd64.go
//
// amxTiles computes C (+)= A·B on 16×16 float32 tiles of C, walking the
// strips of C two by two (2×2 blocks of tiles, 1×2, 2×1 or 1×1 at the
// edges): four C accumulators in tmm0–3, two A tiles in tmm4–5 and two B
// tiles in tmm6–7, one TDPBF16PS per (C tile, 32-long k step). A is a
// row-major bfloat16 matrix (16-row strips, rows lda bytes apart, k padded
// to 32); B is packed in VNNI order, 1 KB per (16-column strip, k step):
// row r of a tile holds, for each of its 16 columns, the pair of bfloat16
// values at k = 2r and 2r+1. C is float32, row-major, rows ldc bytes apart.
//
// Neither Go's assembler nor avo knows the AMX instructions, so they are
// emitted as bytes (VEX encodings, Intel SDM vol. 2, "TILELOADD",
// "TDPBF16PS", ...) by the small encoder below; every operand register is
// a fixed physical one.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// raw emits one byte.
func raw(b byte) { Instruction(&ir.Instruction{Opcode: "BYTE", Operands: []Op{U8(b)}}) }

func idx(r Physical) byte { return byte(r.PhysicalIndex()) }

// vex3 emits a three-byte VEX prefix for map 0F38, W0, L0: rx/x/b are the
// high bits of ModRM.reg, SIB.index and the base register; vvvv the
// (uninverted) extra operand; pp 0 (none), 1 (66), 2 (F3) or 3 (F2).
func vex3(r, x, b bool, vvvv, pp byte) {
	raw(0xC4)
	p1 := byte(0x02)
	if !r {
		p1 |= 0x80
	}
	if !x {
		p1 |= 0x40
	}
	if !b {
		p1 |= 0x20
	}
	raw(p1)
	raw((^vvvv&15)<<3 | pp)
}

// memOp emits the opcode, ModRM, SIB and displacement of a [base + index +
// disp] operand (index nil: no index) with register field reg.
func memOp(op, reg byte, base, index Physical, disp int8, pp byte) {
	bi := idx(base)
	xi := byte(4) // no index
	if index != nil {
		xi = idx(index)
		if xi == 4 {
			panic("RSP cannot be an index")
		}
	}
	vex3(false, xi >= 8, bi >= 8, 0, pp)
	raw(op)
	mod := byte(0)
	if disp != 0 || bi&7 == 5 {
		mod = 1
	}
	raw(mod<<6 | (reg&7)<<3 | 4)
	raw((xi&7)<<3 | bi&7)
	if mod == 1 {
		raw(byte(disp))
	}
}

func ldtilecfg(base Physical) {
	Comment(fmt.Sprintf("LDTILECFG (%s)", base.Asm()))
	memOp(0x49, 0, base, nil, 0, 0)
}

func tilerelease() {
	Comment("TILERELEASE")
	vex3(false, false, false, 0, 0)
	raw(0x49)
	raw(0xC0)
}

func tilezero(t byte) {
	Comment(fmt.Sprintf("TILEZERO tmm%d", t))
	vex3(false, false, false, 0, 3)
	raw(0x49)
	raw(0xC0 | t<<3)
}

func tileload(t byte, base, stride Physical, disp int8) {
	Comment(fmt.Sprintf("TILELOADD tmm%d, %d(%s)(%s*1)", t, disp, base.Asm(), stride.Asm()))
	memOp(0x4B, t, base, stride, disp, 3)
}

func tilestore(t byte, base, stride Physical, disp int8) {
	Comment(fmt.Sprintf("TILESTORED %d(%s)(%s*1), tmm%d", disp, base.Asm(), stride.Asm(), t))
	memOp(0x4B, t, base, stride, disp, 2)
}

// tdpbf16ps emits TDPBF16PS tmm(d), tmm(a), tmm(b): d += a·b.
func tdpbf16ps(d, a, b byte) {
	Comment(fmt.Sprintf("TDPBF16PS tmm%d, tmm%d, tmm%d", d, a, b))
	vex3(false, false, false, b, 2)
	raw(0x5C)
	raw(0xC0 | d<<3 | a)
}

// Offsets of the words of amxArgs (amx.go), passed as *[14]uintptr.
const (
	offCfg     = 0
	offA       = 8
	offLda     = 16
	offB       = 24
	offBStride = 32
	offC       = 40
	offLdc     = 48
	offMStrips = 56
	offNStrips = 64
	offKt      = 72
	offAcc     = 80
	offARow    = 88
	offBCur    = 96
	offCCol    = 104
)

var (
	args   = RAX // *amxArgs
	ldc    = RBX
	kcount = RCX
	lda    = RDX
	a0     = RSI
	a1     = RDI
	b0     = R8
	mcount = R9
	b1     = R10
	crow   = R11
	c64    = R12 // the constant 64: row stride of packed B tiles
	ncount = R13
)

func field(off int) Mem { return Mem{Base: args, Disp: off} }

// block emits one mr×nr block of C tiles (mr, nr ∈ {1, 2}) at crow, with A
// from aRow and B from bCur, then advances aRow and crow by mr strips.
func block(mr, nr int, id string) {
	// C accumulators: tile 2i+j is C tile (i, j).
	acc := "acc_" + id
	init := "init_" + id
	CMPQ(field(offAcc), U8(0))
	JNE(LabelRef(acc))
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j++ {
			tilezero(byte(2*i + j))
		}
	}
	JMP(LabelRef(init))
	Label(acc)
	MOVQ(crow, a0)
	for i := 0; i < mr; i++ {
		if i == 1 {
			MOVQ(ldc, a1)
			SHLQ(U8(4), a1)
			ADDQ(a1, a0)
		}
		for j := 0; j < nr; j++ {
			tileload(byte(2*i+j), a0, ldc, int8(64*j))
		}
	}
	Label(init)
	MOVQ(field(offARow), a0)
	if mr == 2 {
		MOVQ(lda, a1)
		SHLQ(U8(4), a1)
		ADDQ(a0, a1)
	}
	MOVQ(field(offBCur), b0)
	if nr == 2 {
		MOVQ(field(offBStride), b1)
		ADDQ(b0, b1)
	}
	MOVQ(field(offKt), kcount)
	loop := "k_" + id
	Label(loop)
	tileload(4, a0, lda, 0)
	tileload(6, b0, c64, 0)
	if mr == 2 {
		tileload(5, a1, lda, 0)
	}
	if nr == 2 {
		tileload(7, b1, c64, 0)
	}
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j++ {
			tdpbf16ps(byte(2*i+j), byte(4+i), byte(6+j))
		}
	}
	ADDQ(U8(64), a0)
	ADDQ(U32(1024), b0)
	if mr == 2 {
		ADDQ(U8(64), a1)
	}
	if nr == 2 {
		ADDQ(U32(1024), b1)
	}
	DECQ(kcount)
	JNZ(LabelRef(loop))
	// Store C.
	MOVQ(crow, a0)
	for i := 0; i < mr; i++ {
		if i == 1 {
			MOVQ(ldc, a1)
			SHLQ(U8(4), a1)
			ADDQ(a1, a0)
		}
		for j := 0; j < nr; j++ {
			tilestore(byte(2*i+j), a0, ldc, int8(64*j))
		}
	}
	// Next block of rows: aRow += mr·16·lda, crow += mr·16·ldc.
	MOVQ(lda, a1)
	SHLQ(U8(byte(4+mr-1)), a1)
	ADDQ(a1, field(offARow))
	MOVQ(ldc, a1)
	SHLQ(U8(byte(4+mr-1)), a1)
	ADDQ(a1, crow)
}

// column emits the walk down the M strips of one column of nr strips.
func column(nr int) {
	id := fmt.Sprintf("n%d", nr)
	MOVQ(field(offA), a0)
	MOVQ(a0, field(offARow))
	MOVQ(field(offCCol), crow)
	MOVQ(field(offMStrips), mcount)
	Label("m2_" + id)
	CMPQ(mcount, U8(2))
	JLT(LabelRef("m1_" + id))
	block(2, nr, "2"+id)
	SUBQ(U8(2), mcount)
	JMP(LabelRef("m2_" + id))
	Label("m1_" + id)
	CMPQ(mcount, U8(1))
	JLT(LabelRef("mdone_" + id))
	block(1, nr, "1"+id)
	Label("mdone_" + id)
	// Next column: bCur += nr·bstride, cCol += nr·64 bytes.
	MOVQ(field(offBStride), a1)
	if nr == 2 {
		SHLQ(U8(1), a1)
	}
	ADDQ(a1, field(offBCur))
	ADDQ(U8(byte(64*nr)), field(offCCol))
	SUBQ(U8(byte(nr)), ncount)
}

// roundBF16 rounds the float32 lanes of x to bfloat16, ties to even, in
// their upper halves: x += 0x7fff + (x>>16 & 1), except NaNs, which are
// made quiet (x | 0x400000) so that no NaN becomes an infinity (bf16 in
// bf16.go).
func roundBF16(x VecVirtual, c bf16Consts, t, orig VecVirtual, k Op) {
	VMOVDQA32(x, orig)
	VPSRLD(U8(16), x, t)
	VPANDD(c.one, t, t)
	VPADDD(c.bias, x, x)
	VPADDD(t, x, x)
	VPANDD(c.abs, orig, t)
	VPCMPUD(U8(6), c.inf, t, k) // t > 0x7f800000 (unsigned): NaN
	VPORD_Z(c.quiet, orig, k, t)
	VMOVDQA32(t, k, x)
}

type bf16Consts struct{ bias, one, abs, inf, quiet VecVirtual }

func constants() bf16Consts {
	g := GP32()
	var c bf16Consts
	for _, v := range []struct {
		dst *VecVirtual
		val uint32
	}{{&c.bias, 0x7fff}, {&c.one, 1}, {&c.abs, 0x7fffffff}, {&c.inf, 0x7f800000}, {&c.quiet, 0x400000}} {
		*v.dst = ZMM()
		MOVL(U32(v.val), g)
		VPBROADCASTD(g, *v.dst)
	}
	return c
}

// rowKernel: dst[i] = bf16(src[i]) for len(src)/16 groups of 16.
func rowKernel() {
	TEXT("bf16RowAVX512", NOSPLIT, "func(src []float32, dst []uint16)")
	Pragma("noescape")
	Doc("bf16RowAVX512 rounds src to bfloat16 into dst, 16 values at a time (len(src)/16 groups); see bf16.")
	src, dst, n := GP64(), GP64(), GP64()
	Load(Param("src").Base(), src)
	Load(Param("dst").Base(), dst)
	Load(Param("src").Len(), n)
	SHRQ(U8(4), n)
	JZ(LabelRef("row_done"))
	c := constants()
	x, t, o := ZMM(), ZMM(), ZMM()
	k := K()
	Label("row_loop")
	VMOVUPS(Mem{Base: src}, x)
	roundBF16(x, c, t, o, k)
	VPSRLD(U8(16), x, x)
	VPMOVDW(x, Mem{Base: dst})
	ADDQ(U8(64), src)
	ADDQ(U8(32), dst)
	DECQ(n)
	JNZ(LabelRef("row_loop"))
	Label("row_done")
	VZEROUPPER()
	RET()
}

// pairsKernel: for each group g of 16 columns, dst[g·stride + j] =
// bf16(r0[16g+j]) | bf16(r1[16g+j])<<16 (two rows of B into one row of
// VNNI tiles, one strip per group).
func pairsKernel() {
	TEXT("bf16PairsAVX512", NOSPLIT, "func(r0, r1 []float32, dst []uint32, stride int)")
	Pragma("noescape")
	Doc("bf16PairsAVX512 packs two rows into VNNI pairs, a group of 16 columns every stride words of dst; see packBF16Rows.")
	p0, p1, dst, n, st := GP64(), GP64(), GP64(), GP64(), GP64()
	Load(Param("r0").Base(), p0)
	Load(Param("r1").Base(), p1)
	Load(Param("dst").Base(), dst)
	Load(Param("r0").Len(), n)
	Load(Param("stride"), st)
	SHLQ(U8(2), st)
	SHRQ(U8(4), n)
	JZ(LabelRef("pairs_done"))
	c := constants()
	hi := ZMM()
	g := GP32()
	MOVL(U32(0xffff0000), g)
	VPBROADCASTD(g, hi)
	x0, x1, t, o := ZMM(), ZMM(), ZMM(), ZMM()
	k := K()
	Label("pairs_loop")
	VMOVUPS(Mem{Base: p0}, x0)
	VMOVUPS(Mem{Base: p1}, x1)
	roundBF16(x0, c, t, o, k)
	roundBF16(x1, c, t, o, k)
	VPSRLD(U8(16), x0, x0)
	VPANDD(hi, x1, x1)
	VPORD(x1, x0, x0)
	VMOVDQU32(x0, Mem{Base: dst})
	ADDQ(U8(64), p0)
	ADDQ(U8(64), p1)
	ADDQ(st, dst)
	DECQ(n)
	JNZ(LabelRef("pairs_loop"))
	Label("pairs_done")
	VZEROUPPER()
	RET()
}

// colsKernel: for each group g of 32 values of src (one row of b, i.e.
// one column of B = bᵀ), dst[256g + 16q] = bf16(src[32g+2q]) |
// bf16(src[32g+2q+1])<<16, q < 16: the column's 16 pairs of one k step,
// scattered down the rows of its VNNI tile.
func colsKernel(odd, rows Mem) {
	TEXT("bf16ColsAVX512", NOSPLIT, "func(src []float32, dst []uint32)")
	Pragma("noescape")
	Doc("bf16ColsAVX512 packs one row of b as a column of VNNI tiles (len(src)/32 k steps); see packBF16Cols.")
	src, dst, n := GP64(), GP64(), GP64()
	Load(Param("src").Base(), src)
	Load(Param("dst").Base(), dst)
	Load(Param("src").Len(), n)
	SHRQ(U8(5), n)
	JZ(LabelRef("cols_done"))
	c := constants()
	perm, off := ZMM(), ZMM()
	VMOVDQU16(odd, perm)
	VMOVDQU32(rows, off)
	x0, x1, t, o := ZMM(), ZMM(), ZMM(), ZMM()
	k := K()
	Label("cols_loop")
	VMOVUPS(Mem{Base: src}, x0)
	VMOVUPS(Mem{Base: src, Disp: 64}, x1)
	roundBF16(x0, c, t, o, k)
	roundBF16(x1, c, t, o, k)
	VPERMT2W(x1, perm, x0)
	KXNORW(k, k, k)
	VPSCATTERDD(x0, k, Mem{Base: dst, Index: off, Scale: 4})
	ADDQ(U8(128), src)
	ADDQ(U32(1024), dst)
	DECQ(n)
	JNZ(LabelRef("cols_loop"))
	Label("cols_done")
	VZEROUPPER()
	RET()
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")

	TEXT("amxTiles", NOSPLIT, "func(p *[14]uintptr)")
	Pragma("noescape")
	Doc("amxTiles computes the C tiles described by p with AMX; see amxTilesGo.")
	Load(Param("p"), args)
	MOVQ(field(offCfg), a0)
	ldtilecfg(a0)
	MOVQ(field(offLda), lda)
	MOVQ(field(offLdc), ldc)
	MOVQ(U32(64), c64)
	MOVQ(field(offB), a0)
	MOVQ(a0, field(offBCur))
	MOVQ(field(offC), a0)
	MOVQ(a0, field(offCCol))
	MOVQ(field(offNStrips), ncount)
	Label("n2")
	CMPQ(ncount, U8(2))
	JLT(LabelRef("n1"))
	column(2)
	JMP(LabelRef("n2"))
	Label("n1")
	CMPQ(ncount, U8(1))
	JLT(LabelRef("done"))
	column(1)
	Label("done")
	tilerelease()
	RET()

	odd := GLOBL("bf16odd", RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(2*i, U16(uint16(2*i+1)))
	}
	rows := GLOBL("bf16rows", RODATA|NOPTR)
	for q := 0; q < 16; q++ {
		DATA(4*q, U32(uint32(16*q)))
	}
	dpKernel()
	rowKernel()
	pairsKernel()
	colsKernel(odd, rows)

	Generate()
}
