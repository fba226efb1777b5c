package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// withThreads runs fn with kernel.Threads() = n and the ops' parallel
// threshold at minWork (0: every op splits its work).
func withThreads(t testing.TB, n, minWork int, fn func()) {
	t.Helper()
	old, oldMin := kernel.Threads(), minParallel
	kernel.SetThreads(n)
	minParallel = minWork
	defer func() {
		kernel.SetThreads(old)
		minParallel = oldMin
	}()
	fn()
}

// threadCases are the thread counts and thresholds the ops are tested at.
var threadCases = []struct{ threads, minWork int }{{1, 1 << 16}, {2, 0}, {3, 0}}

func randSlice(r *rand.Rand, n int, mean, std float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(mean + std*r.NormFloat64())
	}
	return s
}

// TestAttention32: attnOp against refAttention (float64) on shapes of
// MobileViT's three stages and odd ones (T 1 and prime, head widths that
// are no multiple of a vector, one head, five), with logits from tame to
// large (std 8: the row maxima must be subtracted, or e^x overflows).
func TestAttention32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ g, t, d, heads int }{
		{1, 1, 3, 1}, {2, 5, 12, 3}, {3, 17, 20, 5}, {1, 37, 8, 1}, {2, 33, 64, 2},
		{4, 196, 96, 4}, {4, 49, 120, 4}, {4, 16, 144, 4},
	} {
		for _, std := range []float64{0.5, 8} {
			name := fmt.Sprintf("G%d_T%d_D%d_H%d_std%g", c.g, c.t, c.d, c.heads, std)
			xs := []int{c.g, c.t, 3 * c.d}
			n := &Node{Kind: Attention, Heads: c.heads}
			x := randSlice(r, c.g*c.t*3*c.d, 0, std)
			want := make([]float32, c.g*c.t*c.d)
			refAttention(n, x, xs, want, make([]float64, c.t))
			for _, tc := range threadCases {
				withThreads(t, tc.threads, tc.minWork, func() {
					op := newAttnOp(n, xs)
					got := guardedOut(len(want))
					op.run(x, got[guardLen:guardLen+len(want)])
					checkGuards(t, name, got, len(want))
					if e := maxRelErr(got[guardLen:guardLen+len(want)], want); e > 2e-5 || math.IsNaN(e) {
						t.Errorf("%s threads %d: relative error %.3g", name, tc.threads, e)
					}
				})
			}
		}
	}
}

// TestLayerNorm32: layerNormOp against layerNorm (float64), including rows
// far from zero with a small spread (a one-pass variance in float32 would
// lose every digit) and constant rows (variance 0: eps alone).
func TestLayerNorm32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		rows, d   int
		mean, std float64
	}{
		{1, 1, 0, 1}, {3, 7, 0, 1}, {17, 145, 2, 3}, {784, 96, 0, 1}, {196, 120, 1000, 0.01}, {64, 144, -5, 0}, {5, 33, 1e-3, 1e-4},
	} {
		name := fmt.Sprintf("%dx%d_mean%g_std%g", c.rows, c.d, c.mean, c.std)
		n := &Node{Kind: LayerNorm, Eps: 1e-5, Tensors: []Tensor{{Data: randSlice(r, c.d, 1, 0.5)}, {Data: randSlice(r, c.d, 0, 0.5)}}}
		x := randSlice(r, c.rows*c.d, c.mean, c.std)
		want := make([]float32, len(x))
		layerNorm(n, x, c.d, want)
		for _, tc := range threadCases {
			withThreads(t, tc.threads, tc.minWork, func() {
				op := newLayerNormOp(n, []int{c.rows, c.d})
				got := guardedOut(len(want))
				op.run(x, got[guardLen:guardLen+len(want)])
				checkGuards(t, name, got, len(want))
				if e := maxRelErr(got[guardLen:guardLen+len(want)], want); e > 1e-5 || math.IsNaN(e) {
					t.Errorf("%s threads %d: relative error %.3g", name, tc.threads, e)
				}
			})
		}
	}
}

