// Command gemm generates the SIMD GEMM micro-kernels of package kernel
// (gemm_amd64.s and its Go declarations) with avo. Run it through
// go generate in internal/kernel, or by hand:
//
//	cd internal/kernel/_gen && go run ./gemm -pkg kernel -out ../gemm_amd64.s -stubs ../gemm_stub_amd64.go
//
// Every kernel has the signature
//
//	func(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint)
//
// and computes one mr×nr tile of C from a packed A panel (a[p*mr+i]) and a
// packed B panel (b[p*nr+j]), p < kc, with the epilogue fused into the store:
// flags&1 adds the old C, flags&2 adds bias[i] to row i, flags&4 applies
// ReLU. Only rows < rows and columns < cols of C are read or written (row i
// of C starts at c[i*ldc]). The pure-Go twins in gemm_generic.go spell out
// the same loop.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const sig = "func(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint)"

// Flag bits, shared with the Go driver (gemm.go).
const (
	flagAcc  = 1
	flagBias = 2
	flagReLU = 4
)

// Fixed general-purpose register roles.
var (
	rK     = RCX // remaining k iterations
	rA     = RSI // A panel
	rB     = RDX // B panel
	rC     = RDI // C row
	rLdc   = R8  // ldc in bytes
	rBias  = R9  // bias
	rRows  = R10 // rows to store
	rCols  = R11 // columns to store
	rFlags = R12 // epilogue flags
)

func loadArgs() {
	Load(Param("kc"), rK)
	Load(Param("a").Base(), rA)
	Load(Param("b").Base(), rB)
	Load(Param("c").Base(), rC)
	Load(Param("ldc"), rLdc)
	SHLQ(U8(2), rLdc)
	Load(Param("bias").Base(), rBias)
	Load(Param("rows"), rRows)
	Load(Param("cols"), rCols)
	Load(Param("flags"), rFlags)
}

// kLoop emits the k loop, unrolled by unroll, calling step(u, aOff, bOff)
// for each unrolled iteration; the pointers advance by aStep/bStep bytes per
// iteration.
func kLoop(name string, unroll, aStep, bStep int, step func(u, aOff, bOff int)) {
	CMPQ(rK, U32(unroll))
	JL(LabelRef(name + "_tail"))
	Label(name + "_loop")
	for u := 0; u < unroll; u++ {
		step(u, u*aStep, u*bStep)
	}
	ADDQ(U32(unroll*aStep), rA)
	ADDQ(U32(unroll*bStep), rB)
	SUBQ(U32(unroll), rK)
	CMPQ(rK, U32(unroll))
	JGE(LabelRef(name + "_loop"))
	Label(name + "_tail")
	TESTQ(rK, rK)
	JE(LabelRef(name + "_epilogue"))
	Label(name + "_tailloop")
	step(0, 0, 0)
	ADDQ(U32(aStep), rA)
	ADDQ(U32(bStep), rB)
	DECQ(rK)
	JNZ(LabelRef(name + "_tailloop"))
	Label(name + "_epilogue")
}

