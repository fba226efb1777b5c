// Command dwk generates the blocked-layout (NCHW16c) depthwise K×K kernels
// (K = 3, 5, 7; stride 1 and 2) of package kernel that read no padding:
// internal/kernel/dwblockedk_amd64.s and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./dwk -out ../dwblockedk_amd64.s -stubs ../dwblockedk_stub_amd64.go
//
// Every kernel computes oh×ow output pixels of one channel block from input
// rows that need no padding (a window that holds it, or the interior of
// the input), on the kernel rows [ky0, ky0+nky), output rows ostr pixels
// apart (see dwbkGo for the exact loop), so it never tests a border. One
// vector holds the 16 channels of one pixel (a ZMM; with AVX2 the kernel
// runs twice, once per 8-channel half, one YMM per pixel).
//
// An output row is cut into groups of n pixels (n accumulators) and one
// remainder group (an exact-size variant for every remainder). A group runs
// a loop over the nky kernel rows: it loads the row's K weight vectors into
// registers, then streams the input pixels the group reads from that row,
// each loaded once and multiplied into every accumulator that uses it (at
// most K, or ⌈K/2⌉ with stride 2). The bias starts each accumulator, the
// ReLU floor (0, or -Inf without ReLU) stays in a register. Each
// accumulator sums its taps in the order ky, then kx.
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

// gen describes one kernel.
type gen struct {
	name   string // ISA suffix
	avx512 bool   // ZMM, one pass; else YMM, two half passes
	k      int    // kernel size
	stride int
	n      int // pixels per group (accumulators)

	floor VecVirtual
	wp    GPVirtual // weights of the pass (the bias at K·K·pix)
	wky   GPVirtual // weights of kernel row ky0
	rowB  GPVirtual // window row bytes

	nlabels int
}

var negInf Mem

func constants() {
	negInf = GLOBL("dwbkneginf", RODATA|NOPTR)
	DATA(0, U32(0xff800000))
}

func (g *gen) fname() string { return fmt.Sprintf("dwbk%ds%d%s", g.k, g.stride, g.name) }

func (g *gen) label(what string) string {
	g.nlabels++
	return fmt.Sprintf("dwbk%s_%ds%d%s_%d", what, g.k, g.stride, g.name, g.nlabels)
}

func (g *gen) vec() VecVirtual {
	if g.avx512 {
		return ZMM()
	}
	return YMM()
}

// group computes and stores m output pixels starting at byte offset co of
// the output row orow; the window row of kernel row 0 starts at xrow.
func (g *gen) group(m int, xrow, orow, co GPVirtual) {
	k, s := g.k, g.stride
	accs := make([]VecVirtual, m)
	for i := range accs {
		accs[i] = g.vec()
		VMOVUPS(Mem{Base: g.wp, Disp: k * k * pix}, accs[i])
	}
	rp, wq, ky := GP64(), GP64(), GP64()
	LEAQ(Mem{Base: xrow, Index: co, Scale: uint8(s)}, rp)
	MOVQ(g.wky, wq)
	Load(Param("nky"), ky)
	loop := g.label(fmt.Sprintf("ky%d_", m))
	Label(loop)
	wv := make([]VecVirtual, k)
	for kx := range wv {
		wv[kx] = g.vec()
		VMOVUPS(Mem{Base: wq, Disp: kx * pix}, wv[kx])
	}
	for ic := 0; ic <= (m-1)*s+k-1; ic++ {
		var in VecVirtual
		for i := range m {
			kx := ic - i*s
			if kx < 0 || kx >= k {
				continue
			}
			if in == nil {
				in = g.vec()
				VMOVUPS(Mem{Base: rp, Disp: ic * pix}, in)
			}
			VFMADD231PS(in, wv[kx], accs[i])
		}
	}
	ADDQ(g.rowB, rp)
	ADDQ(U32(k*pix), wq)
	DECQ(ky)
	JNZ(LabelRef(loop))
	for i := range accs {
		VMAXPS(accs[i], g.floor, accs[i]) // NaN in acc propagates
		VMOVUPS(accs[i], Mem{Base: orow, Index: co, Scale: 1, Disp: i * pix})
	}
}

