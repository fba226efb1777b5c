// Command vec generates the vector kernels of package kernel (Dot, Axpy,
// SumSq, BNNorm, … in vec.go): internal/kernel/vec_amd64.s and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./vec -out ../vec_amd64.s -stubs ../vec_stub_amd64.go
//
// Every kernel exists for AVX-512 (ZMM, 16 lanes) and AVX2+FMA (YMM, 8
// lanes) and walks its n = len(first slice) elements the same way: a loop
// of U vectors per iteration (U = 4 mostly), a loop of single vectors, and
// one masked vector for the last n mod lanes elements (AVX-512: a K mask
// from a table, zero-masking loads and masking stores; AVX2: VMASKMOVPS with
// a lane mask from a table). Nothing outside the n elements of a slice is
// read or written. The Go wrappers in vec.go slice every other slice to the
// first one's length, so the kernels trust their lengths.
//
// Conv3, Conv3Add and Corr3 (a 3×3 convolution and its weight gradient,
// _gen/vec/conv3.go, ../conv3.go) walk rows of a plane instead; their
// wrapper checks that every element they touch exists.
//
// Element-wise kernels (Axpy, Scale, Add, ReLU, ReLUMask, BNNorm*, BNBack)
// load each vector before storing it, so an output may be the very same
// slice as an input.
//
// Reductions (Dot, DotSums, SumSq, ...) return float64: they accumulate
// chunks of at most chunk = 1024 elements in float32 lanes (U independent
// accumulator vectors per result), fold the U vectors of a chunk into one,
// convert its lanes to float64 (VCVTPS2PD) and add them to a float64 lane
// accumulator; the float64 lanes are summed at the end. A chunk's rounding
// error is that of a sum of at most 1024/(U·lanes) terms per lane, so the
// result stays close to a float64 reference however long the input. Corr3
// returns its nine sums in float32: its wrapper calls it on chunks of at
// most 1024 elements and adds them in float64.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/gotypes"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// chunk is the number of elements a reduction accumulates in float32
// before moving the partial sums to float64 (vecChunk in vec.go).
const chunk = 1024

var (
	mask16 Mem // uint16 (1<<i)-1, i = 0..16
	mask32 Mem // 8 × 0xffffffff then 8 × 0
)

func constants() {
	mask16 = GLOBL("vecmask16", RODATA|NOPTR)
	for i := 0; i <= 16; i++ {
		DATA(2*i, U16(uint16(1<<i-1)))
	}
	mask32 = GLOBL("vecmask32", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := U32(0)
		if i < 8 {
			v = U32(0xffffffff)
		}
		DATA(4*i, v)
	}
}

// gen generates the kernels of one instruction set.
type gen struct {
	isa    string // "AVX512" or "AVX2"
	avx512 bool
	lanes  int // float32 lanes per vector

	name    string // current kernel
	nlabels int

	// The tail mask of the current masked vector step.
	k     OpmaskVirtual // AVX-512
	ymask VecVirtual    // AVX2
}

func (g *gen) vec() VecVirtual {
	if g.avx512 {
		return ZMM()
	}
	return YMM()
}

func (g *gen) vb() int { return 4 * g.lanes } // bytes per vector

