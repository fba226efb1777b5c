// Command dw generates the depthwise 3×3 (pad 1, stride 1 and 2) kernels of
// package kernel: internal/kernel/depthwise_amd64.s and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./dw -out ../depthwise_amd64.s -stubs ../depthwise_stub_amd64.go
//
// Every kernel computes nch whole channels of one image (NCHW) in one call,
// so small planes (7×7, 14×14) pay no per-row or per-channel call overhead.
// For each output row it runs along W in vectors of L output pixels (L = 16
// for ZMM, 8 for YMM). Zero padding is done with lane masks: the first and
// the last vector of a row use masked loads (masked-out lanes read as zero
// and never fault) and a masked store; the vectors in between use plain
// loads folded into the FMAs. The masks depend only on the width, so they
// are computed once per call (kept in k1..k6 with AVX-512, on the stack with
// AVX2). A missing top or bottom input row is handled by four variants of
// the row code, chosen per row. Bias and ReLU are fused: the result is
// max(acc, floor) with floor = 0 (ReLU) or -Inf.
//
// Stride 1 loads each input row at column offsets -1, 0, +1. Stride 2
// deinterleaves x[2·ox : 2·ox+2L] into even (tap 1) and odd (tap 2) columns
// with VPERMT2PS (AVX-512) or VSHUFPS+VPERMPD (AVX2); tap 0 is the odd
// vector shifted up one lane, so its products are summed over the three
// rows first and shifted once per vector (VALIGND, or VPERM2F128+VPALIGNR),
// carrying the previous vector's last lane.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// gen describes one instruction-set variant.
type gen struct {
	name   string // function name suffix
	avx512 bool   // AVX-512 (k-masks, VPERMT2PS) rather than AVX2
	lanes  int    // 16 (ZMM) or 8 (YMM)
	stride int

	masks   Mem // per-call lane masks (uint16 for AVX-512, 32-byte vectors for AVX2)
	wv      [9]VecVirtual
	bias    VecVirtual
	bp      GPVirtual
	floor   VecVirtual
	idxE    VecVirtual
	idxO    VecVirtual
	kregs   []OpmaskVirtual // masks held in k registers (AVX-512 stride 1)
	nlabels int
}

var (
	mask16   Mem // uint16 (1<<i)-1, i = 0..16
	mask32   Mem // 8 × 0xffffffff then 8 × 0
	notLane0 Mem // 0, then 7 × 0xffffffff
	permEven Mem // 0, 2, 4, …, 30
	permOdd  Mem // 1, 3, 5, …, 31
	negInf   Mem
	zero     Mem
)

func constants() {
	mask16 = GLOBL("dwmask16", RODATA|NOPTR)
	for i := 0; i <= 16; i++ {
		DATA(2*i, U16(uint16(1<<i-1)))
	}
	mask32 = GLOBL("dwmask32", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := U32(0)
		if i < 8 {
			v = U32(0xffffffff)
		}
		DATA(4*i, v)
	}
	notLane0 = GLOBL("dwnotlane0", RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		v := U32(0xffffffff)
		if i == 0 {
			v = U32(0)
		}
		DATA(4*i, v)
	}
	permEven = GLOBL("dwpermeven", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(4*i, U32(uint32(2*i)))
	}
	permOdd = GLOBL("dwpermodd", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(4*i, U32(uint32(2*i+1)))
	}
	negInf = GLOBL("dwneginf", RODATA|NOPTR)
	DATA(0, U32(0xff800000))
	zero = GLOBL("dwzero", RODATA|NOPTR)
	DATA(0, U32(0))
}

func (g *gen) label(what string) string {
	g.nlabels++
	return fmt.Sprintf("%s_s%d%s_%d", what, g.stride, g.name, g.nlabels)
}

func (g *gen) vec() VecVirtual {
	if g.lanes == 16 {
		return ZMM()
	}
	return YMM()
}

// maskSize is the byte size of one stored lane mask.
func (g *gen) maskSize() int {
	if g.avx512 {
		return 2
	}
	return 32
}

