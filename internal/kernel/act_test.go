package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// act64 is the float64 reference of activation a (the limits at ±Inf,
// where the plain formulas give NaN; the negative tail of GELU through
// erfc, without the cancellation of 1+erf).
func act64(a Activation, v float64) float64 {
	switch a {
	case ActReLU:
		if v < 0 {
			return 0
		}
		return v
	case ActReLU6:
		return math.Min(math.Max(v, 0), 6)
	case ActHardSwish:
		if math.IsInf(v, -1) {
			return 0
		}
		return v * math.Min(math.Max(v+3, 0), 6) / 6
	case ActHardSigmoid:
		return math.Min(math.Max(v+3, 0), 6) / 6
	case ActSigmoid:
		return 1 / (1 + math.Exp(-v))
	case ActSiLU:
		if math.IsInf(v, -1) {
			return 0
		}
		return v / (1 + math.Exp(-v))
	case ActGELU:
		if math.IsInf(v, -1) {
			return 0
		}
		return 0.5 * v * math.Erfc(-v/math.Sqrt2)
	}
	return v
}

// minNormal32 is the smallest normal float32.
const minNormal32 = 1.1754943508222875e-38

// actErr returns how far got is from the reference of a at x, as a
// fraction of the allowed error (≤ 1 passes):
//   - Sigmoid, SiLU: 3e-7 relative where sigmoid(x) is a normal float32;
//     below, the result may flush to zero (abs error ≤ 2e-38·max(1, |x|)).
//   - GELU: 2e-7·max(1, |x|) absolute.
//   - ReLU6, HardSigmoid, HardSwish: 2.5e-7 relative (two roundings);
//     ReLU exact.
//
// Subnormal results may be off by one subnormal step (2⁻¹⁴⁹).
//
// NaN must give NaN, and nothing else may.
func actErr(a Activation, x, got float32) float64 {
	g, xf := float64(got), float64(x)
	want := act64(a, xf)
	if math.IsNaN(want) || math.IsNaN(g) {
		if math.IsNaN(want) && math.IsNaN(g) {
			return 0
		}
		return math.Inf(1)
	}
	if math.IsInf(want, 0) || math.IsInf(g, 0) {
		if want == g {
			return 0
		}
		return math.Inf(1)
	}
	d := math.Abs(g - want)
	if d == 0 {
		return 0
	}
	// Results in the subnormal range round to multiples of 2⁻¹⁴⁹.
	bound := func(b float64) float64 { return d / math.Max(b, 0x1p-149) }
	switch a {
	case ActSigmoid, ActSiLU:
		if s := 1 / (1 + math.Exp(-xf)); s < minNormal32 {
			return bound(2e-38 * math.Max(1, math.Abs(xf)))
		}
		return bound(3e-7 * math.Abs(want))
	case ActGELU:
		return bound(2e-7 * math.Max(1, math.Abs(xf)))
	case ActReLU6, ActHardSigmoid, ActHardSwish:
		return bound(2.5e-7 * math.Abs(want))
	}
	if d == 0 {
		return 0
	}
	return math.Inf(1)
}

// actEdges are the special inputs: zeros, infinities, NaN, denormals, the
// ends of the float range, and the places where a formula switches (the
// clamps of ReLU6 and the hard functions, the flush of exp near −87.3,
// −88.7, the clamp at −104).
var actEdges = func() []float32 {
	inf := float32(math.Inf(1))
	v := []float32{0, float32(math.Copysign(0, -1)), inf, -inf, float32(math.NaN()),
		math.Float32frombits(0xffc00001), // a negative NaN
		1e-45, -1e-45, 1e-40, -1e-40, minNormal32, -minNormal32, 1e-30, -1e-30,
		math.MaxFloat32, -math.MaxFloat32, 1e20, -1e20, 1e6, -1e6,
		3, -3, 6, -6, 0.5, -0.5, 1, -1, 2.9999998, -2.9999998, 3.0000002, -3.0000002, 5.9999995, 6.0000005,
		87.3, -87.3, 87.33654, -87.33654, 88, -88, 88.72, -88.72, 89, -89, 103.9, -103.9, 104, -104, 105, -105, 200, -200,
		8, -8, 13.5, -13.5, 14, -14, 20, -20, 30, -30,
	}
	for _, e := range []float32{1e-7, 1e-4, 0.01, 0.1, 0.3466, 0.3467, 0.6931, 0.6932} {
		v = append(v, e, -e)
	}
	return v
}()

