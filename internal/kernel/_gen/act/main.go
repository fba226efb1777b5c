// Command act generates the activation kernels of package kernel (ReLU,
// ReLU6, HardSwish, HardSigmoid, Sigmoid, SiLU, GELU, and the element-wise
// add and blocked channel scale of act.go): internal/kernel/act_amd64.s and
// its Go stubs.
//
//	cd internal/kernel/_gen && go run ./act -out ../act_amd64.s -stubs ../act_stub_amd64.go
//
// Every kernel exists for AVX-512 (ZMM, 16 lanes) and AVX2+FMA (YMM, 8
// lanes). The activations work in place on a strided region, rows rows of
// cols values, row r starting at element r·ld of x, so that a convolution
// can apply one to the tile it has just stored with a single call. Each row
// is walked like the kernels of _gen/vec: U vectors per iteration, single
// vectors, one masked vector for the last cols mod lanes values (AVX-512: K
// mask, zero-masking load and masking store; AVX2: VMASKMOVPS). Nothing
// outside the region is read or written.
//
// The arithmetic is that of the pure-Go twins in ../act.go, with FMAs:
//
//   - exp(v) for v ≤ 0 (and small positive v): v clamped to ≥ −104, n =
//     round(v·log₂e) by adding and subtracting 1.5·2²³, r = v − n·ln2 in two
//     parts (Cody–Waite), e^r by Cephes' degree-5 minimax polynomial, 2ⁿ
//     built in the exponent bits from the rounded sum's own bits, the
//     biased exponent clamped at 0, so that e^v flushes to 0 below 2⁻¹²⁶.
//   - sigmoid(x) = num/(1+e), e = exp(−|x|), num = e for negative x (sign
//     bit set) and 1 otherwise: no overflow, one rounding in the division.
//   - SiLU(x) = max(x, −104)·sigmoid(x) (the clamp turns −Inf·0 into −0).
//   - GELU(x) = x·Φ(x) through erfc(|x|/√2) = t·exp(−z² + P(t)), t =
//     1/(1+z/2) (Numerical Recipes' Chebyshev fit): x·(1 − erfc/2) for x ≥
//     0, max(x, −104)·erfc/2 below.
//
// The clamps (VMAXPS with x as the second source) return x when it is NaN,
// so NaN stays NaN throughout.
package main