func (g *gen) slot(i int) Mem { return g.masks.Offset(i * g.maskSize()) }

// setMask stores in slot i the mask of lanes l < clamp(n, 0, L), without lane
// 0 if clear0. n is clobbered.
func (g *gen) setMask(i int, n GPVirtual, clear0 bool) {
	z := GP64()
	XORQ(z, z)
	CMPQ(n, Imm(0))
	CMOVQLT(z, n)
	lim := GP64()
	MOVQ(U32(g.lanes), lim)
	CMPQ(n, lim)
	CMOVQGT(lim, n)
	t := GP64()
	if g.avx512 {
		LEAQ(mask16, t)
		m := GP32()
		MOVWLZX(Mem{Base: t, Index: n, Scale: 2}, m)
		if clear0 {
			ANDL(I32(-2), m)
		}
		MOVW(m.As16(), g.slot(i))
		return
	}
	LEAQ(mask32.Offset(32), t)
	SHLQ(Imm(2), n)
	SUBQ(n, t)
	v := YMM()
	VMOVUPS(Mem{Base: t}, v)
	if clear0 {
		VANDPS(notLane0, v, v)
	}
	VMOVUPS(v, g.slot(i))
}

// kmask returns mask i in a k register: the hoisted one if any, else loaded
// from its slot.
func (g *gen) kmask(i int) OpmaskVirtual {
	if i < len(g.kregs) {
		return g.kregs[i]
	}
	k := K()
	KMOVW(g.slot(i), k)
	return k
}

// load loads mem into a new register, masked by slot i (i < 0: unmasked).
func (g *gen) load(mem Mem, i int) VecVirtual {
	v := g.vec()
	switch {
	case i < 0:
		VMOVUPS(mem, v)
	case g.avx512:
		VMOVUPS_Z(mem, g.kmask(i), v)
	default:
		// The mask register doubles as the destination: AVX2 has only 16
		// vector registers.
		VMOVUPS(g.slot(i), v)
		VMASKMOVPS(mem, v, v)
	}
	return v
}

// store stores v to mem, masked by slot i (i < 0: unmasked).
func (g *gen) store(v VecVirtual, mem Mem, i int) {
	switch {
	case i < 0:
		VMOVUPS(v, mem)
	case g.avx512:
		VMOVUPS(v, g.kmask(i), mem)
	default:
		m := YMM()
		VMOVUPS(g.slot(i), m)
		VMASKMOVPS(v, m, mem)
	}
}

// vecKind selects the masks of a vector: first of a row, interior, or tail.
type vecKind int

const (
	first vecKind = iota
	fast
	tail
)

// at returns the memory operand disp bytes from input row ptr at the
// vector's column (col nil: column 0).
func (g *gen) at(ptr, col Register, disp int) Mem {
	m := Mem{Base: ptr, Disp: disp}
	if col != nil {
		m.Index, m.Scale = col, uint8(g.stride)
	}
	return m
}

// Mask slots: first vectors use [0, 3), tails [3, 6). Stride 1: left,
// centre (also the store), right. Stride 2: A, B, store.
const nMasks = 3

func maskBase(kind vecKind) int {
	if kind == tail {
		return nMasks
	}
	return 0
}

// taps1 returns the three column taps (kx = 0, 1, 2) of input row ptr for
// a stride-1 vector: registers, or memory operands for unmasked vectors.
func (g *gen) taps1(ptr, col Register, kind vecKind) [3]Op {
	if kind == fast {
		return [3]Op{g.at(ptr, col, -4), g.at(ptr, col, 0), g.at(ptr, col, 4)}
	}
	b := maskBase(kind)
	return [3]Op{g.load(g.at(ptr, col, -4), b), g.load(g.at(ptr, col, 0), b+1), g.load(g.at(ptr, col, 4), b+2)}
}

