package graph

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

// mixed builds a small network that uses every operator, on (3, h, w).
func mixed(t testing.TB, h, w int) *Graph {
	b := NewBuilder("mixed", 3, h, w)
	x := b.Conv(b.Input(), "stem", ConvSpec{Out: 16, K: 3, Stride: 2, Pad: 1, BN: true, BNName: "stem_bn", Act: HardSwish})
	y := b.Conv(x, "dw5", ConvSpec{Out: 16, K: 5, Pad: 2, Groups: 16, BN: true, BNName: "dw5_bn", Act: ReLU6})
	y = b.Conv(y, "grouped", ConvSpec{Out: 16, K: 3, Pad: 1, Groups: 4, Bias: true, Act: ReLU})
	y = b.Conv(y, "dilated", ConvSpec{Out: 16, K: 3, Pad: 2, Dilation: 2, Bias: true, Act: SiLU})
	x = b.Add(x, y, "add", ReLU)
	x = b.SE(x, "se", SESpec{Hidden: 4, Act: ReLU, Gate: HardSigmoid, Reduce: "se.fc1", Expand: "se.fc2", ConvWeights: true})
	l, r := b.Split(x, "left", 0, 8), b.Split(x, "right", 8, 16)
	r = b.Conv(r, "right.pw", ConvSpec{Out: 8, K: 1, BN: true, BNName: "right.bn", Act: GELU})
	x = b.Shuffle(b.Concat("cat", l, r), "shuffle", 2)
	x = b.Pool(x, "maxpool", MaxPool, 3, 2, 1)
	x = b.Act(x, "sig", Sigmoid)
	a := b.Pool(x, "avgpool", AvgPool, 3, 1, 1)
	x = b.Dynamic(a, "dyrelu_b", DyReLU, 4, true, 0)
	x = b.Dynamic(x, "dyrelu_a", DyReLU, 4, false, 0)
	x = b.Dynamic(x, "dysm", DyShiftMax, 4, false, 2)
	s := b.Shape(x)
	u := b.Upsample(x, "up", s[1]*2, s[2]*2, false)
	u = b.Upsample(u, "down", s[1], s[2], true)
	tok := b.Unfold(u, "unfold", 2)
	n := b.LayerNorm(tok, "ln", 1e-5)
	qkv := b.Linear(n, "qkv", 48, true, None)
	att := b.Attention(qkv, "attn", 2)
	att = b.Linear(att, "proj", 16, true, None)
	tok = b.Add(tok, att, "res", None)
	x = b.Fold(tok, "fold", 2, s[1], s[2])
	x = b.GlobalAvgPool(x, "gap")
	x = b.Linear(x, "fc", 10, true, None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func randomInput(n, c, h, w int, seed uint64) *tensor.Tensor {
	x := tensor.New(n, c, h, w)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

// randomizeBN gives every BatchNorm non-trivial statistics, so a wrong
// fold shows.
func randomizeBN(g *Graph, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 2))
	for _, nd := range g.Nodes {
		if !nd.BN {
			continue
		}
		k := len(nd.Tensors) - 4
		for i := range nd.Tensors[k].Data {
			nd.Tensors[k].Data[i] = float32(0.5 + r.Float64())
			nd.Tensors[k+1].Data[i] = float32(0.1 * r.NormFloat64())
			nd.Tensors[k+2].Data[i] = float32(0.2 * r.NormFloat64())
			nd.Tensors[k+3].Data[i] = float32(0.5 + 1.5*r.Float64())
		}
	}
	if err := g.Finalize(); err != nil {
		panic(err)
	}
}

func maxRelErr(a, b []float32) float64 {
	var d, m float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d / math.Max(m, 1e-30)
}

func TestPlanMatchesRef(t *testing.T) {
	for _, layout := range []string{"blocked", "nchw"} {
		t.Run(layout, func(t *testing.T) {
			t.Setenv("MOBILEONE_LAYOUT", layout)
			planMatchesRef(t)
		})
	}
}

func planMatchesRef(t *testing.T) {
	for _, sz := range [][2]int{{16, 16}, {24, 16}} {
		g := mixed(t, sz[0], sz[1])
		g.InitRandom(7)
		randomizeBN(g, 7)
		x := randomInput(3, 3, sz[0], sz[1], 1)
		want, _, err := g.Ref(x)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(g, 3)
		if err != nil {
			t.Fatal(err)
		}
		if p.Blocked != (os.Getenv("MOBILEONE_LAYOUT") == "blocked") {
			t.Errorf("plan blocked = %v under MOBILEONE_LAYOUT=%s", p.Blocked, os.Getenv("MOBILEONE_LAYOUT"))
		}
		got, err := p.Run(x.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e := maxRelErr(got, want.Data); e > 1e-4 || math.IsNaN(e) {
			t.Errorf("%v: plan differs from the reference by %.3g (relative)", sz, e)
		}
		if !tensor.SameShape(want.Shape, []int{3, 10}) {
			t.Errorf("output shape %v", want.Shape)
		}
	}
}

// TestPlanAllocs: the planned operators allocate nothing per run.
func TestPlanAllocs(t *testing.T) {
	for _, layout := range []string{"blocked", "nchw"} {
		t.Run(layout, func(t *testing.T) {
			t.Setenv("MOBILEONE_LAYOUT", layout)
			planAllocs(t)
		})
	}
}

func planAllocs(t *testing.T) {
	b := NewBuilder("planned", 3, 16, 16)
	x := b.Conv(b.Input(), "c1", ConvSpec{Out: 16, K: 3, Stride: 2, Pad: 1, BN: true, BNName: "bn1", Act: ReLU})
	y := b.Conv(x, "dw", ConvSpec{Out: 16, K: 3, Pad: 1, Groups: 16, Bias: true, Act: HardSwish})
	y = b.SE(y, "se", SESpec{Hidden: 4, Act: ReLU, Gate: Sigmoid, Reduce: "se.r", Expand: "se.e"})
	x = b.Add(x, y, "add", ReLU6)
	x = b.Shuffle(b.Concat("cat", b.Split(x, "l", 0, 8), b.Split(x, "r", 8, 16)), "sh", 2)
	x = b.Pool(x, "mp", MaxPool, 3, 2, 1)
	x = b.Linear(b.GlobalAvgPool(x, "gap"), "fc", 5, true, None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(3)
	p, err := NewPlan(g, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Unplanned) > 0 {
		t.Fatalf("unplanned: %v", p.Unplanned)
	}
	in := randomInput(2, 3, 16, 16, 2).Data
	p.Run(in)
	if a := steadyAllocs(5, func() { p.Run(in) }); a > 0 && !raceEnabled {
		t.Errorf("%.0f allocations per run", a)
	}
}

// TestCounts: parameters and MACs of a small graph, by hand.
func TestCounts(t *testing.T) {
	b := NewBuilder("counts", 3, 8, 8)
	x := b.Conv(b.Input(), "c", ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1, BN: true, BNName: "bn"}) // 4×3×3×3 + BN 2·4; MACs 4·27·16
	x = b.Conv(x, "dw", ConvSpec{Out: 4, K: 3, Pad: 1, Groups: 4, Bias: true})                     // 36 + 4; 4·9·16
	x = b.SE(x, "se", SESpec{Hidden: 2, Act: ReLU, Gate: Sigmoid, Reduce: "r", Expand: "e"})       // 8+2+8+4; 2·4·2
	x = b.Linear(b.GlobalAvgPool(x, "gap"), "fc", 10, true, None)                                  // 40+10; 40
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	if p, want := g.Params(), int64(108+8+40+22+50); p != want {
		t.Errorf("params %d, want %d", p, want)
	}
	if m, want := g.MACs(), int64(4*27*16+4*9*16+16+40); m != want {
		t.Errorf("MACs %d, want %d", m, want)
	}
}

func TestBuilderErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *Builder)
		want  string
	}{
		{"groups", func(b *Builder) { b.Conv(b.Input(), "c", ConvSpec{Out: 4, K: 3, Groups: 2}) }, "groups"},
		{"too small", func(b *Builder) { b.Conv(b.Input(), "c", ConvSpec{Out: 4, K: 9}) }, "too small"},
		{"add", func(b *Builder) {
			b.Add(b.Input(), b.Conv(b.Input(), "c", ConvSpec{Out: 4, K: 1}), "a", None)
		}, "adding"},
		{"bn name", func(b *Builder) { b.Conv(b.Input(), "c", ConvSpec{Out: 4, K: 1, BN: true}) }, "BatchNorm"},
		{"patches", func(b *Builder) { b.Unfold(b.Input(), "u", 3) }, "patches"},
	} {
		b := NewBuilder("e", 3, 4, 4)
		tc.build(b)
		if _, err := b.Graph(b.Input()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadStrict(t *testing.T) {
	g := mixed(t, 16, 16)
	g.InitRandom(1)
	keys, sd := g.StateDict()
	if err := g.Load(sd); err != nil {
		t.Fatal(err)
	}
	delete(sd, keys[3])
	if err := g.Load(sd); err == nil || !strings.Contains(err.Error(), keys[3]) {
		t.Errorf("missing key: %v", err)
	}
	_, sd = g.StateDict()
	sd["extra.weight"] = tensor.New(2)
	sd["x.num_batches_tracked"] = tensor.New()
	if err := g.Load(sd); err == nil || !strings.Contains(err.Error(), "extra.weight") || strings.Contains(err.Error(), "num_batches") {
		t.Errorf("unused key: %v", err)
	}
	_, sd = g.StateDict()
	sd[keys[0]] = tensor.New(1, 2, 3)
	if err := g.Load(sd); err == nil || !strings.Contains(err.Error(), keys[0]) {
		t.Errorf("misshaped key: %v", err)
	}
}
