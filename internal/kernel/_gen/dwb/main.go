// Command dwb generates the blocked-layout (NCHW16c) depthwise 3×3 (pad 1,
// stride 1 and 2) kernels of package kernel: internal/kernel/dwblocked_amd64.s
// and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./dwb -out ../dwblocked_amd64.s -stubs ../dwblocked_stub_amd64.go
//
// Every kernel computes output rows [oy0, oy1) of nb consecutive channel
// blocks in one call (see dwbGo for the exact loop). One vector holds the 16
// channels of one pixel (a ZMM; with AVX2 the kernel runs twice per block,
// once per 8-channel half, one YMM per pixel), so the map width does not
// matter. The block's 9 weight vectors, the bias (AVX-512; AVX2 reads it from
// memory, too few registers) and the ReLU floor (0, or -Inf without ReLU)
// stay in registers; every tap is one FMA with its input load folded in.
//
// An output row is cut into groups of pixels: the first pixel (no left
// column), runs of up to n interior pixels (n accumulators; an exact-size
// variant for every remainder), and the last pixel (no right column; with
// stride 2 only when the input width is odd). A missing top or bottom input
// row is handled by four variants of the row code, chosen per row, so
// nothing outside the image is ever read.
//
// Within a group the taps are issued in one of three ways (chosen per
// kernel, by measurement):
//   - folded (AVX-512 stride 2): tap-major over the group's pixels, every
//     FMA with its input load folded in, so that the n FMA chains
//     interleave; stride 2 is bound by the input traffic anyway;
//   - reuse (AVX-512 stride 1): for each kernel row the n+2 input pixels
//     are loaded once into registers, then the taps go tap-major with
//     register operands: a third of the loads, FMA-bound;
//   - stream (AVX2, 16 registers only): for each kernel row, input pixel by
//     input pixel, one load then the FMAs of every pixel that uses it.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// pix is the byte size of one pixel of a channel block (16 float32).
const pix = 64

// wBlock is the byte size of one block's packed weights: 9 taps and the bias,
// 16 floats each.
const wBlock = 10 * pix

// gen describes one kernel.
type gen struct {
	name   string // function name suffix
	avx512 bool   // ZMM, one pass per block; else YMM, two half passes
	stride int
	n      int  // interior pixels per group (accumulators)
	reuse  bool // load each input pixel of a group's row once into a register
	stream bool // load each input pixel once, use it right away (one register)

	wv    [9]VecVirtual
	bias  VecVirtual // AVX-512 only
	floor VecVirtual
	wp    GPVirtual

	nlabels int
}

var negInf Mem

func constants() {
	negInf = GLOBL("dwbneginf", RODATA|NOPTR)
	DATA(0, U32(0xff800000))
}

func (g *gen) label(what string) string {
	g.nlabels++
	return fmt.Sprintf("dwb%s_s%d%s_%d", what, g.stride, g.name, g.nlabels)
}

func (g *gen) vec() VecVirtual {
	if g.avx512 {
		return ZMM()
	}
	return YMM()
}

// locals on the stack (8 bytes each).
const (
	locNB     = iota // channel blocks left
	locOY0           // first output row
	locOY1           // end output row
	locOW            // output width
	locM             // interior pixels per row
	locRB            // 1 if the last pixel of a row lacks its right column
	locLastCo        // byte offset of the last output pixel of a row
	locBotRow        // output row whose bottom input row is padding, or -1
	locRowB          // input row bytes
	locInStep        // input bytes per output row (stride · row bytes)
	locORowB         // output row bytes
	locInBlk         // input block bytes
	locOutBlk        // output block bytes
	locHalf          // AVX2: halves left
	nLocals
)

var locals Mem

func local(i int) Mem { return locals.Offset(8 * i) }

// px is one output pixel of a group: off is its index relative to the
// group's column; noL/noR drop the taps of the left/right input column.
type px struct {
	off      int
	noL, noR bool
}

func full(k int) []px {
	ps := make([]px, k)
	for i := range ps {
		ps[i].off = i
	}
	return ps
}