// actValue returns test input i: an edge value, or a random one from a
// wide range (log-uniform magnitudes 1e-8…1e3, uniform ±10 and ±100).
func actValue(r *rand.Rand, i int) float32 {
	if i%3 == 0 {
		return actEdges[r.Intn(len(actEdges))]
	}
	switch r.Intn(3) {
	case 0:
		v := float32(math.Pow(10, -8+11*r.Float64()))
		if r.Intn(2) == 0 {
			v = -v
		}
		return v
	case 1:
		return float32(20*r.Float64() - 10)
	}
	return float32(200*r.Float64() - 100)
}

var allActs = []Activation{ActNone, ActReLU, ActReLU6, ActHardSwish, ActHardSigmoid, ActSigmoid, ActSiLU, ActGELU}

// exactTwin reports whether the assembly of a rounds exactly as its twin
// (no fused multiply-adds; a zero's sign may differ).
func exactTwin(a Activation) bool {
	switch a {
	case ActNone, ActReLU, ActReLU6, ActHardSwish, ActHardSigmoid:
		return true
	}
	return false
}

// TestActKernels checks every activation at every level on all lengths
// 0..67 and a few longer ones, at every misalignment, against float64 math
// (actErr) and against the pure-Go twin (bit for bit where there are no
// FMAs, else both within the bounds), with canaries around the slice.
func TestActKernels(t *testing.T) {
	lens := make([]int, 0, 80)
	for n := 0; n <= 67; n++ {
		lens = append(lens, n)
	}
	lens = append(lens, 100, 255, 1000, 4097)
	for _, l := range actKernels.levels() {
		im := actKernels.at(l)
		for _, a := range allActs {
			t.Run(l.String()+"/"+a.String(), func(t *testing.T) {
				r := rand.New(rand.NewSource(int64(a) + 1))
				for _, n := range lens {
					for off := range vecOffsets {
						x := newVecArr(r, n, off, actValue)
						im.fn[a](x.s(), 1, n, n)
						twin := append([]float32(nil), x.orig...)
						actPureGo.fn[a](twin, 1, n, n)
						for i, v := range x.s() {
							in := x.orig[i]
							if a == ActNone {
								if math.Float32bits(v) != math.Float32bits(in) {
									t.Fatalf("n%d off%d: none changed [%d] %v → %v", n, off, i, in, v)
								}
								continue
							}
							if e := actErr(a, in, v); !(e <= 1) {
								t.Fatalf("n%d off%d: %s(%v) = %v, want %v (%.3g of the bound)", n, off, a, in, v, act64(a, float64(in)), e)
							}
							if e := actErr(a, in, twin[i]); !(e <= 1) {
								t.Fatalf("n%d off%d: twin %s(%v) = %v, want %v (%.3g of the bound)", n, off, a, in, twin[i], act64(a, float64(in)), e)
							}
							if exactTwin(a) && v != twin[i] && !(v != v && twin[i] != twin[i]) {
								t.Fatalf("n%d off%d: %s(%v) = %v (%#x), twin %v (%#x)", n, off, a, in, v, math.Float32bits(v), twin[i], math.Float32bits(twin[i]))
							}
						}
						x.checkOutside(t, fmt.Sprintf("n%d off%d", n, off))
					}
				}
			})
		}
	}
}