// kernel emits one kernel.
func (g *gen) kernel() {
	name := g.fname()
	TEXT(name, NOSPLIT, "func(x, w, out []float32, oh, ow, pw, ostr, ky0, nky int, relu bool)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the %s assembly version of dwbk%ds%dGo.", name, g.name, g.k, g.stride))
	g.nlabels = 0

	locals := AllocLocal(8 * 5)
	inStep, orowB, halves := locals, locals.Offset(8), locals.Offset(16)
	locX, locOut := locals.Offset(24), locals.Offset(32)

	done := g.label("done")
	{
		oh, ow, nky := GP64(), GP64(), GP64()
		Load(Param("oh"), oh)
		Load(Param("ow"), ow)
		Load(Param("nky"), nky)
		TESTQ(oh, oh)
		JLE(LabelRef(done))
		TESTQ(ow, ow)
		JLE(LabelRef(done))
		TESTQ(nky, nky)
		JLE(LabelRef(done))
	}
	{
		xp, op := GP64(), GP64()
		Load(Param("x").Base(), xp)
		MOVQ(xp, locX)
		Load(Param("out").Base(), op)
		MOVQ(op, locOut)
	}
	g.wp = GP64()
	Load(Param("w").Base(), g.wp)
	relu := GP8()
	Load(Param("relu"), relu)

	Comment("floor = 0 with ReLU, -Inf without.")
	g.floor = g.vec()
	VXORPS(g.floor, g.floor, g.floor)
	TESTB(relu, relu)
	reluOn := g.label("relu")
	JNZ(LabelRef(reluOn))
	VBROADCASTSS(negInf, g.floor)
	Label(reluOn)

	g.rowB = GP64()
	Load(Param("pw"), g.rowB)
	SHLQ(Imm(6), g.rowB)
	{
		t := GP64()
		MOVQ(g.rowB, t)
		if g.stride == 2 {
			SHLQ(Imm(1), t)
		}
		MOVQ(t, inStep)
		u := GP64()
		Load(Param("ostr"), u)
		SHLQ(Imm(6), u)
		MOVQ(u, orowB)
	}
	// wky = wp + ky0·K·pix
	g.wky = GP64()
	{
		ky0 := GP64()
		Load(Param("ky0"), ky0)
		IMUL3Q(U32(g.k*pix), ky0, g.wky)
		ADDQ(g.wp, g.wky)
	}
	if g.avx512 {
		MOVQ(U32(1), halves)
	} else {
		MOVQ(U32(2), halves)
	}
	half := g.label("half")
	Label(half)
	xrow, orow, oy := GP64(), GP64(), GP64()
	MOVQ(locX, xrow)
	MOVQ(locOut, orow)
	Load(Param("oh"), oy)

	rowLoop := g.label("row")
	Label(rowLoop)
	co, cnt := GP64(), GP64()
	XORQ(co, co)
	Load(Param("ow"), cnt)
	rem, loop, after := g.label("rem"), g.label("group"), g.label("rowend")
	CMPQ(cnt, Imm(uint64(g.n)))
	JLT(LabelRef(rem))
	Label(loop)
	g.group(g.n, xrow, orow, co)
	ADDQ(U32(g.n*pix), co)
	SUBQ(Imm(uint64(g.n)), cnt)
	CMPQ(cnt, Imm(uint64(g.n)))
	JGE(LabelRef(loop))
	Label(rem)
	remk := make([]string, g.n)
	for m := 1; m < g.n; m++ {
		remk[m] = g.label(fmt.Sprintf("rem%d_", m))
		CMPQ(cnt, Imm(uint64(m)))
		JEQ(LabelRef(remk[m]))
	}
	JMP(LabelRef(after))
	for m := 1; m < g.n; m++ {
		Label(remk[m])
		g.group(m, xrow, orow, co)
		if m < g.n-1 {
			JMP(LabelRef(after))
		}
	}
	Label(after)
	ADDQ(inStep, xrow)
	ADDQ(orowB, orow)
	DECQ(oy)
	JNZ(LabelRef(rowLoop))

	if !g.avx512 {
		ADDQ(U32(pix/2), locX)
		ADDQ(U32(pix/2), locOut)
		for _, r := range []GPVirtual{g.wp, g.wky} {
			ADDQ(U32(pix/2), r)
		}
	}
	DECQ(halves)
	JNZ(LabelRef(half))

	Label(done)
	VZEROUPPER()
	RET()
}

func main() {
	// Group sizes: n accumulators, K weights, an input and the floor must
	// fit in the registers (AVX-512 32, AVX2 16). With AVX-512, 8 and 16
	// measured the same on Zen 5 (BenchmarkDepthwiseBlockedK, within the
	// noise of a shared machine); 8 is half the code.
	n512 := flag.Int("n512", 8, "pixels per group, AVX-512")
	n2 := flag.Int("n2", 8, "pixels per group, AVX2, K = 3 and 5")
	n27 := flag.Int("n27", 7, "pixels per group, AVX2, K = 7")
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	constants()
	for _, k := range []int{3, 5, 7} {
		for _, s := range []int{1, 2} {
			n2k := *n2
			if k == 7 {
				n2k = *n27
			}
			for _, g := range []*gen{
				{name: "AVX512", avx512: true, n: *n512},
				{name: "AVX2", n: n2k},
			} {
				g.k, g.stride = k, s
				g.kernel()
			}
		}
	}
	Generate()
}
