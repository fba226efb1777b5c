package graph

import (
	"math"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// repNet is MobileOne's fused shape in small: a 3×3 stride-2 stem, a 3×3
// stride-2 depthwise layer, 1×1 layers, SE between a convolution and its
// ReLU, and a skip-free chain, so that every fusion of fuse.go applies.
func repNet(t testing.TB, h, w int, stemAct Activation) *Graph {
	b := NewBuilder("rep", 3, h, w)
	x := b.Conv(b.Input(), "stem", ConvSpec{Out: 24, K: 3, Stride: 2, Pad: 1, Bias: true, Act: stemAct})
	x = b.Conv(x, "dw0", ConvSpec{Out: 24, K: 3, Stride: 2, Pad: 1, Groups: 24, Bias: true, Act: ReLU})
	x = b.Conv(x, "pw0", ConvSpec{Out: 40, K: 1, Bias: true, Act: None})
	x = b.SE(x, "se0", SESpec{Hidden: 8, Act: ReLU, Gate: Sigmoid, Reduce: "se0.reduce", Expand: "se0.expand", ConvWeights: true})
	x = b.Act(x, "relu0", ReLU)
	x = b.Conv(x, "dw1", ConvSpec{Out: 40, K: 3, Stride: 1, Pad: 1, Groups: 40, Bias: true, Act: None})
	x = b.SE(x, "se1", SESpec{Hidden: 8, Act: ReLU, Gate: Sigmoid, Reduce: "se1.reduce", Expand: "se1.expand", ConvWeights: true})
	x = b.Act(x, "relu1", ReLU)
	x = b.Conv(x, "pw1", ConvSpec{Out: 20, K: 1, Bias: true, Act: ReLU})
	x = b.GlobalAvgPool(x, "gap")
	x = b.Linear(x, "fc", 5, true, None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(3)
	return g
}

func TestFusions(t *testing.T) {
	t.Setenv("MOBILEONE_LAYOUT", "blocked")
	for _, tc := range []struct {
		name    string
		h, w    int
		stemAct Activation
		stemDW  bool
	}{
		{"fused", 32, 32, ReLU, true},
		{"odd size", 29, 19, ReLU, true},
		{"stem without ReLU", 16, 16, None, true},
		{"stem with HardSwish", 16, 16, HardSwish, false}, // StemDWOp fuses ReLU only
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := repNet(t, tc.h, tc.w, tc.stemAct)
			x := randomInput(2, 3, tc.h, tc.w, 5)
			want, _, err := g.Ref(x)
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewPlan(g, 2)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]*Node{}
			for _, n := range g.Nodes {
				byName[n.Name] = n
			}
			if got := p.fuse.stemDW[byName["stem"]] == byName["dw0"]; got != tc.stemDW {
				t.Errorf("stem+dw fused: %v, want %v", got, tc.stemDW)
			}
			for _, se := range []string{"se0", "se1"} {
				if !p.fuse.seReLU[byName[se]] || !p.fuse.inPlace[byName[se]] {
					t.Errorf("%s: not fused with its ReLU in place", se)
				}
				if _, ok := p.fuse.seWeight[byName[se]]; !ok {
					t.Errorf("%s: weights not packed for prefetch", se)
				}
			}
			if n := len(p.fuse.seAfter[byName["pw0"]]); n != 2*(40*8+8+8*40+40) {
				t.Errorf("pw0 prefetches %d floats, want both SEs' weights", n)
			}
			if len(p.Unplanned) > 0 {
				t.Errorf("unplanned: %v", p.Unplanned)
			}
			for range 2 { // twice: buffers reused in place must not leak state
				got, err := p.Run(x.Data)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxRelErr(got, want.Data); e > 1e-5 || math.IsNaN(e) {
					t.Errorf("plan differs from the reference by %.3g (relative)", e)
				}
			}
			if a := steadyAllocs(3, func() { p.Run(x.Data) }); a > 0 && !raceEnabled {
				t.Errorf("%.0f allocations per run", a)
			}
		})
	}
}