// TestActRegion checks the strided form (rows of cols values ld apart)
// that the convolutions apply to their tiles: the gaps between rows are
// left alone.
func TestActRegion(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for _, l := range actKernels.levels() {
		im := actKernels.at(l)
		for _, a := range allActs {
			for _, rows := range []int{0, 1, 2, 3, 7} {
				for _, cols := range []int{0, 1, 7, 8, 15, 16, 17, 33, 67} {
					for _, gap := range []int{0, 1, 5, 16} {
						ld := cols + gap
						n := max(0, (rows-1)*ld+cols)
						x := newVecArr(r, n, 1, actValue)
						im.region(a, x.s(), rows, cols, ld)
						want := append([]float32(nil), x.orig...)
						for ro := 0; ro < rows; ro++ {
							actPureGo.fn[a](want[ro*ld:], 1, cols, cols)
						}
						for i, v := range x.s() {
							if i%max(ld, 1) >= cols { // a gap: untouched
								if math.Float32bits(v) != math.Float32bits(x.orig[i]) {
									t.Fatalf("%v %s rows%d cols%d ld%d: gap [%d] written", l, a, rows, cols, ld, i)
								}
								continue
							}
							if math.Float32bits(v) != math.Float32bits(want[i]) && !(actErr(a, x.orig[i], v) <= 1) {
								t.Fatalf("%v %s rows%d cols%d ld%d: [%d] = %v, want %v", l, a, rows, cols, ld, i, v, want[i])
							}
						}
						x.checkOutside(t, fmt.Sprintf("%v %s rows%d cols%d ld%d", l, a, rows, cols, ld))
					}
				}
			}
		}
	}
}

// TestActDense sweeps about a million float32 values spread over the
// whole range (every 4099th bit pattern) through each level's kernels and
// reports the worst error relative to the bound.
func TestActDense(t *testing.T) {
	step := uint32(4099)
	if testing.Short() {
		step = 40009
	}
	var xs []float32
	for b := uint64(0); b < 1<<32; b += uint64(step) {
		xs = append(xs, math.Float32frombits(uint32(b)))
	}
	// And densely where the functions bend: ±20 in steps of about 1e-4.
	for i := -200000; i <= 200000; i++ {
		xs = append(xs, float32(i)*1.0001e-4)
	}
	y := make([]float32, len(xs))
	for _, l := range actKernels.levels() {
		im := actKernels.at(l)
		for _, a := range allActs[1:] {
			copy(y, xs)
			im.fn[a](y, 1, len(y), len(y))
			worst, at := 0.0, 0
			for i, x := range xs {
				if e := actErr(a, x, y[i]); !(e <= worst) {
					worst, at = e, i
				}
			}
			t.Logf("%v %s: worst error %.2f of the bound at x = %v", l, a, worst, xs[at])
			if !(worst <= 1) {
				t.Errorf("%v %s(%v) = %v, want %v", l, a, xs[at], y[at], act64(a, float64(xs[at])))
			}
		}
	}
}

// TestActLimits pins the results at the special inputs.
func TestActLimits(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, l := range actKernels.levels() {
		im := actKernels.at(l)
		for _, c := range []struct {
			a          Activation
			pinf, minf float32
		}{
			{ActReLU, inf, 0}, {ActReLU6, 6, 0}, {ActHardSwish, inf, 0}, {ActHardSigmoid, 1, 0},
			{ActSigmoid, 1, 0}, {ActSiLU, inf, 0}, {ActGELU, inf, 0},
		} {
			x := []float32{inf, -inf, nan, 1000, -1000}
			im.fn[c.a](x, 1, len(x), len(x))
			if x[0] != c.pinf || x[1] != c.minf || !math.IsNaN(float64(x[2])) {
				t.Errorf("%v %s(+Inf, −Inf, NaN) = %v, %v, %v, want %v, %v, NaN", l, c.a, x[0], x[1], x[2], c.pinf, c.minf)
			}
			if math.IsNaN(float64(x[3])) || math.IsNaN(float64(x[4])) {
				t.Errorf("%v %s(±1000) = %v, %v", l, c.a, x[3], x[4])
			}
		}
	}
}

