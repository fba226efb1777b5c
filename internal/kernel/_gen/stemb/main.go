// Command stemb generates the blocked-output stem kernels of package kernel
// (a dense 3×3 convolution, pad 1, stride 1 or 2, from an NCHW image to the
// NCHW16c layout): internal/kernel/stemblocked_amd64.s and its Go stubs.
//
//	cd internal/kernel/_gen && go run ./stemb -out ../stemblocked_amd64.s -stubs ../stemblocked_stub_amd64.go
//
// Every kernel has the signature
//
//	func(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, n, edges int, relu bool)
//
// and computes n output pixels of one output row for nb blocks of 16 output
// channels (see stembGo in package kernel for the exact loop): output
// channels are in the vector lanes, so for each tap (ci, ky, kx) a tile of R
// pixels × nb blocks takes R broadcasts of input values (constant
// displacements 4·(stride·p + kx) from the row pointer, the kernel rows at
// +ldx and +2·ldx through an index register), nb·V weight vector loads and
// R·nb·V FMAs (V = 1 for ZMM, 2 for YMM). The weights are packed per call
// as w[((ci*9+ky*3+kx)*nb+blk)*16+j], so every load has a constant
// displacement from a pointer advanced once per input channel. Bias is the
// accumulators' start value; ReLU is a max with zero before the stores.
// Pixel tails run tiles of the powers of two below R, each at most once;
// tiles with fewer than 16 accumulators keep two sets (even and odd taps) to
// hide the FMA latency. The input is read without bounds checks: every tap
// not skipped (below) must be inside xp.
//
// edges&1 marks the first pixel as the left image edge and edges&2 the last
// as the right edge: their out-of-image taps (kx = 0, kx = 2) are skipped,
// so interior image rows are read in place with no padded copy. The left
// edge is a variant of the first full tile (n ≥ R+1 required), the right
// edge a final one-pixel tile.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const sig = "func(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, n, edges int, relu bool)"

// variant is one kernel: instruction set, stride, blocks and pixel tile.
type variant struct {
	isa    string // "AVX512" or "AVX2"
	lanes  int    // 16 (ZMM) or 8 (YMM)
	regs   int    // vector registers
	stride int
	nb     int // blocks of 16 output channels
	r      int // pixels per full tile
}

// General-purpose register roles.
var (
	rXp   = RSI // input at the current tile's first pixel, channel 0, kernel row 0
	rRow  = RAX // input walking over the channels
	rLdx  = R11 // ldx in bytes
	rCh   = R10 // chStride in bytes
	rWp   = RCX // weights walking over the channels
	rCi   = RBX // channels left
	rO    = RDI // output at the current tile's first pixel, block 0
	rLdo  = R8  // ldo in bytes
	rLdo3 = R9  // 3·ldo in bytes
	rN    = R12 // pixels left
	rTmp  = RDX
)

var zmms = []VecPhysical{
	Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
}

var ymms = []VecPhysical{
	Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15,
}

func (v *variant) name() string {
	return fmt.Sprintf("stembS%dN%d%s", v.stride, v.nb, v.isa)
}

func (v *variant) vec(i int) VecPhysical {
	if v.lanes == 16 {
		return zmms[i]
	}
	return ymms[i]
}

// tails returns the tile sizes run after the full tiles: the powers of two
// below r, largest first.
func (v *variant) tails() []int {
	var ts []int
	p := 1
	for p*2 < v.r {
		p *= 2
	}
	for ; p >= 1; p /= 2 {
		if p < v.r {
			ts = append(ts, p)
		}
	}
	return ts
}