import (
	"flag"
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var (
	mask16 Mem // uint16 (1<<i)-1, i = 0..16
	mask32 Mem // 8 × 0xffffffff then 8 × 0
)

// The constants, each stored as a full vector of every width (see consts).
var constList = []struct {
	name string
	bits uint32
}{
	{"zero", 0},
	{"one", f32(1)},
	{"i1", 1},            // bfloat16 rounding: the integer 1,
	{"i7fff", 0x7fff},    // half an ulp less one,
	{"hi16", 0xffff0000}, // the kept bits,
	{"qnan", 0x00400000}, // the quiet bit of a NaN
	{"half", f32(0.5)},
	{"three", f32(3)},
	{"six", f32(6)},
	{"inv6", f32(1.0 / 6)},
	{"m3", f32(-3)},
	{"m104", f32(-104)},
	{"sign", 0x80000000},
	{"abs", 0x7fffffff},
	{"log2e", f32(1.44269504088896341)},
	{"magic", f32(12582912)}, // 1.5·2²³
	{"ln2hi", f32(0.693359375)},
	{"ln2lo", f32(-2.12194440e-4)},
	{"expbias", 0x4b400000 - 127}, // bits(magic) − 127: bits(v+magic) − this = n + 127
	{"e5", f32(1.9875691500e-4)},
	{"e4", f32(1.3981999507e-3)},
	{"e3", f32(8.3334519073e-3)},
	{"e2", f32(4.1665795894e-2)},
	{"e1", f32(1.6666665459e-1)},
	{"e0", f32(5.0000001201e-1)},
	{"invsqrt2", f32(1 / math.Sqrt2)},
	{"nr9", f32(0.17087277)},
	{"nr8", f32(-0.82215223)},
	{"nr7", f32(1.48851587)},
	{"nr6", f32(-1.13520398)},
	{"nr5", f32(0.27886807)},
	{"nr4", f32(-0.18628806)},
	{"nr3", f32(0.09678418)},
	{"nr2", f32(0.37409196)},
	{"nr1", f32(1.00002368)},
	{"nr0", f32(-1.26551223)},
}

func f32(v float64) uint32 { return math.Float32bits(float32(v)) }

var tables = map[int]Mem{} // by lanes

func constants() {
	mask16 = GLOBL("actmask16", RODATA|NOPTR)
	for i := 0; i <= 16; i++ {
		DATA(2*i, U16(uint16(1<<i-1)))
	}
	mask32 = GLOBL("actmask32", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := U32(0)
		if i < 8 {
			v = U32(0xffffffff)
		}
		DATA(4*i, v)
	}
	for _, lanes := range []int{8, 16} {
		t := GLOBL(fmt.Sprintf("actconst%d", lanes), RODATA|NOPTR)
		for i, c := range constList {
			for l := 0; l < lanes; l++ {
				DATA((i*lanes+l)*4, U32(c.bits))
			}
		}
		tables[lanes] = t
	}
}

// gen generates the kernels of one instruction set.
type gen struct {
	isa    string // "AVX512" or "AVX2"
	avx512 bool
	lanes  int // float32 lanes per vector

	name    string
	nlabels int
	regs    map[string]VecVirtual // constants held in registers by the current kernel

	k     OpmaskVirtual // AVX-512 tail mask
	ymask VecVirtual    // AVX2 tail mask
}

func (g *gen) vec() VecVirtual {
	if g.avx512 {
		return ZMM()
	}
	return YMM()
}

func (g *gen) vb() int { return 4 * g.lanes }

func (g *gen) begin(op, sig, doc string) {
	g.name = "act" + op + g.isa
	g.nlabels = 0
	g.regs = map[string]VecVirtual{}
	TEXT(g.name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s %s with %s; see act.go.", g.name, doc, g.isa))
}

func (g *gen) end() {
	VZEROUPPER()
	RET()
}

func (g *gen) label(what string) string {
	g.nlabels++
	return fmt.Sprintf("%s_%s_%d", g.name, what, g.nlabels)
}

// mem returns the memory operand of constant name (a full vector).
func (g *gen) mem(name string) Mem {
	for i, c := range constList {
		if c.name == name {
			return tables[g.lanes].Offset(i * g.vb())
		}
	}
	panic("no constant " + name)
}

// hold loads constants into registers for the whole kernel.
func (g *gen) hold(names ...string) {
	for _, n := range names {
		v := g.vec()
		VMOVUPS(g.mem(n), v)
		g.regs[n] = v
	}
}

// c returns constant name as an operand: its register if held, else its
// memory.
func (g *gen) c(name string) Op {
	if v, ok := g.regs[name]; ok {
		return v
	}
	return g.mem(name)
}

// r returns constant name in a register: the held one, or a fresh load.
func (g *gen) r(name string) VecVirtual {
	if v, ok := g.regs[name]; ok {
		return v
	}
	v := g.vec()
	VMOVUPS(g.mem(name), v)
	return v
}

func ptr(param string) GPVirtual {
	p := GP64()
	Load(Param(param).Base(), p)
	return p
}

func length(param string) GPVirtual {
	n := GP64()
	Load(Param(param).Len(), n)
	return n
}

func at(p, i GPVirtual, disp int) Mem {
	return Mem{Base: p, Index: i, Scale: 4, Disp: disp}
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

type stepFunc func(i GPVirtual, u int, masked bool)

// walk emits the loops over elements [i, e): unroll vectors per iteration,
// then single vectors, then a masked tail; i ends at e.
func (g *gen) walk(i, e GPVirtual, unroll int, step stepFunc) {
	loopU, loop1, tail, done := g.label("loopU"), g.label("loop1"), g.label("tail"), g.label("done")
	t := GP64()
	if unroll > 1 {
		Label(loopU)
		LEAQ(Mem{Base: i, Disp: unroll * g.lanes}, t)
		CMPQ(t, e)
		JA(LabelRef(loop1))
		for u := 0; u < unroll; u++ {
			step(i, u, false)
		}
		MOVQ(t, i)
		JMP(LabelRef(loopU))
	}
	Label(loop1)
	LEAQ(Mem{Base: i, Disp: g.lanes}, t)
	CMPQ(t, e)
	JA(LabelRef(tail))
	step(i, 0, false)
	MOVQ(t, i)
	JMP(LabelRef(loop1))

	Label(tail)
	r := GP64()
	MOVQ(e, r)
	SUBQ(i, r)
	JZ(LabelRef(done))
	g.setMask(r)
	step(i, 0, true)
	MOVQ(e, i)
	Label(done)
}

// region emits an activation kernel body: f maps a vector in place, over
// rows rows of cols elements, row r at x + r·ld.
func (g *gen) region(unroll int, f func(v VecVirtual) VecVirtual) {
	x := ptr("x")
	rows, cols, ld := GP64(), GP64(), GP64()
	Load(Param("rows"), rows)
	Load(Param("cols"), cols)
	Load(Param("ld"), ld)
	SHLQ(U8(2), ld) // bytes
	done, loop := g.label("end"), g.label("row")
	TESTQ(rows, rows)
	JLE(LabelRef(done))
	TESTQ(cols, cols)
	JLE(LabelRef(done))
	Label(loop)
	i := GP64()
	XORQ(i, i)
	vb := g.vb()
	g.walk(i, cols, unroll, func(i GPVirtual, u int, masked bool) {
		v := g.load(at(x, i, u*vb), masked)
		v = f(v)
		g.store(v, at(x, i, u*vb), masked)
	})
	ADDQ(ld, x)
	DECQ(rows)
	JNZ(LabelRef(loop))
	Label(done)
	g.end()
}

// maxC returns max(c, v) with v returned when NaN (v the second source).
func (g *gen) maxC(v VecVirtual, c string) VecVirtual {
	t := g.vec()
	VMAXPS(v, g.r(c), t)
	return t
}

// minC returns min(c, v) with v returned when NaN.
func (g *gen) minC(v VecVirtual, c string) VecVirtual {
	t := g.vec()
	VMINPS(v, g.r(c), t)
	return t
}

// exp returns e^v for v ≤ ~88 (see the package comment); v is preserved.
func (g *gen) exp(v VecVirtual) VecVirtual {
	t := g.maxC(v, "m104")
	s := g.vec()
	VMOVUPS(g.mem("log2e"), s)
	VFMADD213PS(g.c("magic"), t, s) // s = t·log2e + magic
	n := g.vec()
	VSUBPS(g.c("magic"), s, n)       // n = round(t·log2e)
	VFNMADD231PS(g.c("ln2hi"), n, t) // t −= n·ln2hi
	VFNMADD231PS(g.c("ln2lo"), n, t) // r = t − n·ln2lo
	q := n                           // n is dead
	VMOVUPS(g.mem("e5"), q)
	for _, c := range []string{"e4", "e3", "e2", "e1", "e0"} {
		VFMADD213PS(g.c(c), t, q) // q = r·q + c
	}
	r2 := g.vec()
	VMULPS(t, t, r2)
	VFMADD213PS(t, r2, q) // q = r²·q + r
	VADDPS(g.c("one"), q, q)
	VPSUBD(g.c("expbias"), s, s) // n + 127
	VPMAXSD(g.c("zero"), s, s)
	VPSLLD(U8(23), s, s) // 2ⁿ, 0 below 2⁻¹²⁶
	VMULPS(s, q, q)
	return q
}

// blendSign returns, lane by lane, neg where x's sign bit is set and pos
// elsewhere.
func (g *gen) blendSign(x, neg, pos VecVirtual) VecVirtual {
	out := g.vec()
	if g.avx512 {
		k := K()
		VPMOVD2M(x, k)
		VBLENDMPS(neg, pos, k, out)
		return out
	}
	VBLENDVPS(x, neg, pos, out)
	return out
}

// sigmoid returns sigmoid(x); x is preserved.
func (g *gen) sigmoid(x VecVirtual) VecVirtual {
	a := g.vec()
	VORPS(g.c("sign"), x, a) // −|x|
	e := g.exp(a)
	d := g.vec()
	VADDPS(g.c("one"), e, d)
	num := g.blendSign(x, e, g.r("one"))
	VDIVPS(d, num, num)
	return num
}

func (g *gen) gelu(x VecVirtual) VecVirtual {
	z := g.vec()
	VANDPS(g.c("abs"), x, z)
	VMULPS(g.c("invsqrt2"), z, z)
	d := g.vec()
	VMOVUPS(g.mem("half"), d)
	VFMADD213PS(g.c("one"), z, d) // 1 + z/2
	t := g.vec()
	VDIVPS(d, g.r("one"), t)
	p := d // d is dead
	VMOVUPS(g.mem("nr9"), p)
	for k := 8; k >= 0; k-- {
		VFMADD213PS(g.c(fmt.Sprintf("nr%d", k)), t, p) // p = t·p + c
	}
	VFNMADD231PS(z, z, p) // −z² + P(t)
	e := g.exp(p)
	VMULPS(t, e, e)
	VMULPS(g.c("half"), e, e) // erfc(z)/2
	m1 := g.vec()
	VSUBPS(e, g.r("one"), m1) // 1 − erfc/2
	m := g.blendSign(x, e, m1)
	xc := g.maxC(x, "m104")
	VMULPS(m, xc, xc)
	return xc
}

func (g *gen) kernels() {
	const sigAct = "func(x []float32, rows, cols, ld int)"
	const doc = "over rows rows of cols elements of x, row r at r·ld, in place,"

	g.begin("ReLU", sigAct, "computes x = max(x, 0) "+doc)
	g.hold("zero")
	g.region(4, func(v VecVirtual) VecVirtual { return g.maxC(v, "zero") })

	g.begin("ReLU6", sigAct, "computes x = min(max(x, 0), 6) "+doc)
	g.hold("zero", "six")
	g.region(4, func(v VecVirtual) VecVirtual { return g.minC(g.maxC(v, "zero"), "six") })

	g.begin("HardSigmoid", sigAct, "computes x = min(max(x+3, 0), 6)·(1/6) "+doc)
	g.hold("zero", "six")
	g.region(4, func(v VecVirtual) VecVirtual {
		VADDPS(g.c("three"), v, v)
		t := g.minC(g.maxC(v, "zero"), "six")
		VMULPS(g.c("inv6"), t, t)
		return t
	})

	g.begin("HardSwish", sigAct, "computes x = max(x, −3)·(min(max(x+3, 0), 6)·(1/6)) "+doc)
	g.hold("zero", "six", "m3")
	g.region(4, func(v VecVirtual) VecVirtual {
		t := g.vec()
		VADDPS(g.c("three"), v, t)
		t = g.minC(g.maxC(t, "zero"), "six")
		VMULPS(g.c("inv6"), t, t)
		xc := g.maxC(v, "m3")
		VMULPS(t, xc, xc)
		return xc
	})

	expConsts := []string{"m104", "magic", "ln2hi", "ln2lo", "zero", "one"}
	if g.avx512 {
		expConsts = append(expConsts, "e4", "e3", "e2", "e1", "e0", "expbias")
	}
	g.begin("Sigmoid", sigAct, "computes x = 1/(1+e^−x) "+doc)
	g.hold(expConsts...)
	g.region(2, g.sigmoid)

	g.begin("SiLU", sigAct, "computes x = x·sigmoid(x) "+doc)
	g.hold(expConsts...)
	g.region(2, func(v VecVirtual) VecVirtual {
		s := g.sigmoid(v)
		xc := g.maxC(v, "m104")
		VMULPS(s, xc, xc)
		return xc
	})

	g.begin("GELU", sigAct, "computes x = x·Φ(x) (erf form) "+doc)
	g.hold("m104", "one", "zero")
	if g.avx512 {
		g.hold("magic", "ln2hi", "ln2lo", "half", "e4", "e3", "e2", "e1", "e0")
	}
	g.region(2, g.gelu)

	if !g.avx512 {
		// One kernel serves both levels: rounding is bound by memory, and
		// the AVX-512 level calls this one (act_amd64.go).
		g.begin("BF16", sigAct, "rounds x to the nearest bfloat16 (ties to even; a NaN stays a NaN, made quiet) "+doc)
		g.hold("i1", "i7fff", "hi16", "qnan")
		g.region(2, func(v VecVirtual) VecVirtual {
			// r = (u + 0x7fff + (u>>16 & 1)) & 0xffff0000, as bf16 in bf16.go
			t := g.vec()
			VPSRLD(U8(16), v, t)
			VPAND(g.r("i1"), t, t)
			VPADDD(g.r("i7fff"), t, t)
			VPADDD(v, t, t)
			VPAND(g.r("hi16"), t, t)
			// a NaN: (u | quiet bit) & 0xffff0000
			n := g.vec()
			VPOR(g.r("qnan"), v, n)
			VPAND(g.r("hi16"), n, n)
			m := g.vec()
			VCMPPS(U8(3), v, v, m) // unordered: v is NaN
			VBLENDVPS(m, n, t, t)
			return t
		})
	}

	vb := g.vb()
	g.begin("Add", "func(x, z, y []float32)", "computes y[i] = x[i] + z[i] over len(x) elements")
	{
		x, z, y, n := ptr("x"), ptr("z"), ptr("y"), length("x")
		i := GP64()
		XORQ(i, i)
		g.walk(i, n, 4, func(i GPVirtual, u int, masked bool) {
			v := g.load(at(x, i, u*vb), masked)
			w := g.load(at(z, i, u*vb), masked)
			VADDPS(w, v, v)
			g.store(v, at(y, i, u*vb), masked)
		})
		g.end()
	}

	g.begin("Mul16", "func(gate, x, y []float32)", "computes y[i] = x[i]·gate[i mod 16] over len(x) elements, a multiple of 16,")
	{
		gp, x, y, n := ptr("gate"), ptr("x"), ptr("y"), length("x")
		var gv [2]VecVirtual
		for h := range 16 / g.lanes {
			gv[h] = g.vec()
			VMOVUPS(Mem{Base: gp, Disp: h * vb}, gv[h])
		}
		i := GP64()
		XORQ(i, i)
		// Whole pixels of 16 values: the gate vector of lane block u is
		// gv[u mod (16/lanes)]; 64 values per iteration, then 16.
		loop4, loop1, done := g.label("loop4"), g.label("loop1"), g.label("done")
		t := GP64()
		Label(loop4)
		LEAQ(Mem{Base: i, Disp: 64}, t)
		CMPQ(t, n)
		JA(LabelRef(loop1))
		for u := 0; u < 64/g.lanes; u++ {
			v := g.vec()
			VMULPS(at(x, i, u*vb), gv[u%(16/g.lanes)], v)
			VMOVUPS(v, at(y, i, u*vb))
		}
		MOVQ(t, i)
		JMP(LabelRef(loop4))
		Label(loop1)
		CMPQ(i, n)
		JAE(LabelRef(done))
		for u := 0; u < 16/g.lanes; u++ {
			v := g.vec()
			VMULPS(at(x, i, u*vb), gv[u], v)
			VMOVUPS(v, at(y, i, u*vb))
		}
		ADDQ(U8(16), i)
		JMP(LabelRef(loop1))
		Label(done)
		g.end()
	}
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	constants()
	(&gen{isa: "AVX512", avx512: true, lanes: 16}).kernels()
	(&gen{isa: "AVX2", lanes: 8}).kernels()
	Generate()
}