// group computes and stores the pixels ps of one output row. rows[ky] is the
// input row pointer of kernel row ky, or nil if that row is padding; co holds
// the byte offset of the group's first output pixel in the output row (nil:
// 0); the input offset is stride·co.
func (g *gen) group(rows [3]Register, co, orow Register, ps []px) {
	accs := make([]VecVirtual, len(ps))
	for i := range ps {
		accs[i] = g.vec()
		if g.avx512 {
			VMOVAPS(g.bias, accs[i])
		} else {
			VMOVUPS(Mem{Base: g.wp, Disp: 9 * pix}, accs[i])
		}
	}
	for ky, r := range rows {
		if r == nil {
			continue
		}
		// in returns the operand of input column ic (relative to the
		// group's first output pixel times the stride) of this row.
		mem := func(ic int) Mem {
			m := Mem{Base: r, Disp: ic * pix}
			if co != nil {
				m.Index, m.Scale = co, uint8(g.stride)
			}
			return m
		}
		if g.stream {
			g.streamRow(ps, mem, ky, accs)
			continue
		}
		var regs map[int]VecVirtual
		if g.reuse {
			// Load every input pixel of the row once.
			regs = map[int]VecVirtual{}
			for _, p := range ps {
				for kx := 0; kx < 3; kx++ {
					ic := p.off*g.stride + kx - 1
					if kx == 0 && p.noL || kx == 2 && p.noR || regs[ic] != nil {
						continue
					}
					regs[ic] = g.vec()
					VMOVUPS(mem(ic), regs[ic])
				}
			}
		}
		for kx := 0; kx < 3; kx++ {
			for i, p := range ps {
				if kx == 0 && p.noL || kx == 2 && p.noR {
					continue
				}
				ic := p.off*g.stride + kx - 1
				var in Op = mem(ic)
				if g.reuse {
					in = regs[ic]
				}
				VFMADD231PS(in, g.wv[3*ky+kx], accs[i])
			}
		}
	}
	for i, p := range ps {
		VMAXPS(accs[i], g.floor, accs[i]) // NaN in acc propagates
		m := Mem{Base: orow, Disp: p.off * pix}
		if co != nil {
			m.Index, m.Scale = co, 1
		}
		VMOVUPS(accs[i], m)
	}
}

// streamRow issues the taps of kernel row ky for the pixels ps input pixel
// by input pixel: each is loaded once into a register and multiplied into
// every accumulator that uses it (at most three) before the next one.
func (g *gen) streamRow(ps []px, mem func(ic int) Mem, ky int, accs []VecVirtual) {
	lo, hi := 1<<30, -1<<30
	for _, p := range ps {
		lo = min(lo, p.off*g.stride-1)
		hi = max(hi, p.off*g.stride+1)
	}
	for ic := lo; ic <= hi; ic++ {
		var in VecVirtual
		for i, p := range ps {
			kx := ic - p.off*g.stride + 1
			if kx < 0 || kx > 2 || kx == 0 && p.noL || kx == 2 && p.noR {
				continue
			}
			if in == nil {
				in = g.vec()
				VMOVUPS(mem(ic), in)
			}
			VFMADD231PS(in, g.wv[3*ky+kx], accs[i])
		}
	}
}

// row emits the code of one output row; top/bot tell whether the input rows
// above and below the centre row r1 exist.
func (g *gen) row(top, bot bool, r1, orow GPVirtual) {
	var rows [3]Register
	if top {
		r0 := GP64()
		MOVQ(r1, r0)
		SUBQ(local(locRowB), r0)
		rows[0] = r0
	}
	rows[1] = r1
	if bot {
		r2 := GP64()
		MOVQ(r1, r2)
		ADDQ(local(locRowB), r2)
		rows[2] = r2
	}
	end, multi := g.label("rowend"), g.label("multi")
	CMPQ(local(locOW), Imm(1))
	JNE(LabelRef(multi))
	if g.stride == 1 {
		g.group(rows, nil, orow, []px{{0, true, true}})
	} else {
		onlyL := g.label("onlyl")
		CMPQ(local(locRB), Imm(0))
		JEQ(LabelRef(onlyL))
		g.group(rows, nil, orow, []px{{0, true, true}})
		JMP(LabelRef(end))
		Label(onlyL)
		g.group(rows, nil, orow, []px{{0, true, false}})
	}
	JMP(LabelRef(end))

	Label(multi)
	g.group(rows, nil, orow, []px{{0, true, false}})
	co, cnt := GP64(), GP64()
	MOVQ(U32(pix), co)
	MOVQ(local(locM), cnt)
	rem, loop, after := g.label("rem"), g.label("interior"), g.label("last")
	CMPQ(cnt, Imm(uint64(g.n)))
	JLT(LabelRef(rem))
	Label(loop)
	g.group(rows, co, orow, full(g.n))
	ADDQ(U32(g.n*pix), co)
	SUBQ(Imm(uint64(g.n)), cnt)
	CMPQ(cnt, Imm(uint64(g.n)))
	JGE(LabelRef(loop))
	Label(rem)
	remk := make([]string, g.n)
	for k := 1; k < g.n; k++ {
		remk[k] = g.label(fmt.Sprintf("rem%d_", k))
		CMPQ(cnt, Imm(uint64(k)))
		JEQ(LabelRef(remk[k]))
	}
	JMP(LabelRef(after))
	for k := 1; k < g.n; k++ {
		Label(remk[k])
		g.group(rows, co, orow, full(k))
		JMP(LabelRef(after))
	}
	Label(after)
	if g.stride == 2 {
		CMPQ(local(locRB), Imm(0))
		JEQ(LabelRef(end))
	}
	MOVQ(local(locLastCo), co)
	g.group(rows, co, orow, []px{{0, false, true}})
	Label(end)
}