// TestPatch32: Unfold and Fold as patchOp against unfold and fold
// (copies: the results must be identical), on channel counts below, at and
// above the tile of 8 and patch sizes 1 to 3.
func TestPatch32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ c, h, w, p int }{
		{1, 2, 2, 2}, {5, 4, 6, 2}, {8, 8, 8, 2}, {13, 6, 9, 3}, {96, 28, 28, 2}, {120, 14, 14, 2}, {144, 8, 8, 2}, {17, 5, 3, 1},
	} {
		name := fmt.Sprintf("C%d_%dx%d_P%d", c.c, c.h, c.w, c.p)
		cs := []int{c.c, c.h, c.w}
		x := randSlice(r, c.c*c.h*c.w, 0, 1)
		wantU := make([]float32, len(x))
		unfold(x, cs, wantU, c.p)
		wantF := make([]float32, len(x))
		fold(wantU, cs, wantF, c.p)
		for _, tc := range threadCases {
			withThreads(t, tc.threads, tc.minWork, func() {
				gotU := guardedOut(len(x))
				newPatchOp(false, cs, c.p).run(x, gotU[guardLen:guardLen+len(x)])
				checkGuards(t, name+" unfold", gotU, len(x))
				gotF := guardedOut(len(x))
				newPatchOp(true, cs, c.p).run(wantU, gotF[guardLen:guardLen+len(x)])
				checkGuards(t, name+" fold", gotF, len(x))
				for i := range x {
					if gotU[guardLen+i] != wantU[i] || gotF[guardLen+i] != wantF[i] || wantF[i] != x[i] {
						t.Fatalf("%s threads %d: element %d: unfold %v want %v, fold %v want %v (x %v)",
							name, tc.threads, i, gotU[guardLen+i], wantU[i], gotF[guardLen+i], wantF[i], x[i])
					}
				}
			})
		}
	}
}

const guardLen = 19

