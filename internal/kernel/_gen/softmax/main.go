// Command softmax generates the softmax kernels of package kernel
// (softmax.go): internal/kernel/softmax_amd64.s and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./softmax -out ../softmax_amd64.s -stubs ../softmax_stub_amd64.go
//
// One kernel per instruction set (AVX-512: ZMM, 16 lanes, four vectors per
// iteration; AVX2+FMA: YMM, 8 lanes, two), three passes over the n =
// len(x) ≥ 1 elements of a row, each a loop of unrolled vectors, a loop of
// single vectors and one masked vector for the last n mod lanes elements
// (AVX-512: a K mask from a table; AVX2: VMASKMOVPS with a lane mask from
// a table), as in _gen/vec:
//
//  1. m = max x[i] (masked lanes read as −inf);
//  2. x[i] = 2^t, t = max((x[i] − m)·c, −126): n = round(t) (to nearest
//     even), f = t − n in [−1/2, 1/2], 2^f by the Taylor polynomial of
//     e^(f·ln2) of degree 6 (Horner, FMA), times 2^n (AVX-512: VSCALEFPS;
//     AVX2: n added to the exponent bits); the sum of the stored values
//     kept in float32 lanes (masked lanes left out);
//  3. x[i] /= the sum (times its reciprocal).
//
// Nothing outside the n elements is read or written.
package main

import (
	"flag"
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/gotypes"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var (
	mask16 Mem // uint16 (1<<i)-1, i = 0..16
	mask32 Mem // 8 × 0xffffffff then 8 × 0
	consts Mem // the constants below, 16 copies each
)

// Constants, by their index in consts.
const (
	cNegInf = iota
	cMinT   // −126
	cOne
	cP1 // ln2^k/k!, k = 1..6
	cP2
	cP3
	cP4
	cP5
	cP6
	nConsts
)

func constants() {
	mask16 = GLOBL("softmaxmask16", RODATA|NOPTR)
	for i := 0; i <= 16; i++ {
		DATA(2*i, U16(uint16(1<<i-1)))
	}
	mask32 = GLOBL("softmaxmask32", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := U32(0)
		if i < 8 {
			v = U32(0xffffffff)
		}
		DATA(4*i, v)
	}
	vals := make([]float32, nConsts)
	vals[cNegInf] = float32(math.Inf(-1))
	vals[cMinT] = -126
	vals[cOne] = 1
	p := 1.0
	for k := 1; k <= 6; k++ {
		p *= math.Ln2 / float64(k)
		vals[cP1+k-1] = float32(p)
	}
	consts = GLOBL("softmaxconsts", RODATA|NOPTR)
	for c, v := range vals {
		for l := 0; l < 16; l++ {
			DATA(64*c+4*l, U32(math.Float32bits(v)))
		}
	}
}

// constant returns the memory operand of constant c (a full vector).
func constant(c int) Mem { return consts.Offset(64 * c) }

type gen struct {
	isa     string
	avx512  bool
	lanes   int
	unroll  int
	name    string
	nlabels int
	k       OpmaskVirtual
	ymask   VecVirtual
}

func (g *gen) vec() VecVirtual {
	if g.avx512 {
		return ZMM()
	}
	return YMM()
}

func (g *gen) vb() int { return 4 * g.lanes }

func (g *gen) label(what string) string {
	g.nlabels++
	return fmt.Sprintf("%s_%s_%d", g.name, what, g.nlabels)
}

// setMask prepares the mask of the first r lanes, 0 < r < lanes.
func (g *gen) setMask(r GPVirtual) {
	t := GP64()
	if g.avx512 {
		LEAQ(mask16, t)
		m := GP32()
		MOVWLZX(Mem{Base: t, Index: r, Scale: 2}, m)
		g.k = K()
		KMOVW(m, g.k)
		return
	}
	LEAQ(mask32.Offset(32), t)
	u := GP64()
	MOVQ(r, u)
	NEGQ(u)
	g.ymask = YMM()
	VMOVUPS(Mem{Base: t, Index: u, Scale: 4}, g.ymask)
}

func at(p, i GPVirtual, disp int) Mem { return Mem{Base: p, Index: i, Scale: 4, Disp: disp} }

// load loads the vector at m; masked: only the tail lanes, zero beyond.
func (g *gen) load(m Mem, masked bool) VecVirtual {
	v := g.vec()
	switch {
	case !masked:
		VMOVUPS(m, v)
	case g.avx512:
		VMOVUPS_Z(m, g.k, v)
	default:
		VMASKMOVPS(m, g.ymask, v)
	}
	return v
}

// store stores v to m; masked: only the tail lanes.
func (g *gen) store(v VecVirtual, m Mem, masked bool) {
	switch {
	case !masked:
		VMOVUPS(v, m)
	case g.avx512:
		VMOVUPS(v, g.k, m)
	default:
		VMASKMOVPS(v, g.ymask, m)
	}
}

// walk emits the loops over elements [0, n): unrolled vectors, single
// vectors, a masked tail.
func (g *gen) walk(n GPVirtual, step func(i GPVirtual, u int, masked bool)) {
	loopU, loop1, tail, done := g.label("loopU"), g.label("loop1"), g.label("tail"), g.label("done")
	i, t := GP64(), GP64()
	XORQ(i, i)
	Label(loopU)
	LEAQ(Mem{Base: i, Disp: g.unroll * g.lanes}, t)
	CMPQ(t, n)
	JA(LabelRef(loop1))
	for u := 0; u < g.unroll; u++ {
		step(i, u, false)
	}
	MOVQ(t, i)
	JMP(LabelRef(loopU))
	Label(loop1)
	LEAQ(Mem{Base: i, Disp: g.lanes}, t)
	CMPQ(t, n)
	JA(LabelRef(tail))
	step(i, 0, false)
	MOVQ(t, i)
	JMP(LabelRef(loop1))
	Label(tail)
	r := GP64()
	MOVQ(n, r)
	SUBQ(i, r)
	JZ(LabelRef(done))
	g.setMask(r)
	step(i, 0, true)
	Label(done)
}

