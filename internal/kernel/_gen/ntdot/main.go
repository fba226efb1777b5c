// Command ntdot generates the dot-product micro-kernels of GemmNT
// (c = a·bᵀ with both operands row-major, so every element of c is a dot
// product of two contiguous rows): internal/kernel/gemmnt_amd64.s and its
// Go stubs.
//
//	cd internal/kernel/_gen && go run ./ntdot -out ../gemmnt_amd64.s -stubs ../gemmnt_stub_amd64.go
//
// ntDotAVX512xRxC computes an R×C block of c (R ≤ 6, C ≤ 4) over k: one ZMM
// accumulator per element of the block (16 lanes of partial sums), per
// 16-element step C loads of b rows, R loads of a rows and R·C FMAs, a
// zero-masked step for the last k mod 16 elements, then a horizontal sum
// of every accumulator, stored to c or added to it (acc). No operand is
// packed: the rows are read where they are.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

var mask16 Mem // uint16 (1<<i)-1, i = 0..16

func kernel(r, cols int) {
	name := fmt.Sprintf("ntDotAVX512x%dx%d", r, cols)
	TEXT(name, NOSPLIT, "func(a []float32, lda int, b []float32, ldb int, k int, c []float32, ldc int, acc bool)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes a %d×%d block of c = a·bᵀ with AVX512; see ntDotGo.", name, r, cols))

	rowPtrs := func(base, stride string, n int) []GPVirtual {
		p0 := GP64()
		Load(Param(base).Base(), p0)
		s := GP64()
		Load(Param(stride), s)
		SHLQ(U8(2), s)
		ps := []GPVirtual{p0}
		for i := 1; i < n; i++ {
			p := GP64()
			LEAQ(Mem{Base: ps[i-1], Index: s, Scale: 1}, p)
			ps = append(ps, p)
		}
		return ps
	}
	pa := rowPtrs("a", "lda", r)
	pb := rowPtrs("b", "ldb", cols)

	k := GP64()
	Load(Param("k"), k)
	kv := GP64()
	MOVQ(k, kv)
	ANDQ(I32(-16), kv)

	accs := make([][]VecVirtual, r)
	for i := range accs {
		for j := 0; j < cols; j++ {
			v := ZMM()
			VXORPS(v, v, v)
			accs[i] = append(accs[i], v)
		}
	}
	idx := GP64()
	XORQ(idx, idx)

	// A step loads the cols b vectors, then each a vector in turn and
	// its cols FMAs: live are r·cols accumulators, cols b vectors and one
	// a vector (6×4: 29 of the 32 registers).
	step := func(masked bool, km OpmaskVirtual) {
		load := func(m Mem, v VecVirtual) {
			if masked {
				VMOVUPS_Z(m, km, v)
			} else {
				VMOVUPS(m, v)
			}
		}
		vb := make([]VecVirtual, cols)
		for j := range vb {
			vb[j] = ZMM()
			load(Mem{Base: pb[j], Index: idx, Scale: 4}, vb[j])
		}
		for i := 0; i < r; i++ {
			va := ZMM()
			load(Mem{Base: pa[i], Index: idx, Scale: 4}, va)
			for j := range vb {
				VFMADD231PS(vb[j], va, accs[i][j])
			}
		}
	}

	Label(name + "_loop")
	CMPQ(idx, kv)
	JGE(LabelRef(name + "_tail"))
	step(false, nil)
	ADDQ(U8(16), idx)
	JMP(LabelRef(name + "_loop"))

	Label(name + "_tail")
	rem := GP64()
	MOVQ(k, rem)
	SUBQ(idx, rem)
	JZ(LabelRef(name + "_reduce"))
	t := GP64()
	LEAQ(mask16, t)
	m := GP32()
	MOVWLZX(Mem{Base: t, Index: rem, Scale: 2}, m)
	km := K()
	KMOVW(m, km)
	step(true, km)

	Label(name + "_reduce")
	sums := make([][]VecVirtual, r)
	for i := range accs {
		for j := range accs[i] {
			v := accs[i][j]
			y := YMM()
			VEXTRACTF32X8(U8(1), v, y)
			VADDPS(y, v.AsY(), y)
			x := XMM()
			VEXTRACTF32X4(U8(1), y, x)
			VADDPS(x, y.AsX(), x)
			x2 := XMM()
			VPERMILPS(U8(0x4e), x, x2)
			VADDPS(x2, x, x)
			VPERMILPS(U8(0xb1), x, x2)
			VADDSS(x2, x, x)
			sums[i] = append(sums[i], x)
		}
	}
	pc := GP64()
	Load(Param("c").Base(), pc)
	ldc := GP64()
	Load(Param("ldc"), ldc)
	SHLQ(U8(2), ldc)
	flag := GP8()
	Load(Param("acc"), flag)
	TESTB(flag, flag)
	JZ(LabelRef(name + "_store"))
	row := GP64()
	MOVQ(pc, row)
	for i := range sums {
		for j, x := range sums[i] {
			VADDSS(Mem{Base: row, Disp: 4 * j}, x, x)
		}
		if i+1 < len(sums) {
			ADDQ(ldc, row)
		}
	}
	Label(name + "_store")
	for i := range sums {
		for j, x := range sums[i] {
			VMOVSS(x, Mem{Base: pc, Disp: 4 * j})
		}
		if i+1 < len(sums) {
			ADDQ(ldc, pc)
		}
	}
	VZEROUPPER()
	RET()
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	mask16 = GLOBL("ntmask16", RODATA|NOPTR)
	for i := 0; i <= 16; i++ {
		DATA(2*i, U16(uint16(1<<i-1)))
	}
	for r := 1; r <= 6; r++ {
		for c := 1; c <= 4; c++ {
			kernel(r, c)
		}
	}
	Generate()
}
