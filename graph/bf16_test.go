package graph

import (
	"fmt"
	"math"
	"testing"
)

// mobileLike is a MobileOne-shaped graph (stem, depthwise and pointwise
// convolutions with ReLU, a residual add, SE, pooling, a classifier): the
// fused paths of the blocked planner.
func mobileLike(t testing.TB, h, w int) *Graph {
	b := NewBuilder("mobile", 3, h, w)
	x := b.Conv(b.Input(), "stem", ConvSpec{Out: 24, K: 3, Stride: 2, Pad: 1, Bias: true, Act: ReLU})
	x = b.Conv(x, "dw1", ConvSpec{Out: 24, K: 3, Stride: 2, Pad: 1, Groups: 24, Bias: true, Act: ReLU})
	x = b.Conv(x, "pw1", ConvSpec{Out: 40, K: 1, Bias: true, Act: ReLU})
	y := b.Conv(x, "dw2", ConvSpec{Out: 40, K: 3, Pad: 1, Groups: 40, Bias: true, Act: ReLU})
	y = b.Conv(y, "pw2", ConvSpec{Out: 40, K: 1, Bias: true, Act: None})
	x = b.Add(x, y, "res", ReLU)
	x = b.SE(x, "se", SESpec{Hidden: 8, Act: ReLU, Gate: Sigmoid, Reduce: "se.reduce", Expand: "se.expand", ConvWeights: true})
	x = b.Act(x, "se_relu", ReLU)
	x = b.Conv(x, "pw3", ConvSpec{Out: 72, K: 1, Bias: true, Act: ReLU})
	x = b.GlobalAvgPool(x, "gap")
	x = b.Linear(x, "fc", 10, true, None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestBF16Graph checks Graph.BF16's structure: bfloat16 weights, every
// Conv and Linear input made by a node that rounds, the original graph
// untouched.
func TestBF16Graph(t *testing.T) {
	for _, mk := range []func(testing.TB, int, int) *Graph{mixed, mobileLike} {
		g := mk(t, 16, 16)
		g.InitRandom(3)
		randomizeBN(g, 3)
		before := map[*Node][]float32{}
		for _, n := range g.Nodes {
			before[n] = append([]float32(nil), n.w...)
		}
		gb, err := g.BF16()
		if err != nil {
			t.Fatal(err)
		}
		if g.IsBF16() || !gb.IsBF16() {
			t.Fatalf("%s: IsBF16 %v, copy %v", g.Name, g.IsBF16(), gb.IsBF16())
		}
		maker := map[Value]*Node{}
		for _, n := range gb.Nodes {
			maker[n.Out] = n
		}
		convs := 0
		for _, n := range gb.Nodes[1:] {
			if n.Kind != Conv && n.Kind != Linear {
				continue
			}
			convs++
			for i, v := range n.w {
				if math.Float32bits(v)&0xffff != 0 {
					t.Fatalf("%s: weight %d = %v is not a bfloat16", n.Name, i, v)
				}
			}
			if m := maker[n.In[0]]; m.Act&BF16 == 0 {
				t.Errorf("%s reads %s (%v), which does not round", n.Name, m.Name, m.Act)
			}
		}
		if convs == 0 {
			t.Fatal("no convolutions")
		}
		for _, n := range g.Nodes {
			if n.Act&BF16 != 0 {
				t.Errorf("%s: the original graph changed", n.Name)
			}
			for i, v := range before[n] {
				if n.w[i] != v {
					t.Fatalf("%s: the original weights changed", n.Name)
				}
			}
		}
	}
}

// TestBF16PlanMatchesRef runs the bfloat16 graph on the planner (both
// layouts, one image and a batch in lanes) against the float64 reference
// executor of the same graph, which rounds at the same places: they agree
// to float32 summation order, far closer than either is to float32
// inference (which shows that every rounding the reference makes, the
// plan makes too).
func TestBF16PlanMatchesRef(t *testing.T) {
	for _, layout := range []string{LayoutBlocked, LayoutNCHW} {
		for _, mk := range []func(testing.TB, int, int) *Graph{mixed, mobileLike} {
			for _, n := range []int{1, 3} {
				g := mk(t, 24, 16)
				g.InitRandom(5)
				randomizeBN(g, 5)
				gb, err := g.BF16()
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%s/%s/n%d", g.Name, layout, n)
				x := randomInput(n, 3, 24, 16, 9)
				want, _, err := gb.Ref(x)
				if err != nil {
					t.Fatal(err)
				}
				p, err := NewPlanLayout(gb, n, layout)
				if err != nil {
					t.Fatal(err)
				}
				got, err := p.Run(x.Data)
				if err != nil {
					t.Fatal(err)
				}
				pf, err := NewPlanLayout(g, n, layout)
				if err != nil {
					t.Fatal(err)
				}
				f32, err := pf.Run(x.Data)
				if err != nil {
					t.Fatal(err)
				}
				e, ef := maxRelErr(got, want.Data), maxRelErr(f32, want.Data)
				t.Logf("%s: bf16 plan vs bf16 reference %.3g, float32 plan vs bf16 reference %.3g", name, e, ef)
				if !(e <= 1e-5) || !(ef > 100*e) {
					t.Errorf("%s: bf16 plan differs from the bf16 reference by %.3g (float32 plan: %.3g)", name, e, ef)
				}
			}
		}
	}
}

// TestBF16PlanAllocs: the bfloat16 plan, like the float32 one, allocates
// nothing per run (the rounding is a kernel activation, composed once).
func TestBF16PlanAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates in sync.Pool")
	}
	g := mobileLike(t, 32, 32)
	g.InitRandom(2)
	gb, err := g.BF16()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		p, err := NewPlan(gb, n)
		if err != nil {
			t.Fatal(err)
		}
		x := randomInput(n, 3, 32, 32, 3)
		if _, err := p.Run(x.Data); err != nil {
			t.Fatal(err)
		}
		if a := steadyAllocs(20, func() { p.Run(x.Data) }); a != 0 {
			t.Errorf("batch %d: %v allocations per run", n, a)
		}
	}
}
