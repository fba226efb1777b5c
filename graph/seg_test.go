package graph

import (
	"fmt"
	"math"
	"testing"
)

// asppLike builds what DeepLabV3 needs of the engine on (20, h, w): dilated
// depthwise blocks, dilated dense convolutions (some with taps only ever
// reading padding), image pooling to a 1×1 map, its broadcast back, a
// concatenation, bilinear and nearest upsampling, ending in a bilinear
// upsample to a larger map.
func asppLike(t testing.TB, h, w int) *Graph {
	b := NewBuilder("aspp", 20, h, w)
	x := b.Conv(b.Input(), "dw2", ConvSpec{Out: 20, K: 3, Pad: 2, Dilation: 2, Groups: 20, Bias: true, Act: ReLU})
	x = b.Conv(x, "dw3", ConvSpec{Out: 20, K: 3, Pad: 3, Dilation: 3, Groups: 20, Bias: true, Act: ReLU})
	s := b.Shape(x)
	br := []Value{b.Conv(x, "b0", ConvSpec{Out: 16, K: 1, BN: true, BNName: "b0.bn", Act: ReLU})}
	for _, r := range []int{2, 5, 9, 40} {
		br = append(br, b.Conv(x, fmt.Sprintf("r%d", r), ConvSpec{Out: 16, K: 3, Pad: r, Dilation: r, BN: true,
			BNName: fmt.Sprintf("r%d.bn", r), Act: ReLU}))
	}
	p := b.GlobalAvgPoolMap(x, "pool")
	p = b.Conv(p, "pool.conv", ConvSpec{Out: 16, K: 1, BN: true, BNName: "pool.bn", Act: ReLU})
	br = append(br, b.Upsample(p, "pool.up", s[1], s[2], false))
	y := b.Concat("cat", br...)
	y = b.Conv(y, "project", ConvSpec{Out: 12, K: 1, Bias: true, Act: ReLU})
	y = b.Upsample(y, "bilinear.mid", s[1]+3, 2*s[2]-1, false) // blocked in and out
	n := b.Upsample(y, "nearest", s[1]*2, s[2]*2-1, true)
	n = b.Conv(n, "cls", ConvSpec{Out: 5, K: 1, Bias: true})
	out := b.Upsample(n, "up", 8*h+1, 40*w, false) // large enough to split over threads
	g, err := b.Graph(out)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestPlanSegOps: the plan of asppLike equals the reference, with every
// node planned, in both layouts, on maps smaller than some dilations; the
// convolutions whose off-centre taps never read the map run cropped.
func TestPlanSegOps(t *testing.T) {
	for _, layout := range []string{"blocked", "nchw"} {
		for _, sz := range [][2]int{{6, 8}, {11, 7}} {
			t.Run(fmt.Sprintf("%s_%dx%d", layout, sz[0], sz[1]), func(t *testing.T) {
				t.Setenv("MOBILEONE_LAYOUT", layout)
				g := asppLike(t, sz[0], sz[1])
				g.InitRandom(5)
				randomizeBN(g, 5)
				x := randomInput(2, 20, sz[0], sz[1], 3)
				want, _, err := g.Ref(x)
				if err != nil {
					t.Fatal(err)
				}
				p, err := NewPlan(g, 2)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Unplanned) > 0 {
					t.Errorf("unplanned: %v", p.Unplanned)
				}
				got, err := p.Run(x.Data)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxRelErr(got, want.Data); e > 1e-5 || math.IsNaN(e) {
					t.Errorf("plan differs from the reference by %.3g (relative)", e)
				}
				var cropped []string
				for n, c := range p.cropped {
					cropped = append(cropped, fmt.Sprintf("%s:%d", n.Name, c.K))
				}
				if len(cropped) == 0 {
					t.Error("no convolution cropped (rate 40 reads only padding off its centre)")
				}
				t.Logf("cropped %v", cropped)
				if layout == "blocked" {
					for _, nd := range g.Nodes {
						if nd.Kind == Upsample && nd.Out != g.Output && !p.blk[nd.Out] {
							t.Errorf("%s is not kept blocked", nd.Name)
						}
					}
				}
				if a := steadyAllocs(3, func() { p.Run(x.Data) }); a > 0 && !raceEnabled {
					t.Errorf("%.0f allocations per run", a)
				}
			})
		}
	}
}

// TestLiveTaps: the taps of a kernel dimension that read inside the input,
// by hand.
func TestLiveTaps(t *testing.T) {
	for _, tc := range []struct{ k, s, pad, dil, in, out, t0, t1 int }{
		{3, 1, 1, 1, 5, 5, 0, 3},
		{3, 1, 12, 12, 6, 6, 1, 2},   // rate 12 on 6: centre only
		{3, 1, 5, 5, 12, 12, 0, 3},   // rate 5 on 12: all
		{3, 1, 13, 13, 12, 12, 1, 2}, // rate 13 on 12
		{3, 1, 6, 6, 7, 7, 0, 3},     // rate 6 on 7: the edges reach
		{3, 2, 6, 6, 5, 3, 1, 2},     // stride 2: tap 0 reads −6, −4, −2; tap 2 reads 6, 8, 10
		{3, 2, 1, 1, 2, 1, 1, 3},     // stride 2, one output: tap 0 reads −1
		{5, 1, 0, 1, 5, 1, 0, 5},
	} {
		if t0, t1 := liveTaps(tc.k, tc.s, tc.pad, tc.dil, tc.in, tc.out); t0 != tc.t0 || t1 != tc.t1 {
			t.Errorf("%+v: live [%d, %d)", tc, t0, t1)
		}
	}
}