// The fusions can be turned off, and the result does not change.
func TestFusionsOff(t *testing.T) {
	t.Setenv("MOBILEONE_LAYOUT", "blocked")
	g := repNet(t, 32, 32, ReLU)
	x := randomInput(1, 3, 32, 32, 9)
	p, err := NewPlan(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	on, _ := p.Run(x.Data)
	on = append([]float32(nil), on...)
	defer func(a, b bool) { stemDWFusion, sePrefetch = a, b }(stemDWFusion, sePrefetch)
	stemDWFusion, sePrefetch = false, false
	q, err := NewPlan(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.fuse.stemDW) != 0 || len(q.fuse.seAfter) != 0 {
		t.Fatal("fusions not turned off")
	}
	off, _ := q.Run(x.Data)
	for i := range on {
		if on[i] != off[i] {
			t.Fatalf("logit %d: %v with fusions, %v without", i, on[i], off[i])
		}
	}
}

// Pooling, concat (aligned and not), split and shuffle keep the blocked
// layout: no conversion in a ShuffleNet/GhostNet-like chain, and the
// result equals the reference.
func TestBlockedLayoutOps(t *testing.T) {
	t.Setenv("MOBILEONE_LAYOUT", "blocked")
	for _, c := range []int{24, 32, 20} {
		b := NewBuilder("shuffle", 3, 19, 17)
		x := b.Conv(b.Input(), "stem", ConvSpec{Out: c, K: 3, Stride: 2, Pad: 1, Bias: true, Act: ReLU})
		x = b.Pool(x, "maxpool", MaxPool, 3, 2, 1)
		l, r := b.Split(x, "left", 0, c/2), b.Split(x, "right", c/2, c)
		r = b.Conv(r, "right.pw", ConvSpec{Out: c / 2, K: 1, Bias: true, Act: ReLU})
		r = b.Conv(r, "right.dw", ConvSpec{Out: c / 2, K: 3, Pad: 1, Groups: c / 2, Bias: true})
		x = b.Shuffle(b.Concat("cat", l, r), "shuffle", 2)
		y := b.Conv(x, "ghost.primary", ConvSpec{Out: 7, K: 1, Bias: true, Act: ReLU})
		z := b.Conv(y, "ghost.cheap", ConvSpec{Out: 7, K: 3, Pad: 1, Groups: 7, Bias: true, Act: ReLU})
		x = b.Concat("ghost.cat", y, z, x)
		x = b.Pool(x, "avgpool", AvgPool, 3, 1, 1)
		x = b.Conv(x, "pw", ConvSpec{Out: 16, K: 1, Bias: true, Act: ReLU})
		x = b.GlobalAvgPool(x, "gap")
		g, err := b.Graph(x)
		if err != nil {
			t.Fatal(err)
		}
		g.InitRandom(4)
		in := randomInput(2, 3, 19, 17, 6)
		want, _, err := g.Ref(in)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(g, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range g.Nodes[1:] {
			if n.Kind != GlobalAvgPool && (!p.blk[n.Out] || p.alt[n.Out] != nil) {
				t.Errorf("c=%d: %s (%v) blocked %v, converted %v", c, n.Name, n.Kind, p.blk[n.Out], p.alt[n.Out] != nil)
			}
		}
		for range 2 {
			got, _ := p.Run(in.Data)
			if e := maxRelErr(got, want.Data); e > 1e-5 || math.IsNaN(e) {
				t.Errorf("c=%d: plan differs from the reference by %.3g", c, e)
			}
		}
	}
}

// ResNet's stem: an NCHW 7×7 convolution, max pooling written straight
// into blocks for the blocked convolutions and the residual add after it.
func TestPoolToBlocked(t *testing.T) {
	t.Setenv("MOBILEONE_LAYOUT", "blocked")
	b := NewBuilder("resnet-stem", 3, 30, 26)
	x := b.Conv(b.Input(), "conv1", ConvSpec{Out: 20, K: 7, Stride: 2, Pad: 3, Bias: true, Act: ReLU})
	x = b.Pool(x, "maxpool", MaxPool, 3, 2, 1)
	y := b.Conv(x, "layer1.conv1", ConvSpec{Out: 20, K: 3, Pad: 1, Bias: true, Act: ReLU})
	y = b.Conv(y, "layer1.conv2", ConvSpec{Out: 20, K: 3, Pad: 1, Bias: true})
	x = b.Add(x, y, "layer1.add", ReLU)
	x = b.GlobalAvgPool(x, "gap")
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(8)
	in := randomInput(1, 3, 30, 26, 2)
	want, _, _ := g.Ref(in)
	p, err := NewPlan(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes[2:] {
		if n.Kind != GlobalAvgPool && (!p.blk[n.Out] || p.alt[n.Out] != nil) {
			t.Errorf("%s blocked %v, converted %v", n.Name, p.blk[n.Out], p.alt[n.Out] != nil)
		}
	}
	got, _ := p.Run(in.Data)
	if e := maxRelErr(got, want.Data); e > 1e-5 || math.IsNaN(e) {
		t.Errorf("plan differs from the reference by %.3g", e)
	}
}

// A batch runs in lanes, one per thread, over the same packed ops, and a
// lane with several images runs them together from the tail on (the 1×1
// convolutions for all of them at once): every image's output is
// bit-identical to the same image run alone, on one to three threads, and
// a run allocates nothing.
func TestLanes(t *testing.T) {
	t.Setenv("MOBILEONE_LAYOUT", "blocked")
	defer kernel.SetThreads(0)
	for _, tc := range []struct {
		size  int
		group bool // the map is small enough for a group run from pw0
	}{{32, false}, {8, true}} {
		for _, threads := range []int{1, 2, 3} {
			kernel.SetThreads(threads)
			g := repNet(t, tc.size, tc.size, ReLU)
			const n = 5
			x := randomInput(n, 3, tc.size, tc.size, 11)
			p, err := NewPlan(g, n)
			if err != nil {
				t.Fatal(err)
			}
			one, err := NewPlan(g, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := p.Run(x.Data)
			if (p.tailStep() >= 0) != tc.group {
				t.Fatalf("size %d: group run from step %d", tc.size, p.tailStep())
			}
			if lanes := min(threads, n); len(p.lanes) != lanes && !(threads == 1 && !tc.group) {
				t.Fatalf("%d lanes, want %d", len(p.lanes), lanes)
			}
			if tc.group && len(p.lanes[0].images) != ceilDiv(n, min(threads, n)) {
				t.Errorf("threads %d: lane 0 has %d image plans", threads, len(p.lanes[0].images))
			}
			if p.head == nil || p.head.Name != "fc" {
				t.Error("the classifier is not run once per batch")
			}
			per, outPer := 3*tc.size*tc.size, len(got)/n
			for i := 0; i < n; i++ {
				want, _ := one.Run(x.Data[i*per : (i+1)*per])
				for j := range want {
					if got[i*outPer+j] != want[j] {
						t.Fatalf("size %d threads %d image %d logit %d: %v in the batch, %v alone", tc.size, threads, i, j, got[i*outPer+j], want[j])
					}
				}
			}
			if a := steadyAllocs(3, func() { p.Run(x.Data) }); a > 0 && !raceEnabled {
				t.Errorf("%.0f allocations per run", a)
			}
		}
	}
}
