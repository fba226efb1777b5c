package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// vecLens are the lengths the vector kernels are tested at: empty, tails of
// every size around the vector widths (8, 16) and unroll (32, 64), chunk
// boundaries (1024) and long vectors.
var vecLens = []int{0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1023, 1024, 1025, 4097, 100003}

// vecOffsets are the starting offsets (in elements) of the tested slices
// inside their buffers: every misalignment modulo 16 bytes.
const vecOffsets = 4

// Tolerances, relative to Σ|terms|: float32 and float64 results.
const (
	vecTol32 = 1e-5
	vecTol64 = 1e-6
)

// vecCanaries numbers the canaries of the test arrays: the bit pattern of
// the buffer elements outside an array's window is a NaN with a payload of
// the array's own, so that reading one turns a result into NaN, and writing
// anything over it, even another array's canary (NaN in, NaN out), is seen.
var vecCanaries uint32

func nextVecCanary() uint32 {
	vecCanaries++
	return 0xffc00000 | vecCanaries&0x3fffff
}

// vecExtra is how much longer than needed the non-first slices are passed:
// those elements must not be touched either.
const vecExtra = 3

// vecArr is a test array: n values at off inside a buffer of canaries.
type vecArr struct {
	buf    []float32
	off, n int
	orig   []float32 // the values, as set
	canary uint32    // bits of every element outside the window
}

// newVecArr returns n values drawn by gen (nil: standard normal) at off in
// a canary buffer with room for vecExtra+vecPad more.
func newVecArr(r *rand.Rand, n, off int, gen func(r *rand.Rand, i int) float32) *vecArr {
	const vecPad = 19
	a := &vecArr{buf: make([]float32, off+n+vecExtra+vecPad), off: off, n: n}
	a.setCanary(nextVecCanary())
	for i := range n {
		if gen != nil {
			a.buf[off+i] = gen(r, i)
		} else {
			a.buf[off+i] = float32(r.NormFloat64())
		}
	}
	a.orig = append([]float32(nil), a.s()...)
	return a
}

// setCanary fills the buffer outside the window with bits.
func (a *vecArr) setCanary(bits uint32) *vecArr {
	a.canary = bits
	for i := range a.buf {
		if i < a.off || i >= a.off+a.n {
			a.buf[i] = math.Float32frombits(bits)
		}
	}
	return a
}

// out marks an output: its canaries become a negative number of its own
// (rather than a NaN, which NaN arithmetic could rewrite with itself), one
// that ReLU, scaling, adding or normalizing would change.
func (a *vecArr) out() *vecArr {
	return a.setCanary(math.Float32bits(-1000 - float32(nextVecCanary()&0xffff)))
}

// s is the n-element window (capacity n: nothing past it is reachable).
func (a *vecArr) s() []float32 { return a.buf[a.off : a.off+a.n : a.off+a.n] }

// long is the window plus vecExtra canaries, for the arguments that only
// need to be at least as long as the first.
func (a *vecArr) long() []float32 { return a.buf[a.off : a.off+a.n+vecExtra] }

// checkOutside fails if anything outside the window was written.
func (a *vecArr) checkOutside(t *testing.T, what string) {
	t.Helper()
	for i, v := range a.buf {
		if (i < a.off || i >= a.off+a.n) && math.Float32bits(v) != a.canary {
			t.Fatalf("%s: element %d outside the window [%d, %d) written: %v", what, i-a.off, 0, a.n, v)
		}
	}
}

// checkUnchanged fails if anything in the buffer was written (an input).
func (a *vecArr) checkUnchanged(t *testing.T, what string) {
	t.Helper()
	a.checkOutside(t, what)
	for i, v := range a.s() {
		if math.Float32bits(v) != math.Float32bits(a.orig[i]) {
			t.Fatalf("%s: input element %d changed: %v → %v", what, i, a.orig[i], v)
		}
	}
}

