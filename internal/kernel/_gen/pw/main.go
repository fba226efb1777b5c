// Command pw generates the pointwise (1×1) convolution kernels of package
// kernel on channel-blocked activations (NCHW16c, see blocked.go):
// internal/kernel/pointwise_amd64.s and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./pw -out ../pointwise_amd64.s -stubs ../pointwise_stub_amd64.go
//
// Every kernel has the signature
//
//	func(x, w, out, bias []float32, kb, xstride, ostride int, flags uint)
//
// and computes one tile of R pixels × NB output blocks of 16 channels (R and
// NB fixed per kernel, in the name: pwAVX512x6x4 is R = 6, NB = 4) over kb
// input blocks; pwTileGo in pointwise.go spells out the same loop:
//
//	out[v*ostride + p*16 + l] (op)= Σ_{k<kb, j<16} x[k*xstride + p*16 + j] · w[((k*16+j)*NB + v)*16 + l]
//
// then flags&1 adds the old out, flags&2 adds bias[v*16+l] and flags&4
// applies ReLU (NaN propagates). Pixels are the rows of a GEMM and output
// channels its columns: per input channel the kernel loads NB weight vectors
// (AVX2: two YMM per block) from the packed panel, broadcasts the channel of
// each of the R pixels (VBROADCASTSS at a constant displacement inside the
// current input block) and issues R·NB FMAs into R·NB accumulators. The 16
// channels of an input block are fully unrolled; x then advances by xstride
// to the next input block. Kernels with few accumulators (too few to hide
// the FMA latency) use two accumulator sets, for even and odd channels,
// summed at the end. Only the R·16 floats of each of the kb input blocks and
// the R pixels × NB blocks of out are touched: pixel tails use the kernels of
// smaller R, never a read past the tile.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const sig = "func(x, w, out, bias []float32, kb, xstride, ostride int, flags uint)"

// Flag bits, shared with pointwise.go.
const (
	flagAcc  = 1
	flagBias = 2
	flagReLU = 4
)

// Fixed general-purpose register roles.
var (
	rX     = RSI // current input block at the tile's first pixel
	rW     = RDX // weight panel
	rOut   = RDI // output block 0 at the tile's first pixel
	rBias  = R8
	rK     = RCX // input blocks left
	rXs    = R9  // xstride in bytes
	rOs    = R10 // ostride in bytes
	rFlags = R11
	rOuts  = []GPPhysical{RDI, RAX, RBX, R12} // output block v
)

var zregs = []VecPhysical{
	Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
}

var yregs = []VecPhysical{
	Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15,
}