// guardedOut returns n values with guardLen NaNs on each side.
func guardedOut(n int) []float32 {
	s := make([]float32, n+2*guardLen)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

func checkGuards(t *testing.T, name string, s []float32, n int) {
	t.Helper()
	for i, v := range s {
		if (i < guardLen || i >= guardLen+n) && v == v {
			t.Fatalf("%s: wrote outside the output at %d", name, i-guardLen)
		}
	}
}

func benchOp(b *testing.B, run func(x, y []float32), nx, ny int) {
	r := rand.New(rand.NewPCG(1, 1))
	x, y := randSlice(r, nx, 0, 1), make([]float32, ny)
	run(x, y)
	b.ResetTimer()
	for range b.N {
		run(x, y)
	}
}

// BenchmarkAttention32: MobileViT-XS's attention at 224×224, by stage.
func BenchmarkAttention32(b *testing.B) {
	for _, c := range []struct{ g, t, d int }{{4, 196, 96}, {4, 49, 120}, {4, 16, 144}} {
		b.Run(fmt.Sprintf("G%d_T%d_D%d", c.g, c.t, c.d), func(b *testing.B) {
			op := newAttnOp(&Node{Kind: Attention, Heads: 4}, []int{c.g, c.t, 3 * c.d})
			b.SetBytes(0)
			benchOp(b, op.run, c.g*c.t*3*c.d, c.g*c.t*c.d)
			b.ReportMetric(float64(4*c.g*c.t*c.t*c.d)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkLayerNorm32(b *testing.B) {
	n := &Node{Kind: LayerNorm, Eps: 1e-5, Tensors: []Tensor{{Data: make([]float32, 96)}, {Data: make([]float32, 96)}}}
	op := newLayerNormOp(n, []int{4, 196, 96})
	benchOp(b, op.run, 4*196*96, 4*196*96)
}

func BenchmarkUnfold32(b *testing.B) {
	op := newPatchOp(false, []int{96, 28, 28}, 2)
	benchOp(b, op.run, 96*28*28, 96*28*28)
}

func BenchmarkFold32(b *testing.B) {
	op := newPatchOp(true, []int{96, 28, 28}, 2)
	benchOp(b, op.run, 96*28*28, 96*28*28)
}

// TestLinear32: linearOp against the reference Linear (float64) on
// MobileViT's row counts and odd ones, with and without bias, with the
// activations its blocks use.
func TestLinear32(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct {
		rows, in, out int
		bias          bool
		act           Activation
	}{
		{2, 1, 1, true, None}, {3, 7, 5, false, None}, {65, 17, 33, true, SiLU}, {130, 40, 7, true, GELU},
		{784, 96, 192, true, SiLU}, {196, 240, 120, true, None}, {64, 288, 144, true, None},
	} {
		name := fmt.Sprintf("%dx%d_to_%d_bias%v_%v", c.rows, c.in, c.out, c.bias, c.act)
		n := &Node{Kind: Linear, Act: c.act, w: randSlice(r, c.out*c.in, 0, 1/math.Sqrt(float64(c.in)))}
		if c.bias {
			n.b = randSlice(r, c.out, 0, 1)
		}
		g := &Graph{Shapes: [][]int{{c.rows, c.in}, {c.rows, c.out}}}
		n.In, n.Out = []Value{0}, 1
		x := randSlice(r, c.rows*c.in, 0, 1)
		want := g.refNode(n, [][]float32{x, nil})
		for _, tc := range threadCases {
			withThreads(t, tc.threads, tc.minWork, func() {
				op := newLinearOp(n, g.Shapes[0], g.Shapes[1])
				got := guardedOut(len(want))
				op.run(x, got[guardLen:guardLen+len(want)])
				checkGuards(t, name, got, len(want))
				if e := maxRelErr(got[guardLen:guardLen+len(want)], want); e > 1e-5 || math.IsNaN(e) {
					t.Errorf("%s threads %d: relative error %.3g", name, tc.threads, e)
				}
			})
		}
	}
}

// BenchmarkLinear32: MobileViT-XS's linear layers of stage 2 (784 rows),
// as linearOp and as the plan did them before (one GemmNT, then bias and
// activation over the whole output).
func BenchmarkLinear32(b *testing.B) {
	for _, c := range []struct {
		rows, in, out int
		act           Activation
	}{{784, 96, 288, None}, {784, 96, 192, SiLU}, {784, 192, 96, None}, {64, 288, 144, None}} {
		r := rand.New(rand.NewPCG(1, 1))
		n := &Node{Kind: Linear, Act: c.act, w: randSlice(r, c.out*c.in, 0, 0.1), b: randSlice(r, c.out, 0, 1)}
		name := fmt.Sprintf("%dx%d_to_%d_%v", c.rows, c.in, c.out, c.act)
		b.Run(name+"/op", func(b *testing.B) {
			op := newLinearOp(n, []int{c.rows, c.in}, []int{c.rows, c.out})
			benchOp(b, op.run, c.rows*c.in, c.rows*c.out)
		})
		b.Run(name+"/gemmnt", func(b *testing.B) {
			benchOp(b, func(x, y []float32) {
				kernel.GemmNT(c.rows, c.out, c.in, x, n.w, y, false)
				for i := 0; i < c.rows; i++ {
					kernel.Add(n.b, y[i*c.out:(i+1)*c.out])
				}
				actF32(y, n.Act)
			}, c.rows*c.in, c.rows*c.out)
		})
	}
}

// TestPlanTransformerAllocs: a plan with a MobileViT transformer block
// (Unfold, LayerNorm, Linear over many rows, Attention, Fold) has no
// unplanned node, matches the reference, and runs without allocating,
// serially and with every op split over threads.
func TestPlanTransformerAllocs(t *testing.T) {
	b := NewBuilder("vit", 3, 16, 12)
	x := b.Conv(b.Input(), "c1", ConvSpec{Out: 24, K: 3, Pad: 1, BN: true, BNName: "bn1", Act: SiLU})
	tok := b.Unfold(x, "unfold", 2)
	a := b.LayerNorm(tok, "norm1", 1e-5)
	a = b.Linear(a, "qkv", 72, true, None)
	a = b.Attention(a, "attn", 3)
	a = b.Linear(a, "proj", 24, true, None)
	tok = b.Add(tok, a, "add1", None)
	m := b.LayerNorm(tok, "norm2", 1e-5)
	m = b.Linear(m, "fc1", 48, true, SiLU)
	m = b.Linear(m, "fc2", 24, true, None)
	tok = b.LayerNorm(b.Add(tok, m, "add2", None), "norm", 1e-5)
	x = b.Fold(tok, "fold", 2, 16, 12)
	x = b.Linear(b.GlobalAvgPool(x, "gap"), "fc", 5, true, None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(5)
	in := randomInput(2, 3, 16, 12, 3)
	want, _, err := g.Ref(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ threads, minWork int }{{1, 1 << 16}, {2, 0}} {
		withThreads(t, tc.threads, tc.minWork, func() {
			p, err := NewPlan(g, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Unplanned) > 0 {
				t.Fatalf("unplanned: %v", p.Unplanned)
			}
			got, err := p.Run(in.Data)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(got, want.Data); e > 1e-4 || math.IsNaN(e) {
				t.Errorf("threads %d: plan differs from the reference by %.3g (relative)", tc.threads, e)
			}
			if a := steadyAllocs(5, func() { p.Run(in.Data) }); a > 0 && !raceEnabled {
				t.Errorf("threads %d: %.0f allocations per run", tc.threads, a)
			}
		})
	}
}

// TestOpsWorkers: an op's Workers field caps the chunks of its runs (a
// plan running images in parallel lanes sets it to 1), and the result
// does not depend on it.
func TestOpsWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	ln := &Node{Kind: LayerNorm, Eps: 1e-5, Tensors: []Tensor{{Data: randSlice(r, 24, 1, 0.5)}, {Data: randSlice(r, 24, 0, 0.5)}}}
	lin := &Node{Kind: Linear, Act: SiLU, w: randSlice(r, 24*24, 0, 0.2), b: randSlice(r, 24, 0, 1)}
	type op interface{ run(x, y []float32) }
	for _, c := range []struct {
		name   string
		mk     func() op
		n      int
		chunks func(op) (*int, *int) // Workers, chunks
	}{
		{"attention", func() op { return newAttnOp(&Node{Kind: Attention, Heads: 4}, []int{4, 16, 3 * 24}) }, 4 * 16 * 3 * 24,
			func(o op) (*int, *int) { a := o.(*attnOp); return &a.Workers, &a.chunks }},
		{"layernorm", func() op { return newLayerNormOp(ln, []int{4, 64, 24}) }, 4 * 64 * 24,
			func(o op) (*int, *int) { a := o.(*layerNormOp); return &a.Workers, &a.chunks }},
		{"unfold", func() op { return newPatchOp(false, []int{24, 16, 16}, 2) }, 24 * 16 * 16,
			func(o op) (*int, *int) { a := o.(*patchOp); return &a.Workers, &a.chunks }},
		{"linear", func() op { return newLinearOp(lin, []int{4 * 256, 24}, []int{4 * 256, 24}) }, 4 * 256 * 24,
			func(o op) (*int, *int) { a := o.(*linearOp); return &a.Workers, &a.chunks }},
	} {
		withThreads(t, 3, 0, func() {
			x := randSlice(r, c.n, 0, 1)
			var first []float32
			for _, w := range []int{0, 1, 2} {
				o := c.mk()
				wk, chunks := c.chunks(o)
				*wk = w
				y := make([]float32, c.n*2)
				o.run(x, y)
				if want := map[int]int{0: 3, 1: 1, 2: 2}[w]; *chunks != want {
					t.Errorf("%s: Workers %d: %d chunks, want %d", c.name, w, *chunks, want)
				}
				if first == nil {
					first = y
				} else if e := maxRelErr(y, first); e > 0 {
					t.Errorf("%s: Workers %d changes the result by %.3g", c.name, w, e)
				}
			}
		})
	}
}