// evenOdd returns the even and odd columns of x[s : s+2L] for a stride-2
// vector: E[l] = x[s+2l] (tap kx = 1), O[l] = x[s+2l+1] (tap kx = 2).
func (g *gen) evenOdd(ptr, col Register, kind vecKind) (e, o VecVirtual) {
	L := g.lanes
	memA, memB := g.at(ptr, col, 0), g.at(ptr, col, 4*L)
	var b Op = memB
	var a VecVirtual
	if kind == fast {
		a = g.load(memA, -1)
	} else {
		a = g.load(memA, maskBase(kind))
		b = g.load(memB, maskBase(kind)+1)
	}
	e = g.vec()
	if g.avx512 {
		VMOVAPS(a, e)
		VPERMT2PS(b, g.idxE, e)
		VPERMT2PS(b, g.idxO, a)
	} else {
		VSHUFPS(U8(0x88), b, a, e)
		VSHUFPS(U8(0xdd), b, a, a)
		VPERMPD(U8(0xd8), e, e)
		VPERMPD(U8(0xd8), a, a)
	}
	return e, a
}

// loadBias sets v to the channel's bias: from a register with AVX-512, from
// memory with AVX2 (too few registers).
func (g *gen) loadBias(v VecVirtual) {
	if g.avx512 {
		VMOVAPS(g.bias, v)
		return
	}
	VBROADCASTSS(Mem{Base: g.bp}, v)
}

// vector computes and stores one output vector. rows[ky] is the input row
// pointer for kernel row ky or nil if that row is padding. For stride 2,
// pprev carries P of the previous vector of the row (see vector2).
func (g *gen) vector(rows [3]Register, orow, col Register, kind vecKind, pprev VecVirtual) {
	var acc VecVirtual
	if g.stride == 1 {
		acc = g.vector1(rows, col, kind)
	} else {
		acc = g.vector2(rows, col, kind, pprev)
	}
	VMAXPS(acc, g.floor, acc) // NaN in acc propagates
	out := Mem{Base: orow}
	if col != nil {
		out.Index, out.Scale = col, 1
	}
	if kind == fast {
		g.store(acc, out, -1)
		return
	}
	g.store(acc, out, maskBase(kind)+map[int]int{1: 1, 2: 2}[g.stride])
}

// vector1 sums the taps of a stride-1 vector: one FMA chain per input row,
// added at the end.
func (g *gen) vector1(rows [3]Register, col Register, kind vecKind) VecVirtual {
	var accs []VecVirtual
	for ky, ptr := range rows {
		if ptr == nil {
			continue
		}
		t := g.taps1(ptr, col, kind)
		acc := g.vec()
		w := g.wv[3*ky : 3*ky+3]
		if len(accs) == 0 {
			g.loadBias(acc)
			VFMADD231PS(t[0], w[0], acc)
		} else {
			VMULPS(t[0], w[0], acc)
		}
		VFMADD231PS(t[1], w[1], acc)
		VFMADD231PS(t[2], w[2], acc)
		accs = append(accs, acc)
	}
	acc := accs[0]
	for _, a := range accs[1:] {
		VADDPS(a, acc, acc)
	}
	return acc
}

// vector2 sums the taps of a stride-2 vector. Taps kx = 1, 2 use the even
// and odd columns E, O. Tap kx = 0 needs x[s+2l-1], which is O shifted up by
// one lane, so its products are summed over the rows first,
// P = Σ_ky O_ky·w[ky][0], and shifted once: lane 0 takes lane L-1 of the
// previous vector's P (pprev, zero at the start of a row: the left padding).
func (g *gen) vector2(rows [3]Register, col Register, kind vecKind, pprev VecVirtual) VecVirtual {
	var accs []VecVirtual
	var p VecVirtual
	for ky, ptr := range rows {
		if ptr == nil {
			continue
		}
		e, o := g.evenOdd(ptr, col, kind)
		w := g.wv[3*ky : 3*ky+3]
		if p == nil {
			p = g.vec()
			VMULPS(o, w[0], p)
		} else {
			VFMADD231PS(o, w[0], p)
		}
		switch {
		case len(accs) == 0:
			acc := g.vec()
			g.loadBias(acc)
			VFMADD231PS(e, w[1], acc)
			VFMADD231PS(o, w[2], acc)
			accs = append(accs, acc)
		case !g.avx512:
			// AVX2 has too few registers for one chain per row.
			VFMADD231PS(e, w[1], accs[0])
			VFMADD231PS(o, w[2], accs[0])
		default:
			acc := g.vec()
			VMULPS(e, w[1], acc)
			VFMADD231PS(o, w[2], acc)
			accs = append(accs, acc)
		}
	}
	acc := accs[0]
	for _, a := range accs[1:] {
		VADDPS(a, acc, acc)
	}
	m := g.vec()
	if g.avx512 {
		VALIGND(U8(g.lanes-1), pprev, p, m)
	} else {
		VPERM2F128(U8(0x21), p, pprev, m) // [pprev.hi, p.lo]
		VPALIGNR(U8(12), m, p, m)         // [pprev7, p0, …, p6]
	}
	VADDPS(m, acc, acc)
	VMOVAPS(p, pprev)
	return acc
}