// checkElems compares the window element-wise with want within
// vecTol32·mag (exact where mag is nil), then checks the outside.
func (a *vecArr) checkElems(t *testing.T, what string, want, mag []float64) {
	t.Helper()
	for i, v := range a.s() {
		w := want[i]
		if mag == nil {
			if math.Float32bits(v) != math.Float32bits(float32(w)) && !(math.IsNaN(float64(v)) && math.IsNaN(w)) {
				t.Fatalf("%s: [%d] = %v (%#x), want %v", what, i, v, math.Float32bits(v), float32(w))
			}
			continue
		}
		if d := math.Abs(float64(v) - w); !(d <= vecTol32*mag[i]) {
			t.Fatalf("%s: [%d] = %v, want %v (error %.3g, bound %.3g)", what, i, v, w, d, vecTol32*mag[i])
		}
	}
	a.checkOutside(t, what)
}

// vecCheck compares one reduction result with the reference within
// tol·mag.
func vecCheck(t *testing.T, what string, got, want, mag, tol float64) {
	t.Helper()
	if d := math.Abs(got - want); !(d <= tol*mag) {
		t.Fatalf("%s = %v, want %v (error %.3g = %.3g·Σ|terms|, bound %.3g)", what, got, want, d, d/mag, tol)
	}
}

// vecSpecial mixes exact zeros of both signs and NaNs into normal data
// (for ReLU and its mask).
func vecSpecial(r *rand.Rand, i int) float32 {
	switch i % 11 {
	case 3:
		return 0
	case 5:
		return float32(math.Copysign(0, -1))
	case 7:
		return float32(math.NaN())
	}
	return float32(r.NormFloat64())
}

// vecReLUOut is the output of a ReLU: half zeros, the rest positive, some
// NaN and −0.
func vecReLUOut(r *rand.Rand, i int) float32 {
	v := vecSpecial(r, i)
	if v < 0 {
		return 0
	}
	return v
}

func f64s(s []float32) []float64 {
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = float64(v)
	}
	return d
}

// vecCase checks one exported function (in one variant) at length n and
// offset off, against a float64 reference.
type vecCase struct {
	name string
	run  func(t *testing.T, r *rand.Rand, n, off int)
}

