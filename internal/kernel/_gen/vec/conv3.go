package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The 3×3, stride-1, pad-1 convolution of a plane laid out as h rows of
// width pixels of s contiguous values (the trainer's (C, H, W, N) planes:
// s = N images), and its weight gradient. Tap (r, c) of output element i
// of row y reads element i + (c−1)·s of input row y−1+r. All nine taps of
// an output vector are summed in registers.
//
// The kernels walk rows [y0, y1) of the plane. A row outside the plane
// (above row 0, below row h−1) is read from zrow, a zero row the caller
// provides; the columns outside the row are left out by walking each row
// in segments: the left pixel (columns 1, 2), the inner pixels (all three),
// the right pixel (columns 0, 1), or, when width = 1, the one pixel
// (column 1).

// conv3Seg is the work of one segment of a row: the three input row
// pointers, the row pointer of the output (or of the gradient), the
// element indices of the three columns (idx[c] = i + (c−1)·s, nil for a
// column the segment leaves out), the end e of the segment, and the
// columns it uses.
type conv3Seg func(rows [3]GPVirtual, out GPVirtual, idx [3]GPVirtual, e GPVirtual, cols []int)

// conv3Rows emits the row loop: for every row, the row pointers, then the
// segments through seg, then endRow (may be nil).
func (g *gen) conv3Rows(xName, outName string, seg conv3Seg, endRow func()) {
	L := GP64() // values per row
	Load(Param("width"), L)
	sv := GP64()
	Load(Param("s"), sv)
	IMULQ(sv, L)
	y := GP64()
	Load(Param("y0"), y)
	rowLoop, done := g.label("row"), g.label("rowsdone")
	Label(rowLoop)
	y1 := GP64()
	Load(Param("y1"), y1)
	CMPQ(y, y1)
	JGE(LabelRef(done))

	off := GP64() // byte offset of row y
	MOVQ(y, off)
	IMULQ(L, off)
	SHLQ(U8(2), off)
	p1, out := ptr(xName), ptr(outName)
	ADDQ(off, p1)
	ADDQ(off, out)
	lb := GP64()
	MOVQ(L, lb)
	SHLQ(U8(2), lb)
	z := ptr("zrow")
	p0 := GP64()
	MOVQ(p1, p0)
	SUBQ(lb, p0)
	TESTQ(y, y)
	CMOVQEQ(z, p0)
	p2 := GP64()
	MOVQ(p1, p2)
	ADDQ(lb, p2)
	last := GP64()
	Load(Param("h"), last)
	DECQ(last)
	CMPQ(y, last)
	CMOVQEQ(z, p2)
	rows := [3]GPVirtual{p0, p1, p2}

	multi, next := g.label("multi"), g.label("rownext")
	w := GP64()
	Load(Param("width"), w)
	CMPQ(w, U8(1))
	JNE(LabelRef(multi))
	{
		Comment("One pixel per row: the centre column.")
		i, e := GP64(), GP64()
		XORQ(i, i)
		Load(Param("s"), e)
		seg(rows, out, [3]GPVirtual{nil, i, nil}, e, []int{1})
		JMP(LabelRef(next))
	}
	Label(multi)
	{
		Comment("The left pixel: no left column.")
		i, i2, e := GP64(), GP64(), GP64()
		XORQ(i, i)
		Load(Param("s"), e)
		MOVQ(e, i2)
		seg(rows, out, [3]GPVirtual{nil, i, i2}, e, []int{1, 2})
	}
	{
		Comment("The inner pixels.")
		i, i0, i2, e := GP64(), GP64(), GP64(), GP64()
		Load(Param("s"), i)
		XORQ(i0, i0)
		LEAQ(Mem{Base: i, Index: i, Scale: 1}, i2)
		MOVQ(L, e)
		SUBQ(i, e)
		seg(rows, out, [3]GPVirtual{i0, i, i2}, e, []int{0, 1, 2})
	}
	{
		Comment("The right pixel: no right column.")
		i, i0, e := GP64(), GP64(), GP64()
		sv := GP64()
		Load(Param("s"), sv)
		MOVQ(L, i)
		SUBQ(sv, i)
		MOVQ(i, i0)
		SUBQ(sv, i0)
		MOVQ(L, e)
		seg(rows, out, [3]GPVirtual{i0, i, nil}, e, []int{0, 1})
	}
	Label(next)
	if endRow != nil {
		endRow()
	}
	INCQ(y)
	JMP(LabelRef(rowLoop))
	Label(done)
}