// TestActLevels checks that every level this machine runs has every
// kernel.
func TestActLevels(t *testing.T) {
	ls := actKernels.levels()
	if len(ls) == 0 || ls[0] != cpu.PureGo {
		t.Fatalf("levels %v", ls)
	}
	for _, l := range ls {
		im := actKernels.best(l)
		if im.level != l {
			t.Errorf("best(%v) = %v", l, im.level)
		}
		for a, f := range im.fn {
			if f == nil {
				t.Errorf("%v: no %v kernel", l, Activation(a))
			}
		}
		if im.add == nil || im.mul16 == nil {
			t.Errorf("%v: no add or mul16", l)
		}
	}
	t.Logf("levels %v, active %v", ls, actKernels.active.level)
}

// forActLevels runs f with the exported functions on each level.
func forActLevels(t *testing.T, f func(t *testing.T)) {
	for _, l := range actKernels.levels() {
		restore := actKernels.set(l)
		t.Run(l.String(), f)
		restore()
	}
}

// TestActivateParallel checks that Activate over long slices, split
// across threads, equals the serial kernel, and that an unknown
// activation panics.
func TestActivateParallel(t *testing.T) {
	defer SetThreads(Threads())
	forActLevels(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(9))
		for _, th := range []int{1, 2, 3} {
			SetThreads(th)
			for _, n := range []int{0, 5, 2*ewMinTask - 1, 2 * ewMinTask, 100003} {
				xs := make([]float32, n)
				for i := range xs {
					xs[i] = actValue(r, i)
				}
				for _, a := range allActs {
					got := append([]float32(nil), xs...)
					Activate(a, got)
					want := append([]float32(nil), xs...)
					actKernels.active.fn[a](want, 1, n, n)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("threads %d n %d %s: [%d] = %v, want %v", th, n, a, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("Activate(numActs) did not panic")
		}
	}()
	Activate(numActs, make([]float32, 4))
}

// TestAddAct checks y = a(x+z) against the add and the activation done
// apart, in place and out of place, serial and parallel.
func TestAddAct(t *testing.T) {
	defer SetThreads(Threads())
	forActLevels(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(11))
		for _, th := range []int{1, 2} {
			SetThreads(th)
			for _, n := range []int{0, 1, 17, 67, ewChunk + 3, 3*ewMinTask + 5} {
				for _, a := range []Activation{ActNone, ActReLU, ActSiLU} {
					for _, alias := range []bool{false, true} {
						x, z := newVecArr(r, n, 1, nil), newVecArr(r, n, 2, nil)
						y := newVecArr(r, n, 3, nil).out()
						dst := y.s()
						if alias {
							dst = x.s()
						}
						AddAct(a, x.long(), z.long(), dst)
						want := make([]float32, n)
						for i := range want {
							want[i] = x.orig[i] + z.orig[i]
						}
						actPureGo.fn[a](want, 1, n, n)
						for i, v := range dst {
							if math.Float32bits(v) != math.Float32bits(want[i]) && !(actErr(a, x.orig[i]+z.orig[i], v) <= 1) {
								t.Fatalf("threads %d n %d %s alias %v: [%d] = %v, want %v", th, n, a, alias, i, v, want[i])
							}
						}
						z.checkUnchanged(t, "z")
						if alias {
							x.checkOutside(t, "x")
						} else {
							x.checkUnchanged(t, "x")
							y.checkOutside(t, "y")
						}
					}
				}
			}
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("AddAct with a short z did not panic")
		}
	}()
	AddAct(ActNone, make([]float32, 4), make([]float32, 3), make([]float32, 4))
}

// TestScaleChannels checks the squeeze-excitation scaling in both
// layouts: y = x·g[channel], zero padding channels in the blocked one.
func TestScaleChannels(t *testing.T) {
	defer SetThreads(Threads())
	forActLevels(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(13))
		for _, th := range []int{1, 2} {
			SetThreads(th)
			for _, s := range []struct{ c, hw int }{{1, 1}, {3, 5}, {16, 49}, {17, 7}, {40, 112 * 112}, {96, 196}, {1152, 49}} {
				c, hw := s.c, s.hw
				g := randSlice(r, c)
				x := randSlice(r, c*hw)
				y := make([]float32, c*hw)
				ScaleChannels(c, hw, x, g, y)
				for ch := 0; ch < c; ch++ {
					for i := 0; i < hw; i++ {
						if y[ch*hw+i] != x[ch*hw+i]*g[ch] {
							t.Fatalf("threads %d %dx%d: ScaleChannels [%d,%d] = %v, want %v", th, c, hw, ch, i, y[ch*hw+i], x[ch*hw+i]*g[ch])
						}
					}
				}
				n := BlockedLen(c, hw)
				xb := make([]float32, n)
				ToBlocked(c, hw, x, xb)
				for i := c; i < Blocks(c)*BlockC; i++ { // nonzero padding must not leak
					for p := 0; p < hw; p++ {
						xb[(i/BlockC*hw+p)*BlockC+i%BlockC] = 1
					}
				}
				yb := newVecArr(r, n, 1, nil).out()
				BlockedScaleChannels(c, hw, xb, g, yb.s())
				yb.checkOutside(t, "blocked y")
				back := make([]float32, c*hw)
				FromBlocked(c, hw, yb.s(), back)
				for i := range back {
					if back[i] != y[i] {
						t.Fatalf("threads %d %dx%d: BlockedScaleChannels [%d] = %v, want %v", th, c, hw, i, back[i], y[i])
					}
				}
				for i := c; i < Blocks(c)*BlockC; i++ {
					for p := 0; p < hw; p++ {
						if v := yb.s()[(i/BlockC*hw+p)*BlockC+i%BlockC]; v != 0 {
							t.Fatalf("%dx%d: padding channel %d = %v", c, hw, i, v)
						}
					}
				}
				// In place.
				copy(yb.s(), xb)
				BlockedScaleChannels(c, hw, yb.s(), g, yb.s())
				FromBlocked(c, hw, yb.s(), back)
				for i := range back {
					if back[i] != y[i] {
						t.Fatalf("%dx%d: in-place BlockedScaleChannels [%d] = %v, want %v", c, hw, i, back[i], y[i])
					}
				}
			}
		}
	})
}