func vecCases() []vecCase {
	cs := []vecCase{
		{"Dot", func(t *testing.T, r *rand.Rand, n, off int) {
			a, b := newVecArr(r, n, off, nil), newVecArr(r, n, 3-off, nil)
			got := Dot(a.s(), b.long())
			got64 := Dot64(a.s(), b.long())
			var want, mag float64
			for i := range n {
				p := float64(a.orig[i]) * float64(b.orig[i])
				want += p
				mag += math.Abs(p)
			}
			vecCheck(t, "Dot", float64(got), want, mag, vecTol32)
			vecCheck(t, "Dot64", got64, want, mag, vecTol64)
			a.checkUnchanged(t, "a")
			b.checkUnchanged(t, "b")
		}},
		{"SumSq", func(t *testing.T, r *rand.Rand, n, off int) {
			shift := float32(r.NormFloat64())
			x := newVecArr(r, n, off, func(r *rand.Rand, _ int) float32 { return float32(3 + r.NormFloat64()) })
			s, sq := SumSq(x.s(), shift)
			var ws, wsq, ms float64
			for _, v := range x.orig {
				d := float64(v) - float64(shift)
				ws += d
				wsq += d * d
				ms += math.Abs(d)
			}
			vecCheck(t, "s", s, ws, ms, vecTol64)
			vecCheck(t, "sq", sq, wsq, wsq, vecTol64)
			x.checkUnchanged(t, "x")
		}},
		{"DotSums", func(t *testing.T, r *rand.Rand, n, off int) { testDotSums(t, r, n, off, false) }},
		{"DotSumsShift", func(t *testing.T, r *rand.Rand, n, off int) { testDotSums(t, r, n, off, true) }},
		{"DotAxpy", func(t *testing.T, r *rand.Rand, n, off int) {
			alpha := float32(r.NormFloat64())
			d, x := newVecArr(r, n, off, nil), newVecArr(r, n, 3-off, nil)
			y := newVecArr(r, n, (off+1)%4, nil).out()
			got := DotAxpy(alpha, d.s(), x.long(), y.long())
			var want, mag float64
			wy, my := make([]float64, n), make([]float64, n)
			for i := range n {
				p := float64(d.orig[i]) * float64(x.orig[i])
				want += p
				mag += math.Abs(p)
				q := float64(alpha) * float64(d.orig[i])
				wy[i] = float64(y.orig[i]) + q
				my[i] = math.Abs(float64(y.orig[i])) + math.Abs(q)
			}
			vecCheck(t, "DotAxpy", got, want, mag, vecTol64)
			y.checkElems(t, "y", wy, my)
			d.checkUnchanged(t, "d")
			x.checkUnchanged(t, "x")
		}},
		{"ReLUMaskDotSums", func(t *testing.T, r *rand.Rand, n, off int) { testReLUMaskDotSums(t, r, n, off, false) }},
		{"ReLUMaskDotSumsShift", func(t *testing.T, r *rand.Rand, n, off int) { testReLUMaskDotSums(t, r, n, off, true) }},
		{"Axpy", func(t *testing.T, r *rand.Rand, n, off int) {
			alpha := float32(r.NormFloat64())
			x, y := newVecArr(r, n, off, nil), newVecArr(r, n, 3-off, nil).out()
			Axpy(alpha, x.s(), y.long())
			want, mag := make([]float64, n), make([]float64, n)
			for i := range n {
				p := float64(alpha) * float64(x.orig[i])
				want[i] = float64(y.orig[i]) + p
				mag[i] = math.Abs(float64(y.orig[i])) + math.Abs(p)
			}
			y.checkElems(t, "y", want, mag)
			x.checkUnchanged(t, "x")
		}},
		{"Scale", func(t *testing.T, r *rand.Rand, n, off int) {
			alpha := float32(r.NormFloat64())
			x, y := newVecArr(r, n, off, nil), newVecArr(r, n, (off+1)%4, nil).out()
			Scale(alpha, x.s(), y.long())
			want, mag := make([]float64, n), make([]float64, n)
			for i := range n {
				want[i] = float64(alpha) * float64(x.orig[i])
				mag[i] = math.Abs(want[i])
			}
			y.checkElems(t, "y", want, mag)
			x.checkUnchanged(t, "x")
		}},
		{"ScaleInPlace", func(t *testing.T, r *rand.Rand, n, off int) {
			alpha := float32(r.NormFloat64())
			x := newVecArr(r, n, off, nil).out()
			Scale(alpha, x.s(), x.s())
			want, mag := make([]float64, n), make([]float64, n)
			for i := range n {
				want[i] = float64(alpha) * float64(x.orig[i])
				mag[i] = math.Abs(want[i])
			}
			x.checkElems(t, "x", want, mag)
		}},
		{"Add", func(t *testing.T, r *rand.Rand, n, off int) {
			x, y := newVecArr(r, n, off, nil), newVecArr(r, n, (off+2)%4, nil).out()
			Add(x.s(), y.long())
			want, mag := make([]float64, n), make([]float64, n)
			for i := range n {
				want[i] = float64(x.orig[i]) + float64(y.orig[i])
				mag[i] = math.Abs(float64(x.orig[i])) + math.Abs(float64(y.orig[i]))
			}
			y.checkElems(t, "y", want, mag)
			x.checkUnchanged(t, "x")
		}},
		{"AddInPlace", func(t *testing.T, r *rand.Rand, n, off int) {
			x := newVecArr(r, n, off, nil).out()
			Add(x.s(), x.s())
			want := make([]float64, n)
			for i, v := range x.orig {
				want[i] = 2 * float64(v) // exact
			}
			x.checkElems(t, "x", want, nil)
		}},
		{"ReLU", func(t *testing.T, r *rand.Rand, n, off int) {
			x := newVecArr(r, n, off, vecSpecial).out()
			ReLU(x.s())
			want := make([]float64, n)
			for i, v := range x.orig {
				want[i] = float64(v)
				if v < 0 {
					want[i] = 0
				}
			}
			x.checkElems(t, "x", want, nil) // bitwise: NaN and −0 kept
		}},
		{"ReLUMask", func(t *testing.T, r *rand.Rand, n, off int) {
			y := newVecArr(r, n, off, vecReLUOut).setCanary(0) // zeroes d if read
			d := newVecArr(r, n, (off+3)%4, vecSpecial).out()
			ReLUMask(y.s(), d.long())
			want := make([]float64, n)
			for i, v := range y.orig {
				want[i] = float64(d.orig[i])
				if v == 0 {
					want[i] = 0
				}
			}
			d.checkElems(t, "d", want, nil)
			y.checkUnchanged(t, "y")
		}},
	}
	for _, alias := range []bool{false, true} {
		for _, mode := range []string{"nil", "store", "acc"} {
			name := "BNNorm/out=" + mode
			if alias {
				name += "/xhat=src"
			}
			cs = append(cs, vecCase{name, func(t *testing.T, r *rand.Rand, n, off int) {
				testBNNorm(t, r, n, off, alias, mode)
			}})
		}
	}

	for _, src := range []bool{false, true} {
		for _, alias := range []string{"", "xhat", "d"} {
			name := "BNBackApply"
			if src {
				name += "Src"
			}
			if alias != "" {
				name += "/out=" + alias
			}
			cs = append(cs, vecCase{name, func(t *testing.T, r *rand.Rand, n, off int) {
				testBNBack(t, r, n, off, alias, src)
			}})
		}
	}
	return cs
}