// avx512 generates an mr × (16·nv) kernel: per k step nv vector loads of B
// and mr·nv FMAs with A broadcast from memory.
func avx512(mr, nv, unroll int) string {
	nr := 16 * nv
	name := fmt.Sprintf("gemmAVX512x%dx%d", mr, nr)
	TEXT(name, NOSPLIT, sig)
	Doc(fmt.Sprintf("%s computes a %d×%d tile of C with AVX-512; see gemm%dx%dGo.", name, mr, nr, mr, nr))
	if mr*nv+nv > 32 {
		panic("too many registers")
	}
	acc := func(r, v int) VecPhysical { return zmm(r*nv + v) }
	bReg := func(v int) VecPhysical { return zmm(mr*nv + v) }
	// A is broadcast once per row into a rotating set of registers (with
	// nv > 1 an embedded-broadcast FMA would reload it nv times).
	var bc []VecPhysical
	for i := mr*nv + nv; i < 32 && len(bc) < 4; i++ {
		bc = append(bc, zmm(i))
	}
	loadArgs()
	for r := 0; r < mr; r++ {
		for v := 0; v < nv; v++ {
			VPXORD(acc(r, v), acc(r, v), acc(r, v))
		}
	}
	kLoop(name, unroll, 4*mr, 4*nr, func(u, aOff, bOff int) {
		for v := 0; v < nv; v++ {
			VMOVUPS(Mem{Base: rB, Disp: bOff + 64*v}, bReg(v))
		}
		for r := 0; r < mr; r++ {
			a := Mem{Base: rA, Disp: aOff + 4*r}
			if nv == 1 || len(bc) == 0 {
				for v := 0; v < nv; v++ {
					VFMADD231PS_BCST(a, bReg(v), acc(r, v))
				}
				continue
			}
			t := bc[(u*mr+r)%len(bc)]
			VBROADCASTSS(a, t)
			for v := 0; v < nv; v++ {
				VFMADD231PS(bReg(v), t, acc(r, v))
			}
		}
	})
	// Column masks: bit j of mask v is set iff 16v+j < cols.
	masks := []Physical{K1, K2, K3, K4}[:nv]
	MOVQ(I64(-1), RAX)
	if nr < 64 {
		CMPQ(rCols, U32(64))
		JGE(LabelRef(name + "_fullmask"))
	}
	MOVQ(rCols, RCX)
	MOVQ(U64(1), RAX)
	SHLQ(CL, RAX)
	DECQ(RAX)
	if nr < 64 {
		Label(name + "_fullmask")
	}
	KMOVQ(RAX, masks[0])
	for v := 1; v < nv; v++ {
		KSHIFTRQ(U8(16*v), masks[0], masks[v])
	}
	zero := bReg(0)
	VPXORD(zero, zero, zero)
	done := LabelRef(name + "_done")
	for r := 0; r < mr; r++ {
		lbl := fmt.Sprintf("%s_r%d", name, r)
		CMPQ(rRows, U32(r))
		JLE(done)
		TESTQ(U32(flagAcc), rFlags)
		JZ(LabelRef(lbl + "_noacc"))
		for v := 0; v < nv; v++ {
			VADDPS_Z(Mem{Base: rC, Disp: 64 * v}, acc(r, v), masks[v], acc(r, v))
		}
		Label(lbl + "_noacc")
		TESTQ(U32(flagBias), rFlags)
		JZ(LabelRef(lbl + "_nobias"))
		for v := 0; v < nv; v++ {
			VADDPS_BCST(Mem{Base: rBias, Disp: 4 * r}, acc(r, v), acc(r, v))
		}
		Label(lbl + "_nobias")
		TESTQ(U32(flagReLU), rFlags)
		JZ(LabelRef(lbl + "_norelu"))
		for v := 0; v < nv; v++ {
			VMAXPS(zero, acc(r, v), acc(r, v))
		}
		Label(lbl + "_norelu")
		for v := 0; v < nv; v++ {
			VMOVUPS(acc(r, v), masks[v], Mem{Base: rC, Disp: 64 * v})
		}
		ADDQ(rLdc, rC)
	}
	Label(name + "_done")
	VZEROUPPER()
	RET()
	return name
}