// fold combines the unrolled accumulators pairwise with op into acc[0].
func (g *gen) fold(acc []VecVirtual, op func(a, b, dst Op)) VecVirtual {
	for len(acc) > 1 {
		h := (len(acc) + 1) / 2
		for j := h; j < len(acc); j++ {
			op(acc[j], acc[j-h], acc[j-h])
		}
		acc = acc[:h]
	}
	return acc[0]
}

// horizontal returns an XMM register whose every lane holds op over the
// lanes of v.
func (g *gen) horizontal(v VecVirtual, op func(a, b, dst Op)) VecVirtual {
	y := v
	if g.avx512 {
		hi := YMM()
		VEXTRACTF64X4(U8(1), v, hi)
		op(hi, v.AsY(), hi)
		y = hi
	}
	x := XMM()
	VEXTRACTF128(U8(1), y, x)
	op(x, y.AsX(), x)
	h := XMM()
	VPERMILPS(U8(0x4e), x, h) // swap 64-bit halves
	op(h, x, x)
	VPERMILPS(U8(0xb1), x, h) // swap neighbours
	op(h, x, x)
	return x
}

func resolve(c gotypes.Component) Mem {
	b, err := c.Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

func (g *gen) kernel() {
	g.name = "softmax" + g.isa
	g.nlabels = 0
	TEXT(g.name, NOSPLIT, "func(x []float32, c float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s replaces x (len(x) ≥ 1) by its softmax with the exponents scaled by c·ln2, with %s; see softmax.go.", g.name, g.isa))
	x, n := GP64(), GP64()
	Load(Param("x").Base(), x)
	Load(Param("x").Len(), n)
	vb := g.vb()

	Comment("Pass 1: the maximum.")
	acc := make([]VecVirtual, g.unroll)
	for u := range acc {
		acc[u] = g.vec()
		VMOVUPS(constant(cNegInf), acc[u])
	}
	g.walk(n, func(i GPVirtual, u int, masked bool) {
		m := at(x, i, u*vb)
		if !masked {
			VMAXPS(m, acc[u], acc[u])
			return
		}
		v := g.vec()
		if g.avx512 {
			VMOVUPS(constant(cNegInf), v)
			VMOVUPS(m, g.k, v) // merge: −inf past the end
		} else {
			VMASKMOVPS(m, g.ymask, v) // zero past the end
			t := g.vec()
			VANDNPS(constant(cNegInf), g.ymask, t) // −inf past the end
			VORPS(t, v, v)
		}
		VMAXPS(v, acc[u], acc[u])
	})
	mx := g.horizontal(g.fold(acc, func(a, b, d Op) { VMAXPS(a, b, d) }), func(a, b, d Op) { VMAXPS(a, b, d) })
	mb := g.vec()
	VBROADCASTSS(mx, mb)

	Comment("Pass 2: the exponentials and their sum.")
	cb := g.vec()
	VBROADCASTSS(resolve(Param("c")), cb)
	sum := make([]VecVirtual, g.unroll)
	for u := range sum {
		sum[u] = g.vec()
		VXORPS(sum[u], sum[u], sum[u])
	}
	g.walk(n, func(i GPVirtual, u int, masked bool) {
		m := at(x, i, u*vb)
		t := g.load(m, masked)
		VSUBPS(mb, t, t)
		VMULPS(cb, t, t)
		VMAXPS(constant(cMinT), t, t)
		nn := g.vec()
		if g.avx512 {
			VRNDSCALEPS(U8(0), t, nn)
		} else {
			VROUNDPS(U8(0), t, nn)
		}
		VSUBPS(nn, t, t) // f
		p := g.vec()
		VMOVUPS(constant(cP6), p)
		for c := cP5; c >= cP1; c-- {
			VFMADD213PS(constant(c), t, p)
		}
		VFMADD213PS(constant(cOne), t, p)
		if g.avx512 {
			VSCALEFPS(nn, p, p)
		} else {
			VCVTPS2DQ(nn, nn)
			VPSLLD(U8(23), nn, nn)
			VPADDD(nn, p, p)
		}
		g.store(p, m, masked)
		switch {
		case !masked:
			VADDPS(p, sum[u], sum[u])
		case g.avx512:
			VADDPS(p, sum[u], g.k, sum[u])
		default:
			VANDPS(g.ymask, p, p)
			VADDPS(p, sum[u], sum[u])
		}
	})
	s := g.horizontal(g.fold(sum, func(a, b, d Op) { VADDPS(a, b, d) }), func(a, b, d Op) { VADDPS(a, b, d) })
	inv := XMM()
	VMOVSS(constant(cOne), inv)
	VDIVSS(s, inv, inv)
	ib := g.vec()
	VBROADCASTSS(inv, ib)

	Comment("Pass 3: divided by the sum.")
	g.walk(n, func(i GPVirtual, u int, masked bool) {
		m := at(x, i, u*vb)
		v := g.load(m, masked)
		VMULPS(ib, v, v)
		g.store(v, m, masked)
	})
	VZEROUPPER()
	RET()
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	constants()
	(&gen{isa: "AVX512", avx512: true, lanes: 16, unroll: 4}).kernel()
	(&gen{isa: "AVX2", lanes: 8, unroll: 2}).kernel()
	Generate()
}