func testBNNorm(t *testing.T, r *rand.Rand, n, off int, alias bool, mode string) {
	mean, invstd := float32(r.NormFloat64()), float32(0.5+r.Float64())
	gamma, beta := float32(r.NormFloat64()), float32(r.NormFloat64())
	src := newVecArr(r, n, off, func(r *rand.Rand, _ int) float32 { return mean + float32(2*r.NormFloat64()) })
	xhat := src
	if alias {
		src.out()
	} else {
		xhat = newVecArr(r, n, (off+1)%4, nil).out()
	}
	var out *vecArr
	var outs []float32
	if mode != "nil" {
		out = newVecArr(r, n, (off+2)%4, nil).out()
		outs = out.long()
	}
	BNNorm(src.s(), xhat.long(), outs, mean, invstd, gamma, beta, mode == "acc")
	wh, mh := make([]float64, n), make([]float64, n)
	wo, mo := make([]float64, n), make([]float64, n)
	for i, v := range src.orig {
		wh[i] = (float64(v) - float64(mean)) * float64(invstd)
		mh[i] = (math.Abs(float64(v)) + math.Abs(float64(mean))) * float64(invstd)
		wo[i] = float64(gamma)*wh[i] + float64(beta)
		mo[i] = math.Abs(float64(gamma))*mh[i] + math.Abs(float64(beta))
		if mode == "acc" {
			wo[i] += float64(out.orig[i])
			mo[i] += math.Abs(float64(out.orig[i]))
		}
	}
	xhat.checkElems(t, "xhat", wh, mh)
	if out != nil {
		out.checkElems(t, "out", wo, mo)
	}
	if !alias {
		src.checkUnchanged(t, "src")
	}
}

// testDotSums checks DotSums, or DotSumsShift with a random shift.
func testDotSums(t *testing.T, r *rand.Rand, n, off int, shifted bool) {
	var shift float32
	if shifted {
		shift = float32(r.NormFloat64())
	}
	d, x := newVecArr(r, n, off, nil), newVecArr(r, n, (off+1)%4, nil)
	var sd, sdx float64
	if shifted {
		sd, sdx = DotSumsShift(d.s(), x.long(), shift)
	} else {
		sd, sdx = DotSums(d.s(), x.long())
	}
	var wd, wdx, md, mdx float64
	for i := range n {
		dv, xv := float64(d.orig[i]), float64(x.orig[i])-float64(shift)
		wd += dv
		md += math.Abs(dv)
		wdx += dv * xv
		mdx += math.Abs(dv * xv)
	}
	vecCheck(t, "sd", sd, wd, md, vecTol64)
	vecCheck(t, "sdx", sdx, wdx, mdx, vecTol64)
	d.checkUnchanged(t, "d")
	x.checkUnchanged(t, "x")
}