// locals on the stack (8 bytes each).
const (
	locNF      = iota // number of unmasked vectors per row
	locTailCol        // byte offset of the tail vector in the output row
	locHasTail        // 1 if there is a tail vector
	locBStep          // bias pointer step: 4, or 0 without bias
	locBotRow         // output row whose bottom input row is padding, or -1
	locOH             // output rows
	locInAdj          // input pointer adjustment after a channel
	locOutRow         // output row stride in bytes
	nLocals
)

// kernel emits one kernel: setup (bias, floor, geometry, masks), then the
// channel loop around the row loop.
func (g *gen) kernel() {
	L := g.lanes
	name := fmt.Sprintf("dw3x3s%d%s", g.stride, g.name)
	TEXT(name, NOSPLIT, "func(x, w, b, out []float32, nch, h, wd int, relu bool)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the %s assembly version of dw3x3s%dGo.", name, g.name, g.stride))
	g.nlabels = 0
	nm := 2 * nMasks
	g.masks = AllocLocal((nm*g.maskSize() + 7) &^ 7)
	locals = AllocLocal(8 * nLocals)
	at := g.local

	xp := GP64()
	Load(Param("x").Base(), xp)
	wp := GP64()
	Load(Param("w").Base(), wp)
	bp := GP64()
	Load(Param("b").Base(), bp)
	blen := GP64()
	Load(Param("b").Len(), blen)
	op := GP64()
	Load(Param("out").Base(), op)
	nch := GP64()
	Load(Param("nch"), nch)
	h := GP64()
	Load(Param("h"), h)
	wd := GP64()
	Load(Param("wd"), wd)
	relu := GP8()
	Load(Param("relu"), relu)
	done := g.label("done")
	for _, r := range []GPVirtual{nch, h, wd} {
		TESTQ(r, r)
		JLE(LabelRef(done))
	}

	Comment("Bias: step through b, or read a zero without bias.")
	MOVQ(U32(4), at(locBStep))
	TESTQ(blen, blen)
	hasBias := g.label("hasbias")
	JNZ(LabelRef(hasBias))
	LEAQ(zero, bp)
	MOVQ(U32(0), at(locBStep))
	Label(hasBias)

	Comment("floor = 0 with ReLU, -Inf without.")
	g.floor = g.vec()
	VXORPS(g.floor, g.floor, g.floor)
	TESTB(relu, relu)
	reluOn := g.label("relu")
	JNZ(LabelRef(reluOn))
	VBROADCASTSS(negInf, g.floor)
	Label(reluOn)
	if g.avx512 && g.stride == 2 {
		g.idxE, g.idxO = g.vec(), g.vec()
		VMOVUPS(permEven.Offset(0), g.idxE)
		VMOVUPS(permOdd.Offset(0), g.idxO)
		// With YMM, VPERMT2PS indexes 16 elements: the first 8 table
		// entries (0..14 even, 1..15 odd) are the right indices.
	}

	Comment("Geometry and lane masks (identical for every row and channel).")
	ow := GP64()
	if g.stride == 1 {
		MOVQ(wd, ow)
		MOVQ(h, at(locOH))
		t := GP64()
		MOVQ(h, t)
		DECQ(t)
		MOVQ(t, at(locBotRow))
		MOVQ(U32(0), at(locInAdj))
	} else {
		// ow = (wd+1)/2, oh = (h+1)/2; bottom row missing iff h odd.
		LEAQ(Mem{Base: wd, Disp: 1}, ow)
		SHRQ(Imm(1), ow)
		oh := GP64()
		LEAQ(Mem{Base: h, Disp: 1}, oh)
		SHRQ(Imm(1), oh)
		MOVQ(oh, at(locOH))
		bot := GP64()
		MOVQ(oh, bot)
		DECQ(bot)
		m1 := GP64()
		MOVQ(I32(-1), m1)
		t := GP64()
		MOVQ(h, t)
		ANDQ(Imm(1), t)
		CMOVQEQ(m1, bot)
		MOVQ(bot, at(locBotRow))
		// inAdj = (h - 2·oh)·wd·4
		adj := GP64()
		MOVQ(h, adj)
		SUBQ(oh, adj)
		SUBQ(oh, adj)
		IMULQ(wd, adj)
		SHLQ(Imm(2), adj)
		MOVQ(adj, at(locInAdj))
	}
	{
		t := GP64()
		MOVQ(ow, t)
		SHLQ(Imm(2), t)
		MOVQ(t, at(locOutRow))
	}
	// nf: s1: max(0, (wd-1)/L - 1); s2: max(0, wd/(2L) - 1).
	nf := GP64()
	sh := map[int]uint64{8: 3, 16: 4}[L]
	if g.stride == 1 {
		LEAQ(Mem{Base: wd, Disp: -1}, nf)
		SHRQ(U8(sh), nf)
	} else {
		MOVQ(wd, nf)
		SHRQ(U8(sh+1), nf)
	}
	DECQ(nf)
	{
		z := GP64()
		XORQ(z, z)
		CMPQ(nf, Imm(0))
		CMOVQLT(z, nf)
	}
	MOVQ(nf, at(locNF))
	oxt := GP64() // tail start (output column)
	LEAQ(Mem{Base: nf, Disp: 1}, oxt)
	SHLQ(U8(sh), oxt)
	{
		tb := GP64()
		MOVQ(oxt, tb)
		SHLQ(Imm(2), tb)
		MOVQ(tb, at(locTailCol))
		nt := GP64()
		MOVQ(ow, nt)
		SUBQ(oxt, nt)
		f := GP64()
		XORQ(f, f)
		one := GP64()
		MOVQ(U32(1), one)
		CMPQ(nt, Imm(0))
		CMOVQGT(one, f)
		MOVQ(f, at(locHasTail))
	}
	n := func(base GPVirtual, add int) GPVirtual {
		r := GP64()
		LEAQ(Mem{Base: base, Disp: add}, r)
		return r
	}
	if g.stride == 1 {
		g.setMask(0, n(wd, 1), true)
		g.setMask(1, n(wd, 0), false)
		g.setMask(2, n(wd, -1), false)
		r := GP64()
		MOVQ(wd, r)
		SUBQ(oxt, r) // nt
		g.setMask(3, n(r, 1), false)
		g.setMask(4, n(r, 0), false)
		g.setMask(5, n(r, -1), false)
	} else {
		g.setMask(0, n(wd, 0), false)
		g.setMask(1, n(wd, -L), false)
		g.setMask(2, n(ow, 0), false)
		r := GP64() // wd - 2·oxt
		MOVQ(wd, r)
		SUBQ(oxt, r)
		SUBQ(oxt, r)
		g.setMask(3, n(r, 0), false)
		g.setMask(4, n(r, -L), false)
		o := GP64()
		MOVQ(ow, o)
		SUBQ(oxt, o)
		g.setMask(5, o, false)
	}

	g.kregs = nil
	if g.avx512 {
		// Six masks fit in k1..k7: keep them there for the whole call.
		for i := 0; i < nm; i++ {
			k := K()
			KMOVW(g.slot(i), k)
			g.kregs = append(g.kregs, k)
		}
	}

	rowb := GP64()
	MOVQ(wd, rowb)
	SHLQ(Imm(2), rowb)
	r1 := xp   // middle input row of the current output row
	orow := op // current output row

	chLoop := g.label("channel")
	Label(chLoop)
	for i := range g.wv {
		g.wv[i] = g.vec()
		VBROADCASTSS(Mem{Base: wp, Disp: 4 * i}, g.wv[i])
	}
	g.bp = bp
	if g.avx512 {
		g.bias = g.vec()
		VBROADCASTSS(Mem{Base: bp}, g.bias)
	}
	oy := GP64()
	XORQ(oy, oy)

	rowLoop, rowNext := g.label("row"), g.label("rownext")
	Label(rowLoop)
	noTop, noBot, noBoth := g.label("notop"), g.label("nobot"), g.label("noboth")
	TESTQ(oy, oy)
	JZ(LabelRef(noTop))
	CMPQ(oy, at(locBotRow))
	JEQ(LabelRef(noBot))
	g.row(true, true, r1, orow, rowb)
	JMP(LabelRef(rowNext))
	Label(noBot)
	g.row(true, false, r1, orow, rowb)
	JMP(LabelRef(rowNext))
	Label(noTop)
	CMPQ(oy, at(locBotRow))
	JEQ(LabelRef(noBoth))
	g.row(false, true, r1, orow, rowb)
	JMP(LabelRef(rowNext))
	Label(noBoth)
	g.row(false, false, r1, orow, rowb)

	Label(rowNext)
	ADDQ(rowb, r1)
	if g.stride == 2 {
		ADDQ(rowb, r1)
	}
	ADDQ(at(locOutRow), orow)
	INCQ(oy)
	CMPQ(oy, at(locOH))
	JLT(LabelRef(rowLoop))

	ADDQ(at(locInAdj), r1)
	ADDQ(U32(36), wp)
	ADDQ(at(locBStep), bp)
	DECQ(nch)
	JNZ(LabelRef(chLoop))

	Label(done)
	VZEROUPPER()
	RET()
}