// kernel generates the R×NB kernel of one instruction set and returns its
// name.
func kernel(avx512 bool, R, NB int) string {
	isa, regs, vpb := "AVX2", yregs, 2 // vectors per 16-channel block
	if avx512 {
		isa, regs, vpb = "AVX512", zregs, 1
	}
	vb := 64 / vpb // bytes per vector
	name := fmt.Sprintf("pw%sx%dx%d", isa, R, NB)
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes a %d-pixel × %d-block pointwise tile with %s; see pwTileGo.", name, R, NB, isa))

	nacc := R * NB * vpb
	nw := NB * vpb
	sets := 1
	if nacc < 10 && 2*nacc+nw+1 <= len(regs) {
		sets = 2
	}
	if sets*nacc+nw+1 > len(regs) {
		panic("too many registers")
	}
	acc := func(s, p, v, h int) VecPhysical { return regs[s*nacc+(p*NB+v)*vpb+h] }
	wreg := func(v, h int) VecPhysical { return regs[sets*nacc+v*vpb+h] }
	bc := regs[sets*nacc+nw:]
	if len(bc) > 4 {
		bc = bc[:4]
	}

	Load(Param("x").Base(), rX)
	Load(Param("w").Base(), rW)
	Load(Param("out").Base(), rOut)
	Load(Param("bias").Base(), rBias)
	Load(Param("kb"), rK)
	Load(Param("xstride"), rXs)
	SHLQ(U8(2), rXs)
	Load(Param("ostride"), rOs)
	SHLQ(U8(2), rOs)
	Load(Param("flags"), rFlags)

	for s := 0; s < sets; s++ {
		for p := 0; p < R; p++ {
			for v := 0; v < NB; v++ {
				for h := 0; h < vpb; h++ {
					a := acc(s, p, v, h)
					VXORPS(a, a, a)
				}
			}
		}
	}
	TESTQ(rK, rK)
	JLE(LabelRef(name + "_epilogue"))

	Comment("One input block (16 channels) per iteration.")
	Label(name + "_loop")
	for j := 0; j < 16; j++ {
		s := j % sets
		for v := 0; v < NB; v++ {
			for h := 0; h < vpb; h++ {
				VMOVUPS(Mem{Base: rW, Disp: ((j*NB+v)*vpb + h) * vb}, wreg(v, h))
			}
		}
		for p := 0; p < R; p++ {
			b := bc[(j*R+p)%len(bc)]
			VBROADCASTSS(Mem{Base: rX, Disp: p*64 + j*4}, b)
			for v := 0; v < NB; v++ {
				for h := 0; h < vpb; h++ {
					VFMADD231PS(wreg(v, h), b, acc(s, p, v, h))
				}
			}
		}
	}
	ADDQ(U32(16*NB*64), rW)
	ADDQ(rXs, rX)
	DECQ(rK)
	JNZ(LabelRef(name + "_loop"))

	Label(name + "_epilogue")
	if sets == 2 {
		for p := 0; p < R; p++ {
			for v := 0; v < NB; v++ {
				for h := 0; h < vpb; h++ {
					VADDPS(acc(1, p, v, h), acc(0, p, v, h), acc(0, p, v, h))
				}
			}
		}
	}
	for v := 1; v < NB; v++ {
		if v == 1 {
			LEAQ(Mem{Base: rOut, Index: rOs, Scale: 1}, rOuts[1])
		} else {
			LEAQ(Mem{Base: rOuts[v-2], Index: rOs, Scale: 2}, rOuts[v])
		}
	}
	outAt := func(p, v, h int) Mem { return Mem{Base: rOuts[v], Disp: p*64 + h*vb} }

	TESTQ(U32(flagAcc), rFlags)
	JZ(LabelRef(name + "_noacc"))
	for p := 0; p < R; p++ {
		for v := 0; v < NB; v++ {
			for h := 0; h < vpb; h++ {
				VADDPS(outAt(p, v, h), acc(0, p, v, h), acc(0, p, v, h))
			}
		}
	}
	Label(name + "_noacc")
	TESTQ(U32(flagBias), rFlags)
	JZ(LabelRef(name + "_nobias"))
	for v := 0; v < NB; v++ {
		for h := 0; h < vpb; h++ {
			VMOVUPS(Mem{Base: rBias, Disp: v*64 + h*vb}, wreg(v, h))
			for p := 0; p < R; p++ {
				VADDPS(wreg(v, h), acc(0, p, v, h), acc(0, p, v, h))
			}
		}
	}
	Label(name + "_nobias")
	TESTQ(U32(flagReLU), rFlags)
	JZ(LabelRef(name + "_norelu"))
	zero := bc[0]
	VXORPS(zero, zero, zero)
	for p := 0; p < R; p++ {
		for v := 0; v < NB; v++ {
			for h := 0; h < vpb; h++ {
				// max(acc, 0) with acc as the second source: NaN propagates.
				VMAXPS(acc(0, p, v, h), zero, acc(0, p, v, h))
			}
		}
	}
	Label(name + "_norelu")
	for p := 0; p < R; p++ {
		for v := 0; v < NB; v++ {
			for h := 0; h < vpb; h++ {
				VMOVUPS(acc(0, p, v, h), outAt(p, v, h))
			}
		}
	}
	VZEROUPPER()
	RET()
	return name
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	for nb := 1; nb <= 4; nb++ {
		for r := 1; r <= 6; r++ {
			kernel(true, r, nb)
		}
	}
	for r := 1; r <= 6; r++ {
		kernel(false, r, 1)
	}
	Generate()
}