// kernel emits one kernel.
func (g *gen) kernel() {
	name := fmt.Sprintf("dwb3x3s%d%s", g.stride, g.name)
	TEXT(name, NOSPLIT, "func(x, w, out []float32, nb, h, wd, oy0, oy1 int, relu bool)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the %s assembly version of dwb3x3s%dGo.", name, g.name, g.stride))
	g.nlabels = 0
	locals = AllocLocal(8 * nLocals)

	xp := GP64()
	Load(Param("x").Base(), xp)
	g.wp = GP64()
	Load(Param("w").Base(), g.wp)
	op := GP64()
	Load(Param("out").Base(), op)
	nb := GP64()
	Load(Param("nb"), nb)
	h := GP64()
	Load(Param("h"), h)
	wd := GP64()
	Load(Param("wd"), wd)
	oy0 := GP64()
	Load(Param("oy0"), oy0)
	oy1 := GP64()
	Load(Param("oy1"), oy1)
	relu := GP8()
	Load(Param("relu"), relu)
	done := g.label("done")
	for _, r := range []GPVirtual{nb, h, wd} {
		TESTQ(r, r)
		JLE(LabelRef(done))
	}
	CMPQ(oy0, oy1)
	JGE(LabelRef(done))
	MOVQ(nb, local(locNB))
	MOVQ(oy0, local(locOY0))
	MOVQ(oy1, local(locOY1))

	Comment("floor = 0 with ReLU, -Inf without.")
	g.floor = g.vec()
	VXORPS(g.floor, g.floor, g.floor)
	TESTB(relu, relu)
	reluOn := g.label("relu")
	JNZ(LabelRef(reluOn))
	VBROADCASTSS(negInf, g.floor)
	Label(reluOn)

	Comment("Geometry.")
	ow, oh := GP64(), GP64()
	rb := GP64()
	bot := GP64()
	if g.stride == 1 {
		MOVQ(wd, ow)
		MOVQ(h, oh)
		MOVQ(U32(1), rb)
		LEAQ(Mem{Base: h, Disp: -1}, bot)
	} else {
		// ow = (wd+1)/2, oh = (h+1)/2; the last column is missing iff wd
		// is odd, the bottom row iff h is odd.
		LEAQ(Mem{Base: wd, Disp: 1}, ow)
		SHRQ(Imm(1), ow)
		LEAQ(Mem{Base: h, Disp: 1}, oh)
		SHRQ(Imm(1), oh)
		MOVQ(wd, rb)
		ANDQ(Imm(1), rb)
		LEAQ(Mem{Base: oh, Disp: -1}, bot)
		m1 := GP64()
		MOVQ(I32(-1), m1)
		t := GP64()
		MOVQ(h, t)
		ANDQ(Imm(1), t)
		CMOVQEQ(m1, bot)
	}
	MOVQ(ow, local(locOW))
	MOVQ(rb, local(locRB))
	MOVQ(bot, local(locBotRow))
	{
		// m = max(0, ow-1-rb)
		m := GP64()
		LEAQ(Mem{Base: ow, Disp: -1}, m)
		SUBQ(rb, m)
		z := GP64()
		XORQ(z, z)
		CMPQ(m, Imm(0))
		CMOVQLT(z, m)
		MOVQ(m, local(locM))
	}
	{
		t := GP64()
		LEAQ(Mem{Base: ow, Disp: -1}, t)
		SHLQ(Imm(6), t)
		MOVQ(t, local(locLastCo))
	}
	{
		t := GP64()
		MOVQ(wd, t)
		SHLQ(Imm(6), t)
		MOVQ(t, local(locRowB))
		if g.stride == 2 {
			SHLQ(Imm(1), t)
		}
		MOVQ(t, local(locInStep))
		u := GP64()
		MOVQ(ow, u)
		SHLQ(Imm(6), u)
		MOVQ(u, local(locORowB))
		ib := GP64()
		MOVQ(h, ib)
		IMULQ(wd, ib)
		SHLQ(Imm(6), ib)
		MOVQ(ib, local(locInBlk))
		ob := GP64()
		MOVQ(oh, ob)
		IMULQ(ow, ob)
		SHLQ(Imm(6), ob)
		MOVQ(ob, local(locOutBlk))
	}

	blk := g.label("block")
	Label(blk)
	if !g.avx512 {
		MOVQ(U32(2), local(locHalf))
	}
	half := g.label("half")
	Label(half)
	for i := range g.wv {
		g.wv[i] = g.vec()
		VMOVUPS(Mem{Base: g.wp, Disp: i * pix}, g.wv[i])
	}
	if g.avx512 {
		g.bias = g.vec()
		VMOVUPS(Mem{Base: g.wp, Disp: 9 * pix}, g.bias)
	}
	oy := GP64()
	MOVQ(local(locOY0), oy)
	r1 := GP64()
	MOVQ(oy, r1)
	IMULQ(local(locInStep), r1)
	ADDQ(xp, r1)
	orow := GP64()
	MOVQ(oy, orow)
	IMULQ(local(locORowB), orow)
	ADDQ(op, orow)

	rowLoop, rowNext := g.label("row"), g.label("rownext")
	Label(rowLoop)
	noTop, noBot, noBoth := g.label("notop"), g.label("nobot"), g.label("noboth")
	TESTQ(oy, oy)
	JZ(LabelRef(noTop))
	CMPQ(oy, local(locBotRow))
	JEQ(LabelRef(noBot))
	g.row(true, true, r1, orow)
	JMP(LabelRef(rowNext))
	Label(noBot)
	g.row(true, false, r1, orow)
	JMP(LabelRef(rowNext))
	Label(noTop)
	CMPQ(oy, local(locBotRow))
	JEQ(LabelRef(noBoth))
	g.row(false, true, r1, orow)
	JMP(LabelRef(rowNext))
	Label(noBoth)
	g.row(false, false, r1, orow)

	Label(rowNext)
	ADDQ(local(locInStep), r1)
	ADDQ(local(locORowB), orow)
	INCQ(oy)
	CMPQ(oy, local(locOY1))
	JLT(LabelRef(rowLoop))

	if !g.avx512 {
		for _, r := range []GPVirtual{xp, op, g.wp} {
			ADDQ(U32(pix/2), r)
		}
		DECQ(local(locHalf))
		JNZ(LabelRef(half))
		for _, r := range []GPVirtual{xp, op, g.wp} {
			SUBQ(U32(pix), r)
		}
	}
	ADDQ(local(locInBlk), xp)
	ADDQ(local(locOutBlk), op)
	ADDQ(U32(wBlock), g.wp)
	DECQ(local(locNB))
	JNZ(LabelRef(blk))

	Label(done)
	VZEROUPPER()
	RET()
}

func main() {
	// Defaults measured on Zen 5 (see dwblocked_bench_test.go).
	n512 := flag.Int("n512", 8, "interior pixels per group, AVX-512 stride 1")
	reuse1 := flag.Bool("reuse1", true, "AVX-512 stride 1: input pixels of a row in registers")
	n512s2 := flag.Int("n512s2", 8, "interior pixels per group, AVX-512 stride 2")
	reuse2 := flag.Bool("reuse2", false, "AVX-512 stride 2: input pixels of a row in registers")
	stream512 := flag.Bool("stream512s2", false, "AVX-512 stride 2: stream input pixels")
	n2 := flag.Int("n2", 5, "interior pixels per group, AVX2")
	stream2 := flag.Bool("stream2", true, "AVX2: stream input pixels")
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	constants()
	for _, s := range []int{1, 2} {
		z := &gen{name: "AVX512", avx512: true, n: *n512, reuse: *reuse1}
		if s == 2 {
			z.n, z.reuse, z.stream = *n512s2, *reuse2, *stream512
		}
		for _, g := range []*gen{z, {name: "AVX2", avx512: false, n: *n2, stream: *stream2}} {
			g.stride = s
			g.kernel()
		}
	}
	Generate()
}