// testReLUMaskDotSums checks ReLUMaskDotSums, or ReLUMaskDotSumsShift with
// a random shift.
func testReLUMaskDotSums(t *testing.T, r *rand.Rand, n, off int, shifted bool) {
	var shift float32
	if shifted {
		shift = float32(r.NormFloat64())
	}
	y := newVecArr(r, n, off, vecReLUOut).setCanary(0)
	d := newVecArr(r, n, (off+3)%4, nil).out()
	x := newVecArr(r, n, (off+1)%4, nil)
	var sd, sdx float64
	if shifted {
		sd, sdx = ReLUMaskDotSumsShift(y.s(), d.long(), x.long(), shift)
	} else {
		sd, sdx = ReLUMaskDotSums(y.s(), d.long(), x.long())
	}
	want := make([]float64, n)
	var wd, wdx, md, mdx float64
	for i, v := range y.orig {
		if v != 0 {
			want[i] = float64(d.orig[i])
		}
		xv := float64(x.orig[i]) - float64(shift)
		wd += want[i]
		md += math.Abs(want[i])
		wdx += want[i] * xv
		mdx += math.Abs(want[i] * xv)
	}
	d.checkElems(t, "d", want, nil)
	vecCheck(t, "sd", sd, wd, md, vecTol64)
	vecCheck(t, "sdx", sdx, wdx, mdx, vecTol64)
	y.checkUnchanged(t, "y")
	x.checkUnchanged(t, "x")
}

// testBNBack checks BNBackApply, or BNBackApplySrc with a random mean.
func testBNBack(t *testing.T, r *rand.Rand, n, off int, alias string, src bool) {
	k, md, mdx := float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())
	var mean float32
	if src {
		mean = float32(r.NormFloat64())
	}
	d, xhat := newVecArr(r, n, off, nil), newVecArr(r, n, 3-off, nil)
	var out *vecArr
	switch alias {
	case "xhat":
		out = xhat.out()
	case "d":
		out = d.out()
	default:
		out = newVecArr(r, n, (off+1)%4, nil).out()
	}
	if src {
		BNBackApplySrc(d.s(), xhat.long(), out.long(), k, md, mean, mdx)
	} else {
		BNBackApply(d.s(), xhat.long(), out.long(), k, md, mdx)
	}
	want, mag := make([]float64, n), make([]float64, n)
	for i := range n {
		dv, xv := float64(d.orig[i]), float64(xhat.orig[i])-float64(mean)
		want[i] = float64(k) * (dv - float64(md) - xv*float64(mdx))
		mag[i] = math.Abs(float64(k)) * (math.Abs(dv) + math.Abs(float64(md)) + math.Abs(xv*float64(mdx)))
	}
	out.checkElems(t, "out", want, mag)
	if alias != "d" {
		d.checkUnchanged(t, "d")
	}
	if alias != "xhat" {
		xhat.checkUnchanged(t, "xhat")
	}
}

// TestVecKernels checks every vector function at every level this machine
// has, for all vecLens and offsets, against float64 references: results
// within the tolerances, nothing outside the windows read (canary NaNs) or
// written, inputs unchanged, in-place variants.
func TestVecKernels(t *testing.T) {
	lens := vecLens
	if testing.Short() {
		lens = lens[:len(lens)-1]
	}
	for _, l := range vecKernels.levels() {
		restore := vecKernels.set(l)
		for ci, c := range vecCases() {
			t.Run(l.String()+"/"+c.name, func(t *testing.T) {
				r := rand.New(rand.NewSource(int64(100*ci + 1)))
				for _, n := range lens {
					for off := range vecOffsets {
						t.Run(fmt.Sprintf("n%d/off%d", n, off), func(t *testing.T) { c.run(t, r, n, off) })
						if t.Failed() {
							return
						}
					}
				}
			})
		}
		restore()
	}
}