// row emits the code for one output row: first vector, unmasked loop, tail.
func (g *gen) row(top, bot bool, r1, orow, rowb GPVirtual) {
	var rows [3]Register
	if top {
		r0 := GP64()
		MOVQ(r1, r0)
		SUBQ(rowb, r0)
		rows[0] = r0
	}
	rows[1] = r1
	if bot {
		r2 := GP64()
		LEAQ(Mem{Base: r1, Index: rowb, Scale: 1}, r2)
		rows[2] = r2
	}
	var pprev VecVirtual
	if g.stride == 2 {
		pprev = g.vec()
		VXORPS(pprev, pprev, pprev)
	}
	g.vector(rows, orow, nil, first, pprev)

	cnt, col := GP64(), GP64()
	skip, loop, end := g.label("nofast"), g.label("fast"), g.label("rowend")
	MOVQ(g.local(locNF), cnt)
	TESTQ(cnt, cnt)
	JZ(LabelRef(skip))
	MOVQ(U32(4*g.lanes), col)
	Label(loop)
	g.vector(rows, orow, col, fast, pprev)
	ADDQ(U32(4*g.lanes), col)
	DECQ(cnt)
	JNZ(LabelRef(loop))
	Label(skip)
	CMPQ(g.local(locHasTail), Imm(0))
	JEQ(LabelRef(end))
	MOVQ(g.local(locTailCol), col)
	g.vector(rows, orow, col, tail, pprev)
	Label(end)
}

// locals is the current kernel's block of 8-byte stack locals.
var locals Mem

func (g *gen) local(i int) Mem { return locals.Offset(8 * i) }

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	constants()
	for _, s := range []int{1, 2} {
		for _, g := range []*gen{
			{name: "AVX512", avx512: true, lanes: 16},
			{name: "AVX512Y", avx512: true, lanes: 8},
			{name: "AVX2", avx512: false, lanes: 8},
		} {
			g.stride = s
			g.kernel()
		}
	}
	Generate()
}