// also returns the column indices other than the centre's (which walk
// advances itself).
func also(idx [3]GPVirtual) []GPVirtual {
	var a []GPVirtual
	for _, c := range []int{0, 2} {
		if idx[c] != nil {
			a = append(a, idx[c])
		}
	}
	return a
}

func (g *gen) conv3Kernels() {
	vb := g.vb()

	// Conv3, Conv3Add: out = or += Σ w[3r+c]·x[row y−1+r][i+(c−1)s].
	for _, add := range []bool{false, true} {
		name, doc := "Conv3", "sets"
		if add {
			name, doc = "Conv3Add", "adds to"
		}
		g.begin(name, "func(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int)",
			doc+" rows [y0, y1) of out the 3×3 convolution of x (h rows of width pixels of s values; zero padding)")
		var wv [9]VecVirtual
		for t := range wv {
			wv[t] = g.bcastComp(Param("w").Index(t))
		}
		g.conv3Rows("x", "out", func(rows [3]GPVirtual, out GPVirtual, idx [3]GPVirtual, e GPVirtual, cols []int) {
			g.walk(idx[1], e, 4, func(i GPVirtual, u int, masked bool) {
				var acc []VecVirtual // one per column: short FMA chains
				for _, c := range cols {
					a := g.vec()
					for r := range rows {
						m := Mem{Base: rows[r], Index: idx[c], Scale: 4, Disp: u * vb}
						if r == 0 {
							VMULPS(g.src(m, masked), wv[c], a)
						} else {
							VFMADD231PS(g.src(m, masked), wv[3*r+c], a)
						}
					}
					acc = append(acc, a)
				}
				if add {
					VADDPS(g.src(at(out, i, u*vb), masked), acc[0], acc[0])
				}
				for _, a := range acc[1:] {
					VADDPS(a, acc[0], acc[0])
				}
				g.store(acc[0], at(out, i, u*vb), masked)
			}, also(idx)...)
		}, nil)
		g.end()
	}

	// Corr3: g[3r+c] = Σ d[row y][i]·x[row y−1+r][i+(c−1)s].
	g.begin("Corr3", "func(d, x, zrow []float32, y0, y1, h, width, s int) (g0, g1, g2, g3, g4, g5, g6, g7, g8 float32)",
		"returns g[3r+c] = Σ d[y][i]·x[y−1+r][i+(c−1)s] over rows [y0, y1) of d (h rows of width pixels of s values; zero padding), summed in float32 row by row")
	{
		tot := AllocLocal(9 * vb) // float32 lane sums of the finished rows
		z := g.zero()
		for t := range 9 {
			VMOVUPS(z, tot.Offset(t*vb))
		}
		var acc [9]VecVirtual
		for t := range acc {
			acc[t] = g.zero()
		}
		g.conv3Rows("x", "d", func(rows [3]GPVirtual, d GPVirtual, idx [3]GPVirtual, e GPVirtual, cols []int) {
			g.walk(idx[1], e, 1, func(i GPVirtual, u int, masked bool) {
				v := g.load(at(d, i, u*vb), masked)
				for r := range rows {
					for _, c := range cols {
						m := Mem{Base: rows[r], Index: idx[c], Scale: 4, Disp: u * vb}
						VFMADD231PS(g.src(m, masked), v, acc[3*r+c])
					}
				}
			}, also(idx)...)
		}, func() {
			Comment("Add the row's sums to the totals.")
			for t, a := range acc {
				VADDPS(tot.Offset(t*vb), a, a)
				VMOVUPS(a, tot.Offset(t*vb))
				VXORPS(a, a, a)
			}
		})
		for t := range acc {
			v := g.vec()
			VMOVUPS(tot.Offset(t*vb), v)
			VMOVSS(g.hsum(v), resolve(ReturnIndex(t)))
		}
		g.end()
	}
}