func TestVecLevels(t *testing.T) {
	ls := vecKernels.levels()
	if len(ls) == 0 || ls[0] != cpu.PureGo {
		t.Fatalf("vecKernels.levels() = %v, want purego first", ls)
	}
	for _, l := range ls {
		im := vecKernels.best(l)
		if im.level != l {
			t.Errorf("vecKernels.best(%v) = %v", l, im.level)
		}
		v := reflect.ValueOf(im).Elem()
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Func:
				if f.IsNil() {
					t.Errorf("%v: no %s kernel", l, v.Type().Field(i).Name)
				}
			case reflect.Array:
				for j := range f.Len() {
					if f.Index(j).IsNil() {
						t.Errorf("%v: no %s[%d] kernel", l, v.Type().Field(i).Name, j)
					}
				}
			}
		}
	}
	if vecKernels.active != vecKernels.best(cpu.Selected()) {
		t.Errorf("active level %v, selected %v", vecKernels.active.level, cpu.Selected())
	}
	t.Logf("levels %v, active %v, cpu %v", ls, vecKernels.active.level, cpu.Detected)
}

// TestVecPrecision checks the reductions on a million elements of one sign
// (the hard case for float32 accumulation) against float64: the relative
// errors must stay below 1e-7, tiny beside a naive float32 sum's (~1e-5
// here). Corr3Plane is checked on a plane of 1000 rows of 1000 pixels of
// one value: its centre tap is the dot product of the first 10⁶ values.
func TestVecPrecision(t *testing.T) {
	const n = 1_000_003
	r := rand.New(rand.NewSource(7))
	a, b := make([]float32, n+2), make([]float32, n+2)
	for i := range a {
		a[i] = float32(1 + 0.1*r.NormFloat64())
		b[i] = float32(2 + 0.1*r.NormFloat64())
	}
	x := make([]float32, n)
	const shift = 1000
	for i := range x {
		x[i] = float32(shift + r.NormFloat64())
	}
	var dot, dot6, sa, s, sq float64
	for i := range n {
		dot += float64(a[i]) * float64(b[i])
		sa += float64(a[i])
		if i < 1_000_000 {
			dot6 += float64(a[i]) * float64(b[i])
		}
		d := float64(x[i]) - shift
		s += d
		sq += d * d
	}
	var naive float32
	for i := range n {
		naive += a[i] * b[i]
	}
	rel := func(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }
	t.Logf("naive float32 Σa·b: relative error %.2g", rel(float64(naive), dot))
	for _, l := range vecKernels.levels() {
		restore := vecKernels.set(l)
		d64 := Dot64(a[:n], b)
		gd, gdx := DotSums(a[:n], b)
		var g [9]float64
		Corr3Plane(a, b, 1000, 1000, 1, &g)
		gs, gsq := SumSq(x, shift)
		restore()
		for _, c := range []struct {
			what      string
			got, want float64
			tol       float64
		}{
			{"Dot64", d64, dot, 1e-7},
			{"DotSums.sd", gd, sa, 1e-7},
			{"DotSums.sdx", gdx, dot, 1e-7},
			{"Corr3Plane[4]", g[4], dot6, 1e-7},
			{"SumSq.sq", gsq, sq, 1e-7},
		} {
			e := rel(c.got, c.want)
			t.Logf("%v: %s relative error %.2g", l, c.what, e)
			if !(e <= c.tol) {
				t.Errorf("%v: %s relative error %.3g > %.3g (got %v, want %v)", l, c.what, e, c.tol, c.got, c.want)
			}
		}
		// s is a sum of ±1 terms: compare with Σ|terms| ≈ 0.8n.
		if e := math.Abs(gs-s) / (0.7 * n); !(e <= 1e-7) {
			t.Errorf("%v: SumSq.s = %v, want %v (error %.3g of Σ|terms|)", l, gs, s, e)
		}
	}
}

