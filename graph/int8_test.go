package graph

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel/ref"
	"github.com/mobileone-go/mobileone/tensor"
)

// int8TestGraph: a stem with a negative input (zero point), a stride-2
// depthwise layer, a pointwise layer, pooling and a float classifier.
func int8TestGraph(t *testing.T) (*Graph, *Int8Spec) {
	b := NewBuilder("int8-test", 1, 9, 9)
	x := b.Conv(b.Input(), "stem", ConvSpec{Out: 16, K: 3, Pad: 1, Bias: true, Act: ReLU})
	x = b.Conv(x, "dw", ConvSpec{Out: 16, K: 3, Pad: 1, Stride: 2, Groups: 16, Bias: true, Act: ReLU})
	x = b.Conv(x, "pw", ConvSpec{Out: 24, K: 1, Bias: true, Act: ReLU})
	x = b.GlobalAvgPool(x, "gap")
	x = b.Linear(x, "fc", 5, true, None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	spec := &Int8Spec{Act: map[string]QParam{"input": {0.02, 100}, "stem": {0.05, 0}, "dw": {0.04, 0}, "pw": {0.03, 0}},
		Conv: map[string]*Int8Conv{}, Float: map[string][][]float32{}}
	for _, nd := range g.Nodes {
		if nd.Kind != Conv {
			continue
		}
		n := tensor.NumelOf(nd.Tensors[0].Shape)
		cout := nd.Tensors[0].Shape[0]
		c := &Int8Conv{W: make([]int8, n), WScale: make([]float32, cout), Bias: make([]int32, cout)}
		for i := range c.W {
			c.W[i] = int8(r.IntN(255) - 127)
		}
		for o := range cout {
			c.WScale[o] = float32(0.002 + 0.01*r.Float64())
			c.Bias[o] = int32(r.IntN(4001) - 2000) // negative biases included
		}
		spec.Conv[nd.Name] = c
	}
	fw := make([]float32, 5*24)
	fb := make([]float32, 5)
	for i := range fw {
		fw[i] = float32(r.NormFloat64())
	}
	spec.Float["fc"] = [][]float32{fw, fb}
	return g, spec
}

// TestInt8PlanMatchesChainOfReferences runs the plan against the same
// network computed step by step with ref.QConv and float pooling and
// classifier, written independently here.
func TestInt8PlanMatchesChainOfReferences(t *testing.T) {
	g, spec := int8TestGraph(t)
	r := rand.New(rand.NewPCG(7, 8))
	const n = 3
	x := make([]float32, n*81)
	for i := range x {
		x[i] = float32(r.NormFloat64()) // negative values: the stem's zero point matters
	}
	for _, batch := range []int{1, n} {
		p, err := NewInt8Plan(g, spec, batch)
		if err != nil {
			t.Fatal(err)
		}
		for img := 0; img < n; img += batch {
			got, err := p.Run(x[img*81 : (img+batch)*81])
			if err != nil {
				t.Fatal(err)
			}
			for bi := range batch {
				want := int8Chain(spec, x[(img+bi)*81:(img+bi+1)*81])
				for j, v := range want {
					if d := math.Abs(float64(got[bi*5+j] - v)); d > 1e-5*(1+math.Abs(float64(v))) {
						t.Fatalf("batch %d image %d logit %d = %v, want %v", batch, img+bi, j, got[bi*5+j], v)
					}
				}
			}
		}
	}
}

func int8Chain(spec *Int8Spec, img []float32) []float32 {
	in := spec.Act["input"]
	q := make([]uint8, 81)
	for i, v := range img {
		f := math.RoundToEven(float64(v/in.Scale)) + float64(in.Zero)
		q[i] = uint8(max(0, min(255, f)))
	}
	layer := func(name string, x []uint8, xq QParam, h, cin, cout, k, stride, groups int) ([]uint8, int) {
		c := spec.Conv[name]
		y := spec.Act[name]
		oh := (h+2*(k/2)-k)/stride + 1
		m := make([]float32, cout)
		for o := range m {
			m[o] = float32(float64(xq.Scale) * float64(c.WScale[o]) / float64(y.Scale))
		}
		s := ref.QConvShape{H: h, W: h, Cin: cin, Cout: cout, K: k, KW: k, Stride: stride, Pad: k / 2, PadW: k / 2, Dilation: 1,
			Groups: groups, OutH: oh, OutW: oh, XZero: xq.Zero, YZero: y.Zero, Lo: y.Zero, Hi: 255}
		out := make([]uint8, oh*oh*cout)
		ref.QConv(s, x, c.W, c.Bias, m, out)
		return out, oh
	}
	a, h := layer("stem", q, in, 9, 1, 16, 3, 1, 1)
	a, h = layer("dw", a, spec.Act["stem"], h, 16, 16, 3, 2, 16)
	a, h = layer("pw", a, spec.Act["dw"], h, 16, 24, 1, 1, 1)
	pq := spec.Act["pw"]
	pooled := make([]float64, 24)
	for i, v := range a {
		pooled[i%24] += float64(int32(v)-pq.Zero) * float64(pq.Scale)
	}
	fw, fb := spec.Float["fc"][0], spec.Float["fc"][1]
	out := make([]float32, 5)
	for j := range out {
		s := float64(fb[j])
		for k := range 24 {
			s += float64(float32(pooled[k]/float64(h*h))) * float64(fw[j*24+k])
		}
		out[j] = float32(s)
	}
	return out
}

func TestInt8PlanRejectsBadSpecs(t *testing.T) {
	cases := []struct {
		name string
		edit func(s *Int8Spec)
		want string
	}{
		{"missing input scale", func(s *Int8Spec) { delete(s.Act, "input") }, "no quantisation for the output of input"},
		{"missing output scale", func(s *Int8Spec) { delete(s.Act, "pw") }, "no quantisation for the output of pw"},
		{"zero scale", func(s *Int8Spec) { s.Act["dw"] = QParam{0, 0} }, "not valid"},
		{"zero point out of range", func(s *Int8Spec) { s.Act["dw"] = QParam{1, 256} }, "not valid"},
		{"short weights", func(s *Int8Spec) { s.Conv["pw"].W = s.Conv["pw"].W[:7] }, "pw has 7 weights"},
		{"missing bias", func(s *Int8Spec) { s.Conv["dw"].Bias = nil }, "0 biases"},
		{"negative weight scale", func(s *Int8Spec) { s.Conv["dw"].WScale[3] = -1 }, "weight scale 3"},
		{"NaN weight scale", func(s *Int8Spec) { s.Conv["dw"].WScale[0] = float32(math.NaN()) }, "weight scale 0"},
		{"missing classifier", func(s *Int8Spec) { delete(s.Float, "fc") }, "fc (Linear) is neither int8 nor given float weights"},
		{"short classifier", func(s *Int8Spec) { s.Float["fc"][0] = s.Float["fc"][0][:3] }, "fc float tensor 0"},
		{"missing float stem", func(s *Int8Spec) { delete(s.Conv, "stem") }, "stem (Conv) is neither"},
	}
	for _, c := range cases {
		g, spec := int8TestGraph(t)
		c.edit(spec)
		_, err := NewInt8Plan(g, spec, 1)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestInt8PlanFloatStem keeps the first layer in float: the plan then
// quantises the stem's float output before the first int8 layer.
func TestInt8PlanFloatStem(t *testing.T) {
	g, spec := int8TestGraph(t)
	sc := spec.Conv["stem"]
	w := make([]float32, len(sc.W))
	for i, v := range sc.W {
		w[i] = float32(v) * sc.WScale[i/9] * 0.1
	}
	spec.Float["stem"] = [][]float32{w, make([]float32, 16)}
	delete(spec.Conv, "stem")
	p, err := NewInt8Plan(g, spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	steps := strings.Join(p.Steps(), "; ")
	if !strings.HasPrefix(steps, "fconv stem; quantize stem; qconv dw") {
		t.Fatalf("steps %s", steps)
	}
	x := make([]float32, 81)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	if _, err := p.Run(x); err != nil {
		t.Fatal(err)
	}
	// The stem's float output, quantised, must be what dw read.
	f := p.DequantizedValue("stem")
	want := make([]float32, 16*81)
	refConv(&Node{K: 3, KW: 3, Stride: 1, Pad: 1, PadW: 1, Dilation: 1, Groups: 1, w: w, b: make([]float32, 16)}, x, []int{1, 9, 9}, want, []int{16, 9, 9})
	for i, v := range want {
		if v < 0 {
			v = 0
		}
		if math.Abs(float64(f[i]-v)) > 1e-6 {
			t.Fatalf("stem output %d = %v, want %v", i, f[i], v)
		}
	}
}

// TestInt8PlanAllocs: Run allocates nothing (one image, a batch, and a
// conv large enough to be split into row bands over threads).
func TestInt8PlanAllocs(t *testing.T) {
	g, spec := int8TestGraph(t)
	for _, n := range []int{1, 4} {
		p, err := NewInt8Plan(g, spec, n)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, n*81)
		p.Run(x)
		if a := steadyAllocs(20, func() { p.Run(x) }); a != 0 && !raceEnabled {
			t.Errorf("batch %d: %.1f allocations per run", n, a)
		}
	}
	b := NewBuilder("big", 64, 64, 64)
	y := b.Conv(b.Input(), "pw", ConvSpec{Out: 64, K: 1, Bias: true, Act: ReLU}) // 16.8M MACs: split into bands
	g2, _ := b.Graph(y)
	c := &Int8Conv{W: make([]int8, 64*64), WScale: make([]float32, 64), Bias: make([]int32, 64)}
	for i := range c.WScale {
		c.WScale[i] = 0.01
	}
	p, err := NewInt8Plan(g2, &Int8Spec{Act: map[string]QParam{"input": {0.1, 0}, "pw": {0.1, 0}}, Conv: map[string]*Int8Conv{"pw": c}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 64*64*64)
	p.Run(x)
	if a := steadyAllocs(10, func() { p.Run(x) }); a != 0 && !raceEnabled {
		t.Errorf("banded conv: %.1f allocations per run", a)
	}
}

// TestInt8PlanSE: squeeze-excitation followed by ReLU on a uint8 value runs
// as one uint8 step (qse, no dequantisation or quantisation around it),
// and the logits equal the same network computed here step by step: the
// stem with ref.QConv, the SE's gate in float64 from the dequantised
// channel means, each value requantised by ref.Requant into the ReLU's
// parameters, the pointwise layer, pooling and the classifier.
func TestInt8PlanSE(t *testing.T) {
	b := NewBuilder("int8-se", 3, 6, 5)
	x := b.Conv(b.Input(), "stem", ConvSpec{Out: 12, K: 3, Pad: 1, Bias: true, Act: None})
	x = b.SE(x, "se", SESpec{Hidden: 4, Act: ReLU, Gate: Sigmoid, Reduce: "se.reduce", Expand: "se.expand", ConvWeights: true})
	x = b.Act(x, "relu", ReLU)
	x = b.Conv(x, "pw", ConvSpec{Out: 8, K: 1, Bias: true, Act: ReLU})
	x = b.GlobalAvgPool(x, "gap")
	x = b.Linear(x, "fc", 3, true, None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(11, 12))
	spec := &Int8Spec{Act: map[string]QParam{"input": {0.03, 110}, "stem": {0.04, 120}, "se": {0.03, 125}, "relu": {0.02, 0}, "pw": {0.05, 0}},
		Conv: map[string]*Int8Conv{}, Float: map[string][][]float32{}}
	randConv := func(name string, cout, n int) {
		c := &Int8Conv{W: make([]int8, n), WScale: make([]float32, cout), Bias: make([]int32, cout)}
		for i := range c.W {
			c.W[i] = int8(r.IntN(255) - 127)
		}
		for o := range cout {
			c.WScale[o] = float32(0.001 + 0.004*r.Float64())
			c.Bias[o] = int32(r.IntN(2001) - 1000)
		}
		spec.Conv[name] = c
	}
	randConv("stem", 12, 12*3*9)
	randConv("pw", 8, 8*12)
	rf := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(s * r.NormFloat64())
		}
		return v
	}
	w1, b1, w2, b2 := rf(4*12, 0.5), rf(4, 0.1), rf(12*4, 0.5), rf(12, 0.3)
	spec.Float["se"] = [][]float32{w1, b1, w2, b2}
	fw, fb := rf(3*8, 1), rf(3, 0.1)
	spec.Float["fc"] = [][]float32{fw, fb}

	p, err := NewInt8Plan(g, spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	steps := strings.Join(p.Steps(), "; ")
	if !strings.Contains(steps, "qse se") || strings.Contains(steps, "dequantize") || strings.Count(steps, "quantize") != 1 {
		t.Errorf("steps: %s", steps)
	}
	img := rf(3*6*5, 1)
	got, err := p.Run(img)
	if err != nil {
		t.Fatal(err)
	}
	got = append([]float32(nil), got...)
	if !raceEnabled {
		if a := steadyAllocs(20, func() { p.Run(img) }); a != 0 {
			t.Errorf("%v allocations per run", a)
		}
	}

	// The chain, written out.
	in, sq, rq, pq := spec.Act["input"], spec.Act["stem"], spec.Act["relu"], spec.Act["pw"]
	const hw = 6 * 5
	q := make([]uint8, 3*hw) // (H, W, C)
	for ch := range 3 {
		for i := range hw {
			f := math.RoundToEven(float64(img[ch*hw+i]/in.Scale)) + float64(in.Zero)
			q[i*3+ch] = uint8(max(0, min(255, f)))
		}
	}
	conv := func(name string, x []uint8, xq, yq QParam, cin, cout, k int, lo int32) []uint8 {
		c := spec.Conv[name]
		m := make([]float32, cout)
		for o := range m {
			m[o] = float32(float64(xq.Scale) * float64(c.WScale[o]) / float64(yq.Scale))
		}
		s := ref.QConvShape{H: 6, W: 5, Cin: cin, Cout: cout, K: k, KW: k, Stride: 1, Pad: k / 2, PadW: k / 2, Dilation: 1,
			Groups: 1, OutH: 6, OutW: 5, XZero: xq.Zero, YZero: yq.Zero, Lo: lo, Hi: 255}
		out := make([]uint8, hw*cout)
		ref.QConv(s, x, c.W, c.Bias, m, out)
		return out
	}
	a := conv("stem", q, in, sq, 3, 12, 3, 0)
	var mean [12]float64
	for i, v := range a {
		mean[i%12] += (float64(v) - float64(sq.Zero)) * float64(sq.Scale) / hw
	}
	var hid [4]float64
	for j := range hid {
		s := float64(b1[j])
		for ch := range 12 {
			s += float64(w1[j*12+ch]) * mean[ch]
		}
		hid[j] = math.Max(s, 0)
	}
	for i, v := range a {
		ch := i % 12
		s := float64(b2[ch])
		for j := range 4 {
			s += float64(w2[ch*4+j]) * hid[j]
		}
		gate := 1 / (1 + math.Exp(-s))
		a[i] = ref.Requant(int32(v)-sq.Zero, float32(float64(sq.Scale)*gate/float64(rq.Scale)), rq.Zero, rq.Zero, 255)
	}
	a = conv("pw", a, rq, pq, 12, 8, 1, pq.Zero)
	var pooled [8]float64
	for i, v := range a {
		pooled[i%8] += float64(int32(v)-pq.Zero) * float64(pq.Scale)
	}
	for j := range 3 {
		s := float64(fb[j])
		for k := range 8 {
			s += float64(float32(pooled[k]/hw)) * float64(fw[j*8+k])
		}
		if d := math.Abs(float64(got[j]) - s); d > 1e-5*(1+math.Abs(s)) {
			t.Errorf("logit %d = %v, want %v", j, got[j], s)
		}
	}
}