// TestActNoAllocs: the exported functions allocate nothing per call,
// serial or parallel.
func TestActNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates in sync.Pool")
	}
	defer SetThreads(Threads())
	r := rand.New(rand.NewSource(3))
	const c, hw = 40, 56 * 56
	x, z, y, g := randSlice(r, c*hw), randSlice(r, c*hw), make([]float32, BlockedLen(c, hw)), randSlice(r, c)
	for _, th := range []int{1, 2} {
		SetThreads(th)
		for _, f := range []struct {
			name string
			fn   func()
		}{
			{"Activate", func() { Activate(ActSiLU, y) }},
			{"AddAct", func() { AddAct(ActReLU, x, z, y[:c*hw]) }},
			{"ScaleChannels", func() { ScaleChannels(c, hw, x, g, y) }},
			{"BlockedScaleChannels", func() { BlockedScaleChannels(c, hw, y, g, y) }},
		} {
			f.fn()
			if allocs := testing.AllocsPerRun(20, f.fn); allocs != 0 {
				t.Errorf("threads %d: %s allocates %v times per run", th, f.name, allocs)
			}
		}
	}
}

// BenchmarkActivate runs each activation on the 32×112×112 map after
// EfficientNet-B0's stem (one thread), at every level.
func BenchmarkActivate(b *testing.B) {
	const n = 32 * 112 * 112
	x := make([]float32, n)
	r := rand.New(rand.NewSource(1))
	for i := range x {
		x[i] = float32(4 * r.NormFloat64())
	}
	y := make([]float32, n)
	for _, l := range actKernels.levels() {
		im := actKernels.at(l)
		for _, a := range allActs[1:] {
			b.Run(fmt.Sprintf("%v/%s/n=%d", l, a, n), func(b *testing.B) {
				b.SetBytes(4 * n)
				for b.Loop() {
					copy(y, x)
					im.fn[a](y, 1, n, n)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/elem")
			})
		}
	}
}
