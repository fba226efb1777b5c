package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// hsum reduces the 16 lanes of z to lane 0 of its XMM part (t is clobbered).
func hsum(z, t VecPhysical) {
	y, x := z.AsY(), z.AsX()
	ty, tx := t.AsY(), t.AsX()
	VEXTRACTF64X4(U8(1), z, ty)
	VADDPS(ty, y, y)
	VEXTRACTF128(U8(1), y, tx)
	VADDPS(tx, x, x)
	VHADDPS(x, x, x)
	VHADDPS(x, x, x)
}

// gemvAVX512 generates y[r] = Σ_j w[r*in+j]·x[j] for r < rows: four rows per
// pass (x is loaded once for the four), two vectors of 16 columns per step
// (eight independent FMA chains), the in%16 column tail with masked loads.
// w is streamed once with full-width loads.
func gemvAVX512() {
	name := "gemvAVX512"
	TEXT(name, NOSPLIT, "func(w, x, y []float32, in, rows int)")
	Doc(name + " computes y[r] = Σ_{j<in} w[r*in+j]·x[j] for r < rows with AVX-512; see gemvGo.")
	rW, rX, rY, rIn, rRows := RSI, RDX, RDI, R9, R8
	rEnd, rEnd2, rOff := R10, R14, RAX
	rows := []GPPhysical{RSI, R11, R12, R13}
	Load(Param("w").Base(), rW)
	Load(Param("x").Base(), rX)
	Load(Param("y").Base(), rY)
	Load(Param("in"), RCX)
	Load(Param("rows"), rRows)
	MOVQ(RCX, rIn)
	SHLQ(U8(2), rIn) // row stride in bytes
	// Tail mask k1: the low in%16 lanes.
	MOVQ(RCX, RBX)
	ANDQ(U32(15), RBX)
	MOVQ(rIn, rEnd)
	SUBQ(RBX, rEnd)
	SUBQ(RBX, rEnd)
	SUBQ(RBX, rEnd)
	SUBQ(RBX, rEnd) // bytes of whole vectors
	MOVQ(RBX, RCX)
	MOVL(U32(1), EAX)
	SHLL(CL, EAX)
	DECL(EAX)
	KMOVW(EAX, K1)
	MOVQ(rEnd, rEnd2)
	SUBQ(U32(128), rEnd2)

	body := func(nr int, lbl string) {
		acc := func(r, u int) VecPhysical { return zmm(r + 4*u) }
		for r := 0; r < nr; r++ {
			for u := 0; u < 2; u++ {
				VPXORD(acc(r, u), acc(r, u), acc(r, u))
			}
		}
		for r := 1; r < nr; r++ {
			LEAQ(Mem{Base: rows[r-1], Index: rIn, Scale: 1}, rows[r])
		}
		XORQ(rOff, rOff)
		Label(lbl + "_loop2")
		CMPQ(rOff, rEnd2)
		JG(LabelRef(lbl + "_one"))
		for u := 0; u < 2; u++ {
			VMOVUPS(Mem{Base: rX, Index: rOff, Scale: 1, Disp: 64 * u}, zmm(8+u))
		}
		for u := 0; u < 2; u++ {
			for r := 0; r < nr; r++ {
				VFMADD231PS(Mem{Base: rows[r], Index: rOff, Scale: 1, Disp: 64 * u}, zmm(8+u), acc(r, u))
			}
		}
		ADDQ(U32(128), rOff)
		JMP(LabelRef(lbl + "_loop2"))
		Label(lbl + "_one")
		CMPQ(rOff, rEnd)
		JGE(LabelRef(lbl + "_tail"))
		VMOVUPS(Mem{Base: rX, Index: rOff, Scale: 1}, zmm(8))
		for r := 0; r < nr; r++ {
			VFMADD231PS(Mem{Base: rows[r], Index: rOff, Scale: 1}, zmm(8), acc(r, 0))
		}
		ADDQ(U32(64), rOff)
		Label(lbl + "_tail")
		TESTQ(RBX, RBX)
		JE(LabelRef(lbl + "_sum"))
		VMOVUPS_Z(Mem{Base: rX, Index: rOff, Scale: 1}, K1, zmm(8))
		for r := 0; r < nr; r++ {
			VMOVUPS_Z(Mem{Base: rows[r], Index: rOff, Scale: 1}, K1, zmm(9))
			VFMADD231PS(zmm(9), zmm(8), acc(r, 1))
		}
		Label(lbl + "_sum")
		for r := 0; r < nr; r++ {
			VADDPS(acc(r, 1), acc(r, 0), acc(r, 0))
			hsum(acc(r, 0), zmm(8))
			VMOVSS(acc(r, 0).AsX(), Mem{Base: rY, Disp: 4 * r})
		}
		LEAQ(Mem{Base: rows[nr-1], Index: rIn, Scale: 1}, rW)
		ADDQ(U32(4*nr), rY)
		SUBQ(U32(nr), rRows)
	}
	Label(name + "_rows4")
	CMPQ(rRows, U32(4))
	JL(LabelRef(name + "_rows1"))
	body(4, name+"_r4")
	JMP(LabelRef(name + "_rows4"))
	Label(name + "_rows1")
	TESTQ(rRows, rRows)
	JE(LabelRef(name + "_done"))
	body(1, name+"_r1")
	JMP(LabelRef(name + "_rows1"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// stemOCB is the number of output channels per pass of the direct 3×3
// stride-2 kernel (the packed weight and bias block).
const stemOCB = 8

// conv3x3s2AVX512 generates one output row of a dense 3×3 stride-2
// convolution from a zero-padded input (see conv3x3s2Go in package kernel):
// for each block of 8 output channels it runs along the row in steps of 32
// output pixels (two ZMM per channel, 16 accumulators; a final step of 16
// when at most 16 remain). Per input channel and kernel row, the three tap
// vectors are deinterleaved from the padded row with VPERMT2PS (even columns
// from 2·ox and 2·ox+2, odd columns from 2·ox) and each is multiplied by the
// 8 broadcast weights of that tap. Bias is the accumulators' start value;
// ReLU is max with a floor of 0 (or -Inf); stores are masked at ow.
func conv3x3s2AVX512(permEven, permOdd, negInf Mem) {
	name := "conv3x3s2AVX512"
	TEXT(name, NOSPLIT, "func(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, ocb, ow int, relu bool)")
	Doc(name + " computes one output row of a 3×3 stride-2 convolution with AVX-512; see conv3x3s2Go.")
	rXp, rW, rB, rO := RSI, RDX, R9, RDI
	rOx, rCh, rLdx, rCin, rBlk, rOw := R8, R10, R11, R12, R13, R14
	rRow, rCi, rWp := RAX, RBX, RCX
	Load(Param("xp").Base(), rXp)
	Load(Param("w").Base(), rW)
	Load(Param("b").Base(), rB)
	Load(Param("out").Base(), rO)
	Load(Param("chStride"), rCh)
	SHLQ(U8(2), rCh)
	Load(Param("ldx"), rLdx)
	SHLQ(U8(2), rLdx)
	Load(Param("cin"), rCin)
	Load(Param("ocb"), rBlk)
	Load(Param("ow"), rOw)
	idxE, idxO, floor := Z26, Z27, Z28
	VMOVUPS(permEven, idxE)
	VMOVUPS(permOdd, idxO)
	VBROADCASTSS(negInf, floor)
	Load(Param("relu"), RAX)
	TESTB(AL, AL)
	JE(LabelRef(name + "_norelu"))
	VPXORD(floor, floor, floor)
	Label(name + "_norelu")
	TESTQ(rBlk, rBlk)
	JE(LabelRef(name + "_done"))

	acc := func(o, p int) VecPhysical { return zmm(2*o + p) }
	taps := [3][2]VecPhysical{{Z16, Z17}, {Z18, Z19}, {Z20, Z21}}
	bc := []VecPhysical{Z22, Z23, Z24, Z25}

	step := func(pv int, lbl string) {
		for o := 0; o < stemOCB; o++ {
			for p := 0; p < pv; p++ {
				VBROADCASTSS(Mem{Base: rB, Disp: 4 * o}, acc(o, p))
			}
		}
		// rRow: padded input at column 2·ox0 of channel 0, kernel row 0.
		LEAQ(Mem{Base: rXp, Index: rOx, Scale: 8}, rRow)
		MOVQ(rW, rWp)
		MOVQ(rCin, rCi)
		Label(lbl + "_ci")
		for ky := 0; ky < 3; ky++ {
			row := func(disp int) Mem {
				m := Mem{Base: rRow, Disp: disp}
				if ky > 0 {
					m.Index, m.Scale = rLdx, uint8(ky)
				}
				return m
			}
			for p := 0; p < pv; p++ {
				d := 128 * p
				VMOVUPS(row(d), taps[0][p])
				VPERMT2PS(row(d+64), idxE, taps[0][p])
				VMOVUPS(row(d), taps[1][p])
				VPERMT2PS(row(d+64), idxO, taps[1][p])
				VMOVUPS(row(d+8), taps[2][p])
				VPERMT2PS(row(d+72), idxE, taps[2][p])
			}
			n := 0
			for kx := 0; kx < 3; kx++ {
				for o := 0; o < stemOCB; o++ {
					wm := Mem{Base: rWp, Disp: 4 * ((ky*3+kx)*stemOCB + o)}
					if pv == 1 {
						VFMADD231PS_BCST(wm, taps[kx][0], acc(o, 0))
						continue
					}
					t := bc[n%len(bc)]
					n++
					VBROADCASTSS(wm, t)
					for p := 0; p < pv; p++ {
						VFMADD231PS(taps[kx][p], t, acc(o, p))
					}
				}
			}
		}
		ADDQ(rCh, rRow)
		ADDQ(U32(4*9*stemOCB), rWp)
		DECQ(rCi)
		JNZ(LabelRef(lbl + "_ci"))
		// Masks k1, k2: lanes of the ow-ox0 remaining columns.
		MOVQ(rOw, RCX)
		SUBQ(rOx, RCX)
		MOVQ(I64(-1), RAX)
		CMPQ(RCX, U32(32))
		JGE(LabelRef(lbl + "_full"))
		MOVL(U32(1), EAX)
		SHLL(CL, EAX)
		DECL(EAX)
		Label(lbl + "_full")
		KMOVD(EAX, K1)
		KSHIFTRD(U8(16), K1, K2)
		Load(Param("ldo"), RBX)
		SHLQ(U8(2), RBX)
		LEAQ(Mem{Base: rO, Index: rOx, Scale: 4}, RAX)
		for o := 0; o < stemOCB; o++ {
			for p := 0; p < pv; p++ {
				VMAXPS(floor, acc(o, p), acc(o, p))
				VMOVUPS(acc(o, p), []Op{K1, K2}[p], Mem{Base: RAX, Disp: 64 * p})
			}
			if o+1 < stemOCB {
				ADDQ(RBX, RAX)
			}
		}
		ADDQ(U32(16*pv), rOx)
	}
	Label(name + "_blk")
	XORQ(rOx, rOx)
	Label(name + "_px")
	MOVQ(rOw, RAX)
	SUBQ(rOx, RAX)
	CMPQ(RAX, U32(0))
	JLE(LabelRef(name + "_nextblk"))
	CMPQ(RAX, U32(16))
	JLE(LabelRef(name + "_px1"))
	step(2, name+"_p2")
	JMP(LabelRef(name + "_px"))
	Label(name + "_px1")
	step(1, name+"_p1")
	Label(name + "_nextblk")
	Load(Param("cin"), RAX)
	IMUL3Q(U32(4*9*stemOCB), RAX, RAX)
	ADDQ(RAX, rW)
	ADDQ(U32(4*stemOCB), rB)
	Load(Param("ldo"), RAX)
	SHLQ(U8(2+3), RAX) // 8 channel planes
	ADDQ(RAX, rO)
	DECQ(rBlk)
	JNZ(LabelRef(name + "_blk"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// rowSumAVX512 generates out[i] = scale·Σ_{j<hw} x[i*hw+j] for i < c: one
// vector accumulator per row, the hw%16 tail with a masked load.
func rowSumAVX512() {
	name := "rowSumAVX512"
	TEXT(name, NOSPLIT, "func(x, out []float32, c, hw int, scale float32)")
	Doc(name + " computes out[i] = scale·Σ_{j<hw} x[i*hw+j] for i < c with AVX-512; see rowSumGo.")
	rX, rOut, rC, rHw, rEnd, rOff := RSI, RDI, R8, R9, R10, RAX
	Load(Param("x").Base(), rX)
	Load(Param("out").Base(), rOut)
	Load(Param("c"), rC)
	Load(Param("hw"), RCX)
	VMOVSS(scalarArg("scale"), X3) // VEX: no SSE/AVX transition
	MOVQ(RCX, rHw)
	SHLQ(U8(2), rHw)
	ANDQ(U32(15), RCX)
	MOVQ(rHw, rEnd)
	MOVQ(RCX, RBX)
	SHLQ(U8(2), RBX)
	SUBQ(RBX, rEnd) // bytes of whole vectors
	MOVQ(RCX, RBX)  // tail lanes
	MOVL(U32(1), EDX)
	SHLL(CL, EDX)
	DECL(EDX)
	KMOVW(EDX, K1)
	TESTQ(rC, rC)
	JE(LabelRef(name + "_done"))
	Label(name + "_row")
	VPXORD(Z0, Z0, Z0)
	VPXORD(Z1, Z1, Z1)
	XORQ(rOff, rOff)
	Label(name + "_loop")
	CMPQ(rOff, rEnd)
	JGE(LabelRef(name + "_tail"))
	VADDPS(Mem{Base: rX, Index: rOff, Scale: 1}, Z0, Z0)
	ADDQ(U32(64), rOff)
	CMPQ(rOff, rEnd)
	JGE(LabelRef(name + "_tail"))
	VADDPS(Mem{Base: rX, Index: rOff, Scale: 1}, Z1, Z1)
	ADDQ(U32(64), rOff)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_tail")
	TESTQ(RBX, RBX)
	JE(LabelRef(name + "_sum"))
	VMOVUPS_Z(Mem{Base: rX, Index: rOff, Scale: 1}, K1, Z2)
	VADDPS(Z2, Z1, Z1)
	Label(name + "_sum")
	VADDPS(Z1, Z0, Z0)
	hsum(Z0, Z2)
	VMULSS(X3, X0, X0)
	VMOVSS(X0, Mem{Base: rOut})
	ADDQ(U32(4), rOut)
	ADDQ(rHw, rX)
	DECQ(rC)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// scaleReLUAVX512 generates x[i*hw+j] = max(x[i*hw+j]·g[i], 0) for i < c,
// j < hw, the hw%16 tail with a masked load and store.
func scaleReLUAVX512() {
	name := "scaleReLUAVX512"
	TEXT(name, NOSPLIT, "func(x, g []float32, c, hw int)")
	Doc(name + " computes x[i*hw+j] = max(x[i*hw+j]·g[i], 0) for i < c, j < hw with AVX-512; see scaleReLUGo.")
	rX, rG, rC, rHw, rEnd, rOff := RSI, RDI, R8, R9, R10, RAX
	Load(Param("x").Base(), rX)
	Load(Param("g").Base(), rG)
	Load(Param("c"), rC)
	Load(Param("hw"), RCX)
	MOVQ(RCX, rHw)
	SHLQ(U8(2), rHw)
	ANDQ(U32(15), RCX)
	MOVQ(rHw, rEnd)
	MOVQ(RCX, RBX)
	SHLQ(U8(2), RBX)
	SUBQ(RBX, rEnd)
	MOVQ(RCX, RBX)
	MOVL(U32(1), EDX)
	SHLL(CL, EDX)
	DECL(EDX)
	KMOVW(EDX, K1)
	VPXORD(Z0, Z0, Z0)
	TESTQ(rC, rC)
	JE(LabelRef(name + "_done"))
	Label(name + "_row")
	VBROADCASTSS(Mem{Base: rG}, Z1)
	XORQ(rOff, rOff)
	Label(name + "_loop")
	CMPQ(rOff, rEnd)
	JGE(LabelRef(name + "_tail"))
	VMULPS(Mem{Base: rX, Index: rOff, Scale: 1}, Z1, Z2)
	VMAXPS(Z0, Z2, Z2)
	VMOVUPS(Z2, Mem{Base: rX, Index: rOff, Scale: 1})
	ADDQ(U32(64), rOff)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_tail")
	TESTQ(RBX, RBX)
	JE(LabelRef(name + "_next"))
	VMOVUPS_Z(Mem{Base: rX, Index: rOff, Scale: 1}, K1, Z2)
	VMULPS(Z1, Z2, Z2)
	VMAXPS(Z0, Z2, Z2)
	VMOVUPS(Z2, K1, Mem{Base: rX, Index: rOff, Scale: 1})
	Label(name + "_next")
	ADDQ(U32(4), rG)
	ADDQ(rHw, rX)
	DECQ(rC)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// hsum8 reduces the 8 lanes of y to lane 0 of its XMM part (t is clobbered).
func hsum8(y, t VecPhysical) {
	x, tx := y.AsX(), t.AsX()
	VEXTRACTF128(U8(1), y.AsY(), tx)
	VADDPS(tx, x, x)
	VHADDPS(x, x, x)
	VHADDPS(x, x, x)
}

// gemvAVX2 generates y[r] = Σ_j w[r*in+j]·x[j] for r < rows with AVX2+FMA:
// four rows per pass, two vectors of 8 columns per step (eight independent
// FMA chains), the in%8 column tail one scalar FMA at a time.
func gemvAVX2() {
	name := "gemvAVX2"
	TEXT(name, NOSPLIT, "func(w, x, y []float32, in, rows int)")
	Doc(name + " computes y[r] = Σ_{j<in} w[r*in+j]·x[j] for r < rows with AVX2 and FMA; see gemvGo.")
	rW, rX, rY, rIn, rRows := RSI, RDX, RDI, R9, R8
	rEnd, rEnd2, rOff, rTail := R10, R14, RAX, RBX
	rows := []GPPhysical{RSI, R11, R12, R13}
	Load(Param("w").Base(), rW)
	Load(Param("x").Base(), rX)
	Load(Param("y").Base(), rY)
	Load(Param("in"), RCX)
	Load(Param("rows"), rRows)
	MOVQ(RCX, rIn)
	SHLQ(U8(2), rIn) // row stride in bytes
	MOVQ(RCX, rTail)
	ANDQ(U32(7), rTail) // scalar tail columns
	MOVQ(RCX, rEnd)
	SUBQ(rTail, rEnd)
	SHLQ(U8(2), rEnd) // bytes of whole vectors
	MOVQ(rEnd, rEnd2)
	SUBQ(U32(64), rEnd2)

	body := func(nr int, lbl string) {
		acc := func(r, u int) VecPhysical { return ymm(r + 4*u) }
		for r := 0; r < nr; r++ {
			for u := 0; u < 2; u++ {
				VXORPS(acc(r, u), acc(r, u), acc(r, u))
			}
		}
		for r := 1; r < nr; r++ {
			LEAQ(Mem{Base: rows[r-1], Index: rIn, Scale: 1}, rows[r])
		}
		XORQ(rOff, rOff)
		Label(lbl + "_loop2")
		CMPQ(rOff, rEnd2)
		JG(LabelRef(lbl + "_one"))
		for u := 0; u < 2; u++ {
			VMOVUPS(Mem{Base: rX, Index: rOff, Scale: 1, Disp: 32 * u}, ymm(8+u))
		}
		for u := 0; u < 2; u++ {
			for r := 0; r < nr; r++ {
				VFMADD231PS(Mem{Base: rows[r], Index: rOff, Scale: 1, Disp: 32 * u}, ymm(8+u), acc(r, u))
			}
		}
		ADDQ(U32(64), rOff)
		JMP(LabelRef(lbl + "_loop2"))
		Label(lbl + "_one")
		CMPQ(rOff, rEnd)
		JGE(LabelRef(lbl + "_sum"))
		VMOVUPS(Mem{Base: rX, Index: rOff, Scale: 1}, ymm(8))
		for r := 0; r < nr; r++ {
			VFMADD231PS(Mem{Base: rows[r], Index: rOff, Scale: 1}, ymm(8), acc(r, 0))
		}
		ADDQ(U32(32), rOff)
		Label(lbl + "_sum")
		for r := 0; r < nr; r++ {
			VADDPS(acc(r, 1), acc(r, 0), acc(r, 0))
			hsum8(acc(r, 0), ymm(8))
		}
		MOVQ(rTail, RCX)
		Label(lbl + "_tail")
		TESTQ(RCX, RCX)
		JE(LabelRef(lbl + "_store"))
		VMOVSS(Mem{Base: rX, Index: rOff, Scale: 1}, ymm(8).AsX())
		for r := 0; r < nr; r++ {
			VFMADD231SS(Mem{Base: rows[r], Index: rOff, Scale: 1}, ymm(8).AsX(), acc(r, 0).AsX())
		}
		ADDQ(U32(4), rOff)
		DECQ(RCX)
		JMP(LabelRef(lbl + "_tail"))
		Label(lbl + "_store")
		for r := 0; r < nr; r++ {
			VMOVSS(acc(r, 0).AsX(), Mem{Base: rY, Disp: 4 * r})
		}
		LEAQ(Mem{Base: rows[nr-1], Index: rIn, Scale: 1}, rW)
		ADDQ(U32(4*nr), rY)
		SUBQ(U32(nr), rRows)
	}
	Label(name + "_rows4")
	CMPQ(rRows, U32(4))
	JL(LabelRef(name + "_rows1"))
	body(4, name+"_r4")
	JMP(LabelRef(name + "_rows4"))
	Label(name + "_rows1")
	TESTQ(rRows, rRows)
	JE(LabelRef(name + "_done"))
	body(1, name+"_r1")
	JMP(LabelRef(name + "_rows1"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// rowSumAVX2 generates out[i] = scale·Σ_{j<hw} x[i*hw+j] for i < c with
// AVX2: two vector accumulators per row, the hw%8 tail added one by one.
func rowSumAVX2() {
	name := "rowSumAVX2"
	TEXT(name, NOSPLIT, "func(x, out []float32, c, hw int, scale float32)")
	Doc(name + " computes out[i] = scale·Σ_{j<hw} x[i*hw+j] for i < c with AVX2; see rowSumGo.")
	rX, rOut, rC, rHw, rEnd, rOff, rTail := RSI, RDI, R8, R9, R10, RAX, RBX
	Load(Param("x").Base(), rX)
	Load(Param("out").Base(), rOut)
	Load(Param("c"), rC)
	Load(Param("hw"), RCX)
	VMOVSS(scalarArg("scale"), X3) // VEX: no SSE/AVX transition
	MOVQ(RCX, rHw)
	SHLQ(U8(2), rHw)
	MOVQ(RCX, rTail)
	ANDQ(U32(7), rTail)
	MOVQ(RCX, rEnd)
	SUBQ(rTail, rEnd)
	SHLQ(U8(2), rEnd) // bytes of whole vectors
	TESTQ(rC, rC)
	JE(LabelRef(name + "_done"))
	Label(name + "_row")
	VXORPS(Y0, Y0, Y0)
	VXORPS(Y1, Y1, Y1)
	XORQ(rOff, rOff)
	Label(name + "_loop")
	CMPQ(rOff, rEnd)
	JGE(LabelRef(name + "_sum"))
	VADDPS(Mem{Base: rX, Index: rOff, Scale: 1}, Y0, Y0)
	ADDQ(U32(32), rOff)
	CMPQ(rOff, rEnd)
	JGE(LabelRef(name + "_sum"))
	VADDPS(Mem{Base: rX, Index: rOff, Scale: 1}, Y1, Y1)
	ADDQ(U32(32), rOff)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_sum")
	VADDPS(Y1, Y0, Y0)
	hsum8(Y0, Y2)
	MOVQ(rTail, RCX)
	Label(name + "_tail")
	TESTQ(RCX, RCX)
	JE(LabelRef(name + "_store"))
	VADDSS(Mem{Base: rX, Index: rOff, Scale: 1}, X0, X0)
	ADDQ(U32(4), rOff)
	DECQ(RCX)
	JMP(LabelRef(name + "_tail"))
	Label(name + "_store")
	VMULSS(X3, X0, X0)
	VMOVSS(X0, Mem{Base: rOut})
	ADDQ(U32(4), rOut)
	ADDQ(rHw, rX)
	DECQ(rC)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// scaleReLUAVX2 generates x[i*hw+j] = max(x[i*hw+j]·g[i], 0) for i < c,
// j < hw with AVX2, the hw%8 tail one value at a time.
func scaleReLUAVX2() {
	name := "scaleReLUAVX2"
	TEXT(name, NOSPLIT, "func(x, g []float32, c, hw int)")
	Doc(name + " computes x[i*hw+j] = max(x[i*hw+j]·g[i], 0) for i < c, j < hw with AVX2; see scaleReLUGo.")
	rX, rG, rC, rHw, rEnd, rOff, rTail := RSI, RDI, R8, R9, R10, RAX, RBX
	Load(Param("x").Base(), rX)
	Load(Param("g").Base(), rG)
	Load(Param("c"), rC)
	Load(Param("hw"), RCX)
	MOVQ(RCX, rHw)
	SHLQ(U8(2), rHw)
	MOVQ(RCX, rTail)
	ANDQ(U32(7), rTail)
	MOVQ(RCX, rEnd)
	SUBQ(rTail, rEnd)
	SHLQ(U8(2), rEnd)
	VXORPS(Y0, Y0, Y0)
	TESTQ(rC, rC)
	JE(LabelRef(name + "_done"))
	Label(name + "_row")
	VBROADCASTSS(Mem{Base: rG}, Y1)
	XORQ(rOff, rOff)
	Label(name + "_loop")
	CMPQ(rOff, rEnd)
	JGE(LabelRef(name + "_tailstart"))
	VMULPS(Mem{Base: rX, Index: rOff, Scale: 1}, Y1, Y2)
	VMAXPS(Y0, Y2, Y2)
	VMOVUPS(Y2, Mem{Base: rX, Index: rOff, Scale: 1})
	ADDQ(U32(32), rOff)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_tailstart")
	MOVQ(rTail, RCX)
	Label(name + "_tail")
	TESTQ(RCX, RCX)
	JE(LabelRef(name + "_next"))
	VMOVSS(Mem{Base: rX, Index: rOff, Scale: 1}, X2)
	VMULSS(X1, X2, X2)
	VMAXSS(X0, X2, X2)
	VMOVSS(X2, Mem{Base: rX, Index: rOff, Scale: 1})
	ADDQ(U32(4), rOff)
	DECQ(RCX)
	JMP(LabelRef(name + "_tail"))
	Label(name + "_next")
	ADDQ(U32(4), rG)
	ADDQ(rHw, rX)
	DECQ(rC)
	JNZ(LabelRef(name + "_row"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// blockSum generates out[j] = Σ_{p<n} x[p*16+j] for j < 16: the per-channel
// sums of one block of the blocked layout. AVX-512 keeps four ZMM
// accumulators (four pixels per step); AVX2 two pairs of YMM.
func blockSum(avx512 bool) {
	name := "blockSumAVX2"
	if avx512 {
		name = "blockSumAVX512"
	}
	TEXT(name, NOSPLIT, "func(x []float32, n int, out []float32)")
	Doc(name + " computes out[j] = Σ_{p<n} x[p*16+j] for j < 16; see blockSumGo.")
	rX, rN, rOut := RSI, RCX, RDI
	Load(Param("x").Base(), rX)
	Load(Param("n"), rN)
	Load(Param("out").Base(), rOut)
	vec := ymm
	if avx512 {
		vec = zmm
	}
	// acc(u, h): pixel slot u of the step, half h (AVX2 only).
	halves := 2
	if avx512 {
		halves = 1
	}
	acc := func(u, h int) VecPhysical { return vec(u*halves + h) }
	for u := 0; u < 4; u++ {
		for h := 0; h < halves; h++ {
			VXORPS(acc(u, h), acc(u, h), acc(u, h))
		}
	}
	Label(name + "_loop4")
	CMPQ(rN, U32(4))
	JL(LabelRef(name + "_loop1"))
	for u := 0; u < 4; u++ {
		for h := 0; h < halves; h++ {
			VADDPS(Mem{Base: rX, Disp: 64*u + 32*h}, acc(u, h), acc(u, h))
		}
	}
	ADDQ(U32(256), rX)
	SUBQ(U32(4), rN)
	JMP(LabelRef(name + "_loop4"))
	Label(name + "_loop1")
	TESTQ(rN, rN)
	JE(LabelRef(name + "_sum"))
	for h := 0; h < halves; h++ {
		VADDPS(Mem{Base: rX, Disp: 32 * h}, acc(0, h), acc(0, h))
	}
	ADDQ(U32(64), rX)
	DECQ(rN)
	JMP(LabelRef(name + "_loop1"))
	Label(name + "_sum")
	for h := 0; h < halves; h++ {
		VADDPS(acc(1, h), acc(0, h), acc(0, h))
		VADDPS(acc(3, h), acc(2, h), acc(2, h))
		VADDPS(acc(2, h), acc(0, h), acc(0, h))
		VMOVUPS(acc(0, h), Mem{Base: rOut, Disp: 32 * h})
	}
	VZEROUPPER()
	RET()
}

// blockScaleReLU generates x[p*16+j] = max(x[p*16+j]·g[j], 0) for p < n,
// j < 16: the squeeze-excitation gate on one block of the blocked layout.
func blockScaleReLU(avx512 bool) {
	name := "blockScaleReLUAVX2"
	if avx512 {
		name = "blockScaleReLUAVX512"
	}
	TEXT(name, NOSPLIT, "func(x, g []float32, n int)")
	Doc(name + " computes x[p*16+j] = max(x[p*16+j]·g[j], 0) for p < n, j < 16; see blockScaleReLUGo.")
	rX, rG, rN := RSI, RDX, RCX
	Load(Param("x").Base(), rX)
	Load(Param("g").Base(), rG)
	Load(Param("n"), rN)
	vec := ymm
	halves := 2
	if avx512 {
		vec, halves = zmm, 1
	}
	zero := vec(0)
	VXORPS(zero, zero, zero)
	for h := 0; h < halves; h++ {
		VMOVUPS(Mem{Base: rG, Disp: 32 * h}, vec(1+h))
	}
	Label(name + "_loop")
	TESTQ(rN, rN)
	JE(LabelRef(name + "_done"))
	for h := 0; h < halves; h++ {
		t := vec(4 + h)
		VMULPS(Mem{Base: rX, Disp: 32 * h}, vec(1+h), t)
		VMAXPS(zero, t, t)
		VMOVUPS(t, Mem{Base: rX, Disp: 32 * h})
	}
	ADDQ(U32(64), rX)
	DECQ(rN)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// prefetchLines generates a PREFETCHT0 of each of the first n 64-byte lines
// of b (a hint: it never faults and changes no data).
func prefetchLines() {
	prefetchLoop("prefetchLines", "L1", PREFETCHT0)
}

// prefetchLinesL2 is prefetchLines with PREFETCHT1 (into L2, not L1).
func prefetchLinesL2() {
	prefetchLoop("prefetchLinesL2", "L2", PREFETCHT1)
}

// prefetchLoop generates name(b []float32, n int): op on each of the first
// n 64-byte lines of b.
func prefetchLoop(name, level string, op func(Op)) {
	TEXT(name, NOSPLIT, "func(b []float32, n int)")
	Doc(name + " hints the processor to load the first n 64-byte lines of b into " + level + ".")
	rB, rN := RSI, RCX
	Load(Param("b").Base(), rB)
	Load(Param("n"), rN)
	Label(name + "_loop")
	TESTQ(rN, rN)
	JLE(LabelRef(name + "_done"))
	op(Mem{Base: rB})
	ADDQ(U32(64), rB)
	DECQ(rN)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	RET()
}

// scalarArg is the memory operand of float32 argument name, for VEX
// moves: avo's Load picks the legacy-SSE MOVSS, which costs a state
// transition on some Intel cores when the vector registers' upper halves
// are dirty.
func scalarArg(name string) Mem {
	b, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}