// begin starts kernel op with the given Go signature.
func (g *gen) begin(op, sig, doc string) {
	g.name = "vec" + op + g.isa
	g.nlabels = 0
	TEXT(g.name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s %s with %s; see vec.go.", g.name, doc, g.isa))
}

func (g *gen) end() {
	VZEROUPPER()
	RET()
}

func (g *gen) label(what string) string {
	g.nlabels++
	return fmt.Sprintf("%s_%s_%d", g.name, what, g.nlabels)
}

// ptr loads the base of slice param.
func ptr(param string) GPVirtual {
	p := GP64()
	Load(Param(param).Base(), p)
	return p
}

// length loads the length of slice param.
func length(param string) GPVirtual {
	n := GP64()
	Load(Param(param).Len(), n)
	return n
}

// bcast broadcasts float32 param to all lanes of a new vector.
func (g *gen) bcast(param string) VecVirtual {
	return g.bcastComp(Param(param))
}

// resolve returns the memory operand of argument or result c. Scalars
// move through it with VEX instructions (VMOVSS, VMOVSD, VBROADCASTSS),
// never avo's Load/Store, which pick the legacy-SSE MOVSS/MOVSD.
func resolve(c gotypes.Component) Mem {
	b, err := c.Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

// bcastComp broadcasts the float32 argument c to all lanes of a new vector,
// straight from memory: a legacy-SSE MOVSS into an XMM register while the
// upper halves of the vector registers are dirty costs a state transition
// on some Intel cores (about 1 µs per call was measured on a Xeon).
func (g *gen) bcastComp(c gotypes.Component) VecVirtual {
	v := g.vec()
	VBROADCASTSS(resolve(c), v)
	return v
}

func (g *gen) zero() VecVirtual {
	v := g.vec()
	VXORPS(v, v, v)
	return v
}

// setMask prepares the mask of the first r lanes, 0 < r < lanes, for the
// masked loads and stores of a tail step. r is preserved.
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

// at addresses element i of the slice at p, plus disp bytes.
func at(p, i GPVirtual, disp int) Mem {
	return Mem{Base: p, Index: i, Scale: 4, Disp: disp}
}

// load loads the vector at m into a new register; masked: only the tail
// lanes, the others are zero.
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

// src returns m as an instruction operand: m itself, or, masked, a register
// holding its tail lanes (zero beyond).
func (g *gen) src(m Mem, masked bool) Op {
	if !masked {
		return m
	}
	return g.load(m, true)
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

// stepFunc emits the work of one vector at element index i plus u vectors,
// masked for the tail.
type stepFunc func(i GPVirtual, u int, masked bool)

// walk emits the loops over elements [i, e): unroll vectors per iteration,
// then single vectors, then a masked tail; i ends at e. The index
// registers in also (other element indices kept at a fixed distance from
// i) advance with i, except over the tail.
func (g *gen) walk(i, e GPVirtual, unroll int, step stepFunc, also ...GPVirtual) {
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
		for _, a := range also {
			ADDQ(U32(unroll*g.lanes), a)
		}
		JMP(LabelRef(loopU))
	}
	Label(loop1)
	LEAQ(Mem{Base: i, Disp: g.lanes}, t)
	CMPQ(t, e)
	JA(LabelRef(tail))
	step(i, 0, false)
	MOVQ(t, i)
	for _, a := range also {
		ADDQ(U32(g.lanes), a)
	}
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

// elementwise emits a kernel body over n elements.
func (g *gen) elementwise(n GPVirtual, unroll int, step stepFunc) {
	i := GP64()
	XORQ(i, i)
	g.walk(i, n, unroll, step)
	g.end()
}

// redStep emits the work of one vector, adding into acc[r] for every
// result r.
type redStep func(acc []VecVirtual, i GPVirtual, u int, masked bool)

// reduce emits a reduction kernel body over n elements with nres float64
// results, stored to the kernel's return values in order.
func (g *gen) reduce(n GPVirtual, nres, unroll int, step redStep) {
	acc := make([][]VecVirtual, unroll) // acc[u][r]
	for u := range acc {
		acc[u] = make([]VecVirtual, nres)
		for r := range acc[u] {
			acc[u][r] = g.vec()
		}
	}
	sum := make([]VecVirtual, nres) // float64 lanes
	for r := range sum {
		sum[r] = g.zero()
	}
	i, e := GP64(), GP64()
	XORQ(i, i)
	loop := g.label("chunk")
	Label(loop)
	for u := range acc {
		for _, a := range acc[u] {
			VXORPS(a, a, a)
		}
	}
	// e = min(i+chunk, n)
	LEAQ(Mem{Base: i, Disp: chunk}, e)
	CMPQ(e, n)
	CMOVQGT(n, e)
	g.walk(i, e, unroll, func(i GPVirtual, u int, masked bool) { step(acc[u], i, u, masked) })

	Comment("Fold the chunk's float32 lanes into the float64 sums.")
	for r := range sum {
		a := make([]VecVirtual, unroll)
		for u := range a {
			a[u] = acc[u][r]
		}
		for len(a) > 1 { // pairwise
			h := (len(a) + 1) / 2
			for j := h; j < len(a); j++ {
				VADDPS(a[j], a[j-h], a[j-h])
			}
			a = a[:h]
		}
		v := a[0]
		t := g.vec()
		if g.avx512 {
			VCVTPS2PD(v.AsY(), t)
			VADDPD(t, sum[r], sum[r])
			hi := YMM()
			VEXTRACTF64X4(U8(1), v, hi)
			VCVTPS2PD(hi, t)
			VADDPD(t, sum[r], sum[r])
		} else {
			VCVTPS2PD(v.AsX(), t)
			VADDPD(t, sum[r], sum[r])
			hi := XMM()
			VEXTRACTF128(U8(1), v, hi)
			VCVTPS2PD(hi, t)
			VADDPD(t, sum[r], sum[r])
		}
	}
	CMPQ(i, n)
	JB(LabelRef(loop))

	Comment("Sum the float64 lanes.")
	for r, s := range sum {
		y := s
		if g.avx512 {
			hi := YMM()
			VEXTRACTF64X4(U8(1), s, hi)
			VADDPD(hi, s.AsY(), hi)
			y = hi
		}
		x := XMM()
		VEXTRACTF128(U8(1), y, x)
		VADDPD(x, y.AsX(), x)
		h := XMM()
		VUNPCKHPD(x, x, h)
		VADDSD(h, x, x)
		VMOVSD(x, resolve(ReturnIndex(r)))
	}
	g.end()
}

// hsum returns an XMM register whose lane 0 holds the sum of v's lanes.
func (g *gen) hsum(v VecVirtual) VecVirtual {
	y := v
	if g.avx512 {
		hi := YMM()
		VEXTRACTF64X4(U8(1), v, hi)
		VADDPS(hi, v.AsY(), hi)
		y = hi
	}
	x := XMM()
	VEXTRACTF128(U8(1), y, x)
	VADDPS(x, y.AsX(), x)
	h := XMM()
	VMOVHLPS(x, x, h)
	VADDPS(h, x, x)
	VMOVSHDUP(x, h)
	VADDSS(h, x, x)
	return x
}

// Comparison predicate of VCMPPS: not equal, unordered (true for NaN).
const cmpNEQUQ = 4

func (g *gen) kernels() {
	const (
		sig2   = "func(a, b []float32) float64"
		sigXY  = "func(alpha float32, x, y []float32)"
		sigBN  = "func(src, xhat, out []float32, mean, invstd, gamma, beta float32)"
		sigBNB = "func(d, xhat, out []float32, k, md, mean, mdx float32)"
	)
	vb := g.vb()
	u4 := 4

	// Dot: Σ a·b.
	g.begin("Dot", sig2, "returns Σ a[i]·b[i] over len(a) elements, len(b) ≥ len(a)")
	{
		a, b, n := ptr("a"), ptr("b"), length("a")
		g.reduce(n, 1, u4, func(acc []VecVirtual, i GPVirtual, u int, masked bool) {
			x := g.load(at(a, i, u*vb), masked)
			VFMADD231PS(g.src(at(b, i, u*vb), masked), x, acc[0])
		})
	}

	// DotSums: Σd, Σd·(x−shift).
	g.begin("DotSums", "func(d, x []float32, shift float32) (sd, sdx float64)", "returns Σ d[i] and Σ d[i]·(x[i]−shift) over len(d) elements")
	{
		d, x, n := ptr("d"), ptr("x"), length("d")
		sh := g.bcast("shift")
		g.reduce(n, 2, u4, func(acc []VecVirtual, i GPVirtual, u int, masked bool) {
			v := g.load(at(d, i, u*vb), masked)
			VADDPS(v, acc[0], acc[0])
			xv := g.load(at(x, i, u*vb), masked) // lanes past the end: d is 0 there
			VSUBPS(sh, xv, xv)
			VFMADD231PS(xv, v, acc[1])
		})
	}

	// SumSq: Σ(x−shift), Σ(x−shift)².
	g.begin("SumSq", "func(x []float32, shift float32) (s, sq float64)", "returns Σ (x[i]−shift) and Σ (x[i]−shift)²")
	{
		x, n := ptr("x"), length("x")
		sh := g.bcast("shift")
		g.reduce(n, 2, u4, func(acc []VecVirtual, i GPVirtual, u int, masked bool) {
			v := g.load(at(x, i, u*vb), masked)
			switch {
			case !masked:
				VSUBPS(sh, v, v)
			case g.avx512:
				VSUBPS_Z(sh, v, g.k, v) // lanes past the end stay 0
			default:
				VSUBPS(sh, v, v)
				VANDPS(g.ymask, v, v)
			}
			VADDPS(v, acc[0], acc[0])
			VFMADD231PS(v, v, acc[1])
		})
	}

	g.conv3Kernels()

	// DotAxpy: Σ d·x, and y += alpha·d.
	g.begin("DotAxpy", "func(alpha float32, d, x, y []float32) float64", "returns Σ d[i]·x[i] and adds alpha·d[i] to y[i] over len(d) elements")
	{
		d, x, y, n := ptr("d"), ptr("x"), ptr("y"), length("d")
		al := g.bcast("alpha")
		g.reduce(n, 1, u4, func(acc []VecVirtual, i GPVirtual, u int, masked bool) {
			v := g.load(at(d, i, u*vb), masked)
			VFMADD231PS(g.src(at(x, i, u*vb), masked), v, acc[0])
			t := g.load(at(y, i, u*vb), masked)
			VFMADD231PS(v, al, t)
			g.store(t, at(y, i, u*vb), masked)
		})
	}

	// ReLUMaskDotSums: d = 0 where y == 0, then Σd, Σd·(x−shift).
	g.begin("ReLUMaskDotSums", "func(y, d, x []float32, shift float32) (sd, sdx float64)", "zeroes d[i] where y[i] == 0 and returns Σ d[i] and Σ d[i]·(x[i]−shift) over len(y) elements")
	{
		y, d, x, n := ptr("y"), ptr("d"), ptr("x"), length("y")
		sh := g.bcast("shift")
		z := g.zero()
		g.reduce(n, 2, u4, func(acc []VecVirtual, i GPVirtual, u int, masked bool) {
			ys := g.src(at(y, i, u*vb), masked)
			v := g.vec()
			if g.avx512 {
				keep := K()
				VCMPPS(U8(cmpNEQUQ), ys, z, keep)
				VMOVUPS_Z(at(d, i, u*vb), keep, v)
			} else {
				VCMPPS(U8(cmpNEQUQ), ys, z, v)
				VANDPS(g.src(at(d, i, u*vb), masked), v, v)
			}
			g.store(v, at(d, i, u*vb), masked)
			VADDPS(v, acc[0], acc[0])
			xv := g.load(at(x, i, u*vb), masked) // lanes past the end: d is 0 there
			VSUBPS(sh, xv, xv)
			VFMADD231PS(xv, v, acc[1])
		})
	}

	// Axpy: y += alpha·x.
	g.begin("Axpy", sigXY, "computes y[i] += alpha·x[i] over len(x) elements")
	{
		x, y, n := ptr("x"), ptr("y"), length("x")
		al := g.bcast("alpha")
		g.elementwise(n, u4, func(i GPVirtual, u int, masked bool) {
			v := g.load(at(y, i, u*vb), masked)
			VFMADD231PS(g.src(at(x, i, u*vb), masked), al, v)
			g.store(v, at(y, i, u*vb), masked)
		})
	}

	// Scale: y = alpha·x.
	g.begin("Scale", sigXY, "computes y[i] = alpha·x[i] over len(x) elements")
	{
		x, y, n := ptr("x"), ptr("y"), length("x")
		al := g.bcast("alpha")
		g.elementwise(n, u4, func(i GPVirtual, u int, masked bool) {
			v := g.vec()
			VMULPS(g.src(at(x, i, u*vb), masked), al, v)
			g.store(v, at(y, i, u*vb), masked)
		})
	}

	// Add: y += x.
	g.begin("Add", "func(x, y []float32)", "computes y[i] += x[i] over len(x) elements")
	{
		x, y, n := ptr("x"), ptr("y"), length("x")
		g.elementwise(n, u4, func(i GPVirtual, u int, masked bool) {
			v := g.load(at(y, i, u*vb), masked)
			VADDPS(g.src(at(x, i, u*vb), masked), v, v)
			g.store(v, at(y, i, u*vb), masked)
		})
	}

	// ReLU: x = max(x, 0), NaN kept.
	g.begin("ReLU", "func(x []float32)", "computes x[i] = max(x[i], 0), NaN kept,")
	{
		x, n := ptr("x"), length("x")
		z := g.zero()
		g.elementwise(n, u4, func(i GPVirtual, u int, masked bool) {
			v := g.vec()
			// x as the second source of MAXPS: returned when either is
			// NaN or both are zeros, so NaN and -0 are kept.
			VMAXPS(g.src(at(x, i, u*vb), masked), z, v)
			g.store(v, at(x, i, u*vb), masked)
		})
	}

	// ReLUMask: d = 0 where y == 0.
	g.begin("ReLUMask", "func(y, d []float32)", "zeroes d[i] where y[i] == 0 over len(y) elements")
	{
		y, d, n := ptr("y"), ptr("d"), length("y")
		z := g.zero()
		g.elementwise(n, u4, func(i GPVirtual, u int, masked bool) {
			// Masked, y's lanes past the end load as 0, so they compare
			// equal and their d lanes are neither read nor kept.
			ys := g.src(at(y, i, u*vb), masked)
			if g.avx512 {
				keep := K()
				VCMPPS(U8(cmpNEQUQ), ys, z, keep)
				v := g.vec()
				VMOVUPS_Z(at(d, i, u*vb), keep, v)
				g.store(v, at(d, i, u*vb), masked)
				return
			}
			m := g.vec()
			VCMPPS(U8(cmpNEQUQ), ys, z, m)
			VANDPS(g.src(at(d, i, u*vb), masked), m, m)
			g.store(m, at(d, i, u*vb), masked)
		})
	}

	// BNNorm: xhat = (src−mean)·invstd; out = or += gamma·xhat + beta.
	for _, mode := range []struct{ suffix, doc string }{
		{"", "writes xhat[i] = (src[i]−mean)·invstd"},
		{"Store", "writes xhat[i] = h = (src[i]−mean)·invstd and out[i] = gamma·h + beta"},
		{"Acc", "writes xhat[i] = h = (src[i]−mean)·invstd and adds gamma·h + beta to out[i]"},
	} {
		g.begin("BNNorm"+mode.suffix, sigBN, mode.doc+" over len(src) elements")
		src, xhat, n := ptr("src"), ptr("xhat"), length("src")
		var out GPVirtual
		mean, invstd := g.bcast("mean"), g.bcast("invstd")
		var gamma, beta VecVirtual
		if mode.suffix != "" {
			out = ptr("out")
			gamma, beta = g.bcast("gamma"), g.bcast("beta")
		}
		g.elementwise(n, u4, func(i GPVirtual, u int, masked bool) {
			h := g.load(at(src, i, u*vb), masked)
			VSUBPS(mean, h, h)
			VMULPS(invstd, h, h)
			g.store(h, at(xhat, i, u*vb), masked)
			if out == nil {
				return
			}
			VFMADD213PS(beta, gamma, h) // h = gamma·h + beta
			if mode.suffix == "Acc" {
				VADDPS(g.src(at(out, i, u*vb), masked), h, h)
			}
			g.store(h, at(out, i, u*vb), masked)
		})
	}

	// BNBack: out = k·(d − md − (xhat−mean)·mdx).
	g.begin("BNBack", sigBNB, "computes out[i] = k·(d[i] − md − (xhat[i]−mean)·mdx) over len(d) elements")
	{
		d, xhat, out, n := ptr("d"), ptr("xhat"), ptr("out"), length("d")
		k, md, mean, mdx := g.bcast("k"), g.bcast("md"), g.bcast("mean"), g.bcast("mdx")
		g.elementwise(n, u4, func(i GPVirtual, u int, masked bool) {
			t := g.load(at(d, i, u*vb), masked)
			VSUBPS(md, t, t)
			h := g.load(at(xhat, i, u*vb), masked)
			VSUBPS(mean, h, h)
			VFNMADD231PS(h, mdx, t) // t −= (xhat−mean)·mdx
			VMULPS(k, t, t)
			g.store(t, at(out, i, u*vb), masked)
		})
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