func (v *variant) generate() {
	name := v.name()
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes n output pixels × %d blocks of a 3×3 stride-%d convolution to the blocked layout with %s; see stembGo.",
		name, v.nb, v.stride, v.isa))
	Load(Param("xp").Base(), rXp)
	Load(Param("out").Base(), rO)
	Load(Param("chStride"), rCh)
	SHLQ(U8(2), rCh)
	Load(Param("ldx"), rLdx)
	SHLQ(U8(2), rLdx)
	Load(Param("ldo"), rLdo)
	SHLQ(U8(2), rLdo)
	LEAQ(Mem{Base: rLdo, Index: rLdo, Scale: 2}, rLdo3)
	Load(Param("n"), rN)

	// Left edge: a first full tile without the taps kx = 0 of its first
	// pixel (the caller guarantees n ≥ R+1).
	Load(Param("edges"), rTmp)
	TESTQ(U32(1), rTmp)
	JE(LabelRef(name + "_noleft"))
	v.tile(v.r, name+"_left", true, false)
	SUBQ(U32(v.r), rN)
	Label(name + "_noleft")
	// Right edge: the last pixel runs alone, without its taps kx = 2.
	Load(Param("edges"), rTmp)
	TESTQ(U32(2), rTmp)
	JE(LabelRef(name + "_full"))
	DECQ(rN)
	Label(name + "_full")
	CMPQ(rN, U32(v.r))
	JL(LabelRef(name + "_tails"))
	v.tile(v.r, name+"_r", false, false)
	SUBQ(U32(v.r), rN)
	JMP(LabelRef(name + "_full"))
	Label(name + "_tails")
	for _, t := range v.tails() {
		lbl := fmt.Sprintf("%s_t%d", name, t)
		CMPQ(rN, U32(t))
		JL(LabelRef(lbl + "_skip"))
		v.tile(t, lbl, false, false)
		SUBQ(U32(t), rN)
		Label(lbl + "_skip")
	}
	Load(Param("edges"), rTmp)
	TESTQ(U32(2), rTmp)
	JE(LabelRef(name + "_done"))
	v.tile(1, name+"_right", false, true)
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// tile generates one tile of r pixels: accumulate, epilogue, advance rXp and
// rO. skipFirst leaves out the taps kx = 0 of the first pixel (left image
// edge), skipLast the taps kx = 2 of the last (right edge): they are
// neither read nor multiplied.
func (v *variant) tile(r int, lbl string, skipFirst, skipLast bool) {
	nv := 16 / v.lanes // vectors per block
	nw := v.nb * nv    // weight vectors per tap
	na := r * nw       // accumulators of one set
	// Narrow tiles (tails, the right edge) have too few accumulators to
	// cover the FMA latency: they use two sets, for even and odd taps,
	// summed before the epilogue.
	sets := 1
	if 2*na+nw+1 <= v.regs && na < 16 {
		sets = 2
	}
	nbc := v.regs - sets*na - nw // broadcast registers
	if nbc < 1 {
		panic(fmt.Sprintf("%s: tile %d does not fit", v.name(), r))
	}
	accS := func(set, p, b, u int) VecPhysical { return v.vec(set*na + (p*v.nb+b)*nv + u) }
	acc := func(p, b, u int) VecPhysical { return accS(0, p, b, u) }
	wr := func(b, u int) VecPhysical { return v.vec(sets*na + b*nv + u) }
	bc := func(i int) VecPhysical { return v.vec(sets*na + nw + i%nbc) }
	vb := 4 * v.lanes // bytes per vector
	skip := func(p, kx int) bool {
		return (skipFirst && p == 0 && kx == 0) || (skipLast && p == r-1 && kx == 2)
	}

	// Bias into the weight registers, then into every accumulator of the
	// first set; the second starts at zero.
	Load(Param("b").Base(), rTmp)
	for b := 0; b < v.nb; b++ {
		for u := 0; u < nv; u++ {
			VMOVUPS(Mem{Base: rTmp, Disp: 64*b + vb*u}, wr(b, u))
		}
	}
	for p := 0; p < r; p++ {
		for b := 0; b < v.nb; b++ {
			for u := 0; u < nv; u++ {
				VMOVAPS(wr(b, u), acc(p, b, u))
				if sets == 2 {
					a := accS(1, p, b, u)
					VXORPS(a, a, a)
				}
			}
		}
	}
	MOVQ(rXp, rRow)
	Load(Param("w").Base(), rWp)
	Load(Param("cin"), rCi)
	Label(lbl + "_ci")
	n := 0
	for ky := 0; ky < 3; ky++ {
		for kx := 0; kx < 3; kx++ {
			tap := ky*3 + kx
			used := false
			for p := 0; p < r; p++ {
				used = used || !skip(p, kx)
			}
			if !used {
				continue
			}
			for b := 0; b < v.nb; b++ {
				for u := 0; u < nv; u++ {
					VMOVUPS(Mem{Base: rWp, Disp: (tap*v.nb+b)*64 + vb*u}, wr(b, u))
				}
			}
			for p := 0; p < r; p++ {
				if skip(p, kx) {
					continue
				}
				m := Mem{Base: rRow, Disp: 4 * (v.stride*p + kx)}
				if ky > 0 {
					m.Index, m.Scale = rLdx, uint8(ky)
				}
				t := bc(n)
				n++
				VBROADCASTSS(m, t)
				for b := 0; b < v.nb; b++ {
					for u := 0; u < nv; u++ {
						VFMADD231PS(wr(b, u), t, accS(tap%sets, p, b, u))
					}
				}
			}
		}
	}
	ADDQ(rCh, rRow)
	ADDQ(U32(9*v.nb*64), rWp)
	DECQ(rCi)
	JNZ(LabelRef(lbl + "_ci"))
	if sets == 2 {
		for p := 0; p < r; p++ {
			for b := 0; b < v.nb; b++ {
				for u := 0; u < nv; u++ {
					VADDPS(accS(1, p, b, u), acc(p, b, u), acc(p, b, u))
				}
			}
		}
	}

	// ReLU: max with zero (in the first weight register).
	Load(Param("relu"), rTmp)
	TESTB(DL, DL)
	JE(LabelRef(lbl + "_store"))
	z := wr(0, 0)
	VXORPS(z, z, z)
	for p := 0; p < r; p++ {
		for b := 0; b < v.nb; b++ {
			for u := 0; u < nv; u++ {
				VMAXPS(z, acc(p, b, u), acc(p, b, u))
			}
		}
	}
	Label(lbl + "_store")
	for p := 0; p < r; p++ {
		for b := 0; b < v.nb; b++ {
			for u := 0; u < nv; u++ {
				m := Mem{Base: rO, Disp: 64*p + vb*u}
				switch b {
				case 1:
					m.Index, m.Scale = rLdo, 1
				case 2:
					m.Index, m.Scale = rLdo, 2
				case 3:
					m.Index, m.Scale = rLdo3, 1
				}
				VMOVUPS(acc(p, b, u), m)
			}
		}
	}
	ADDQ(U32(64*r), rO)
	ADDQ(U32(4*v.stride*r), rXp)
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")
	for _, s := range []int{1, 2} {
		// AVX-512: 32 ZMM, about 24 accumulators per tile.
		for _, nr := range [][2]int{{1, 16}, {2, 14}, {3, 8}, {4, 6}} {
			v := &variant{isa: "AVX512", lanes: 16, regs: 32, stride: s, nb: nr[0], r: nr[1]}
			v.generate()
		}
		// AVX2: 16 YMM, one block (two YMM) × 6 pixels.
		v := &variant{isa: "AVX2", lanes: 8, regs: 16, stride: s, nb: 1, r: 6}
		v.generate()
	}
	Generate()
}