// avx2 generates an mr × (8·nv) AVX2+FMA kernel: per k step nv vector loads
// of B, mr broadcasts of A and mr·nv FMAs.
func avx2(mr, nv, unroll int, maskTab Mem) string {
	nr := 8 * nv
	name := fmt.Sprintf("gemmAVX2x%dx%d", mr, nr)
	TEXT(name, NOSPLIT, sig)
	Doc(fmt.Sprintf("%s computes a %d×%d tile of C with AVX2 and FMA; see gemm%dx%dGo.", name, mr, nr, mr, nr))
	if mr*nv+nv+2 > 16 {
		panic("too many registers")
	}
	acc := func(r, v int) VecPhysical { return ymm(r*nv + v) }
	bReg := func(v int) VecPhysical { return ymm(mr*nv + v) }
	bc := []VecPhysical{ymm(mr*nv + nv), ymm(mr*nv + nv + 1)}
	loadArgs()
	for r := 0; r < mr; r++ {
		for v := 0; v < nv; v++ {
			VXORPS(acc(r, v), acc(r, v), acc(r, v))
		}
	}
	kLoop(name, unroll, 4*mr, 4*nr, func(u, aOff, bOff int) {
		for v := 0; v < nv; v++ {
			VMOVUPS(Mem{Base: rB, Disp: bOff + 32*v}, bReg(v))
		}
		for r := 0; r < mr; r++ {
			t := bc[r%2]
			VBROADCASTSS(Mem{Base: rA, Disp: aOff + 4*r}, t)
			for v := 0; v < nv; v++ {
				VFMADD231PS(bReg(v), t, acc(r, v))
			}
		}
	})
	zero, tmp := bc[0], bc[1]
	VXORPS(zero, zero, zero)
	done := LabelRef(name + "_done")
	// The epilogue exists twice: plain full-width stores when cols == nr,
	// VMASKMOVPS with lane masks from maskTab otherwise.
	epilogue := func(masked bool, suffix string) {
		masks := make([]VecPhysical, nv)
		if masked {
			// mask v selects lanes 8v+j < cols: maskTab[8-cnt : 16-cnt],
			// cnt = clamp(cols-8v, 0, 8).
			LEAQ(maskTab, R13)
			for v := 0; v < nv; v++ {
				masks[v] = bReg(v)
				MOVQ(rCols, RAX)
				if v > 0 {
					SUBQ(U32(8*v), RAX)
				}
				XORQ(RBX, RBX)
				CMPQ(RAX, RBX)
				CMOVQLT(RBX, RAX)
				MOVQ(U64(8), RBX)
				CMPQ(RAX, RBX)
				CMOVQGT(RBX, RAX)
				NEGQ(RAX)
				ADDQ(U32(8), RAX)
				VMOVDQU(Mem{Base: R13, Index: RAX, Scale: 4}, masks[v])
			}
		}
		for r := 0; r < mr; r++ {
			lbl := fmt.Sprintf("%s%s_r%d", name, suffix, r)
			CMPQ(rRows, U32(r))
			JLE(done)
			TESTQ(U32(flagAcc), rFlags)
			JZ(LabelRef(lbl + "_noacc"))
			for v := 0; v < nv; v++ {
				m := Mem{Base: rC, Disp: 32 * v}
				if masked {
					VMASKMOVPS(m, masks[v], tmp)
					VADDPS(tmp, acc(r, v), acc(r, v))
				} else {
					VADDPS(m, acc(r, v), acc(r, v))
				}
			}
			Label(lbl + "_noacc")
			TESTQ(U32(flagBias), rFlags)
			JZ(LabelRef(lbl + "_nobias"))
			VBROADCASTSS(Mem{Base: rBias, Disp: 4 * r}, tmp)
			for v := 0; v < nv; v++ {
				VADDPS(tmp, acc(r, v), acc(r, v))
			}
			Label(lbl + "_nobias")
			TESTQ(U32(flagReLU), rFlags)
			JZ(LabelRef(lbl + "_norelu"))
			for v := 0; v < nv; v++ {
				VMAXPS(zero, acc(r, v), acc(r, v))
			}
			Label(lbl + "_norelu")
			for v := 0; v < nv; v++ {
				m := Mem{Base: rC, Disp: 32 * v}
				if masked {
					VMASKMOVPS(acc(r, v), masks[v], m)
				} else {
					VMOVUPS(acc(r, v), m)
				}
			}
			ADDQ(rLdc, rC)
		}
		JMP(done)
	}
	CMPQ(rCols, U32(nr))
	JL(LabelRef(name + "_masked"))
	epilogue(false, "_full")
	Label(name + "_masked")
	epilogue(true, "_masked")
	Label(name + "_done")
	VZEROUPPER()
	RET()
	return name
}

func zmm(i int) VecPhysical {
	return []VecPhysical{
		Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
	}[i]
}

func ymm(i int) VecPhysical {
	return []VecPhysical{
		Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15,
	}[i]
}

func main() {
	ConstraintExpr("amd64")
	ConstraintExpr("!purego")

	// maskTab holds 8 all-ones then 8 zero dwords; 8 consecutive dwords from
	// offset 8-n are the VMASKMOVPS mask of the first n lanes.
	maskTab := GLOBL("gemmMaskTab", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := uint32(0)
		if i < 8 {
			v = 0xffffffff
		}
		DATA(4*i, U32(v))
	}

	for _, s := range avx512Shapes {
		avx512(s[0], s[1], 4)
	}
	for _, s := range avx2Shapes {
		avx2(s[0], s[1], 4, maskTab)
	}

	permEven := GLOBL("stempermeven", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(4*i, U32(uint32(2*i)))
	}
	permOdd := GLOBL("stempermodd", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(4*i, U32(uint32(2*i+1)))
	}
	negInf := GLOBL("stemneginf", RODATA|NOPTR)
	DATA(0, U32(0xff800000))
	gemvAVX512()
	conv3x3s2AVX512(permEven, permOdd, negInf)
	rowSumAVX512()
	scaleReLUAVX512()
	gemvAVX2()
	rowSumAVX2()
	scaleReLUAVX2()
	blockSum(true)
	blockSum(false)
	blockScaleReLU(true)
	blockScaleReLU(false)
	prefetchLines()
	prefetchLinesL2()
	Generate()
}

// Shapes as {mr, number of vectors}. Measured on Zen 5 (kc = 256, L1
// panels): AVX-512 12×32 256 GFLOP/s, 14×32 259, 8×48 252, 6×64 256 at
// kc = 64 but 46 at kc = 256 (its 64 KB B panel leaves L1); 12×32 wastes the
// least on MobileOne's channel counts (48, 128, 256, 1024: multiples of 4,
// not of 14). AVX2 6×16: 121 GFLOP/s. 12×16 is the column-tail kernel for
// panels of at most 16 columns (14×14 maps: 196 = 6·32 + 4).
var (
	avx512Shapes = [][2]int{{12, 2}, {12, 1}}
	avx2Shapes   = [][2]int{{6, 2}}
)