// TestVecShort checks that a second slice shorter than the first panics
// even when its capacity would allow reslicing, and writes nothing.
func TestVecShort(t *testing.T) {
	const n = 37
	buf := make([]float32, 2*n+8)
	short := buf[:n-1] // capacity enough for n
	long := make([]float32, n+2)
	for i := range long {
		long[i] = 1
	}
	var g [9]float64
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"Dot", func() { Dot(long[:n], short) }},
		{"Dot64", func() { Dot64(long[:n], short) }},
		{"DotSums", func() { DotSums(long[:n], short) }},
		{"Corr3Plane", func() { Corr3Plane(long[:n], short, 1, n, 1, &g) }},
		{"Conv3Plane", func() { Conv3Plane(&[9]float32{}, short, buf[n+4:2*n+4], 1, n, 1, false) }},
		{"Axpy", func() { Axpy(1, long[:n], short) }},
		{"Scale", func() { Scale(1, long[:n], short) }},
		{"Add", func() { Add(long[:n], short) }},
		{"ReLUMask", func() { ReLUMask(long[:n], short) }},
		{"BNNorm/xhat", func() { BNNorm(long[:n], short, nil, 0, 1, 1, 0, false) }},
		{"BNNorm/out", func() { BNNorm(long[:n], long[:n], short, 0, 1, 1, 0, false) }},
		{"BNBackApply/xhat", func() { BNBackApply(long[:n], short, long[:n], 1, 0, 0) }},
		{"BNBackApply/out", func() { BNBackApply(long[:n], long[:n], short, 1, 0, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a short slice did not panic", c.name)
				}
				for i, v := range buf {
					if v != 0 {
						t.Fatalf("%s wrote buf[%d] = %v", c.name, i, v)
					}
				}
			}()
			c.fn()
		})
	}
	for i, v := range long {
		if v != 1 {
			t.Fatalf("long[%d] = %v written", i, v)
		}
	}
	// Empty inputs need nothing of the others.
	Dot(nil, nil)
	Axpy(1, nil, nil)
	BNNorm(nil, nil, nil, 0, 1, 1, 0, true)
	BNBackApply(nil, nil, nil, 1, 0, 0)
	Corr3Plane(nil, nil, 0, 5, 1, &g)
	if g != [9]float64{} {
		t.Errorf("Corr3Plane of nothing = %v", g)
	}
}

// TestVecNoAllocs checks that no vector function allocates, at any level.
func TestVecNoAllocs(t *testing.T) {
	const n = 1000
	r := rand.New(rand.NewSource(3))
	a, b, c := randSlice(r, n+2), randSlice(r, n+2), randSlice(r, n)
	var g [9]float64
	w := [9]float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	var sink float64
	for _, l := range vecKernels.levels() {
		restore := vecKernels.set(l)
		for _, f := range []struct {
			name string
			fn   func()
		}{
			{"Dot", func() { sink += float64(Dot(a, b)) }},
			{"Dot64", func() { sink += Dot64(a, b) }},
			{"SumSq", func() { s, q := SumSq(a, 1); sink += s + q }},
			{"DotSums", func() { s, q := DotSums(a, b); sink += s + q }},
			{"Conv3Plane", func() { Conv3Plane(&w, a, c, 5, 25, 8, false) }},
			{"Conv3Plane/add", func() { Conv3Plane(&w, a, c, 5, 25, 8, true) }},
			{"Corr3Plane", func() { Corr3Plane(c, a, 5, 25, 8, &g) }},
			{"Axpy", func() { Axpy(0.5, a, b) }},
			{"Scale", func() { Scale(0.5, a, b) }},
			{"Add", func() { Add(a, b) }},
			{"ReLU", func() { ReLU(b) }},
			{"ReLUMask", func() { ReLUMask(b, a) }},
			{"BNNorm", func() { BNNorm(a[:n], b, nil, 0, 1, 1, 0, false) }},
			{"BNNorm/out", func() { BNNorm(a[:n], b, c, 0, 1, 1, 0, false) }},
			{"BNNorm/acc", func() { BNNorm(a[:n], b, c, 0, 1, 1, 0, true) }},
			{"BNBackApply", func() { BNBackApply(a[:n], b, c, 1, 0, 0) }},
		} {
			if allocs := testing.AllocsPerRun(20, f.fn); allocs != 0 {
				t.Errorf("%v: %s allocates %v times per run", l, f.name, allocs)
			}
		}
		restore()
	}
	_ = sink
}
