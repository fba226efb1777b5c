package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// toCNHW converts (N, C, H, W) to the trainer's layout.
func toCNHW(x *tensor.Tensor) *act {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	a := &act{C: c, N: n, H: h, W: w, Data: make([]float32, x.Numel())}
	transpose(x.Data, n, c*h*w, a.Data)
	return a
}

// fromCNHW converts the trainer's layout to (N, C, H, W).
func fromCNHW(a *act) *tensor.Tensor {
	t := tensor.New(a.N, a.C, a.H, a.W)
	transpose(a.Data, a.C*a.H*a.W, a.N, t.Data)
	return t
}

type opCase struct {
	Output struct {
		Shape []int `json:"shape"`
	} `json:"output"`
}

// TestBilinearPyTorchOps checks the bilinear resize (align_corners=False)
// against PyTorch's F.interpolate on the operator cases of testdata/ops.
func TestBilinearPyTorchOps(t *testing.T) {
	for _, c := range []string{"bilinear_scale2", "bilinear_to_7x7", "bilinear_to_8x8", "bilinear_to_9x5"} {
		dir := filepath.Join("..", "testdata", "ops", c)
		raw, err := os.ReadFile(filepath.Join(dir, "params.json"))
		if err != nil {
			t.Fatal(err)
		}
		var p opCase
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		in := toCNHW(readNpy(t, dir, "input.npy"))
		want := readNpy(t, dir, "output.npy")
		oh, ow := p.Output.Shape[2], p.Output.Shape[3]
		out := &act{C: in.C, N: in.N, H: oh, W: ow, Data: make([]float32, in.C*in.N*oh*ow)}
		newBilinear(in.H, in.W, oh, ow).forward(in.Data, in.C, in.N, out.Data)
		if e := relErr(fromCNHW(out).Data, want.Data, 0); e > 1e-6 {
			t.Errorf("%s: error %.2g", c, e)
		}
	}
}

// TestDilatedConvPyTorchOps checks a dilated strided depthwise convolution
// against PyTorch's on testdata/ops/conv_k3_s2_p2_d2_dw.
func TestDilatedConvPyTorchOps(t *testing.T) {
	dir := filepath.Join("..", "testdata", "ops", "conv_k3_s2_p2_d2_dw")
	x := toCNHW(readNpy(t, dir, "input.npy"))
	w := readNpy(t, dir, "weight.npy")
	want := readNpy(t, dir, "output.npy")
	op := convOp{Cin: 6, Cout: 6, K: 3, S: 2, P: 2, D: 2, DW: true}
	oh, ow := op.outSize(x.H, x.W)
	z := &act{C: 6, N: x.N, H: oh, W: ow, Data: make([]float32, 6*x.N*oh*ow)}
	var ws convWork
	op.forward(x, w.Data, z.Data, &ws)
	if !tensor.SameShape([]int{x.N, 6, oh, ow}, want.Shape) {
		t.Fatalf("output %dx%d, PyTorch %v", oh, ow, want.Shape)
	}
	if e := relErr(fromCNHW(z).Data, want.Data, 0); e > 1e-6 {
		t.Errorf("error %.2g", e)
	}
}

// TestBilinearBackward checks that backward is forward's adjoint
// (⟨up(x), r⟩ = ⟨x, upᵀ(r)⟩) and matches finite differences, for
// upsampling and downsampling.
func TestBilinearBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range [][4]int{{3, 3, 48, 40}, {5, 6, 40, 48}, {7, 5, 3, 4}, {1, 1, 6, 5}} {
		h, w, oh, ow := c[0], c[1], c[2], c[3]
		ch, n := 2, 3
		x := randVec(r, ch*h*w*n, 1)
		g := randVec(r, ch*oh*ow*n, 1)
		up := newBilinear(h, w, oh, ow)
		y := make([]float32, len(g))
		up.forward(x, ch, n, y)
		dx := make([]float32, len(x))
		up.backward(g, ch, n, dx)
		lhs, rhs := dot64(y, g), dot64(x, dx)
		if math.Abs(lhs-rhs) > 1e-5*math.Max(1, math.Abs(lhs)) {
			t.Errorf("%v: ⟨up(x), g⟩ %.8g, ⟨x, upᵀ(g)⟩ %.8g", c, lhs, rhs)
		}
		loss := func() float64 {
			up.forward(x, ch, n, y)
			return dot64(y, g)
		}
		fdCheck(t, "bilinear dx", loss, x, dx, 1e-2, 1e-4, 30)
	}
}

// TestPoolBranchBackward checks the image-pooling branch's two new passes
// (global average pool, broadcast = bilinear upsampling of a 1×1 map)
// against their adjoint identities and finite differences.
func TestPoolBranchBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	c, h, w, n := 3, 5, 4, 2
	x := &act{C: c, N: n, H: h, W: w, Data: randVec(r, c*h*w*n, 1)}
	g := randVec(r, c*n, 1)
	p := make([]float32, c*n)
	globalPool(x, p)
	// the pool against a plain mean
	for ch := 0; ch < c; ch++ {
		for b := 0; b < n; b++ {
			var s float64
			for y := 0; y < h; y++ {
				for xx := 0; xx < w; xx++ {
					s += float64(x.Data[x.at(ch, b, y, xx)])
				}
			}
			if d := math.Abs(s/float64(h*w) - float64(p[ch*n+b])); d > 1e-6 {
				t.Errorf("pool (%d, %d): %g, mean %g", ch, b, p[ch*n+b], s/float64(h*w))
			}
		}
	}
	dx := make([]float32, len(x.Data))
	globalPoolBackward(g, c, h*w, n, dx)
	fdCheck(t, "pool dx", func() float64 { globalPool(x, p); return dot64(p, g) }, x.Data, dx, 1e-2, 1e-4, 30)

	// broadcast: the bilinear resize of a 1×1 map
	v := randVec(r, c*n, 1)
	out := make([]float32, c*h*w*n)
	broadcast(v, c, h*w, n, out)
	ref := make([]float32, len(out))
	newBilinear(1, 1, h, w).forward(v, c, n, ref)
	if e := relErr(out, ref, 0); e > 1e-6 { // PyTorch's weights λ and 1−λ on the same pixel round
		t.Errorf("broadcast differs from a bilinear resize of 1×1 maps: %.2g", e)
	}
	gb := randVec(r, len(out), 1)
	dv := make([]float32, len(v))
	broadcastBackward(gb, c, h*w, n, dv)
	fdCheck(t, "broadcast dv", func() float64 { broadcast(v, c, h*w, n, out); return dot64(out, gb) }, v, dv, 1e-2, 1e-4, 30)
}

// TestPixelCrossEntropy checks the loss against a float64 computation over
// (N, H, W) masks with ignored pixels, its gradient against finite
// differences, and the edge cases.
func TestPixelCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	k, h, w, n := 4, 5, 7, 3
	p := h * w * n
	logits := randVec(r, k*p, 2)
	mask := make([]uint8, p)
	for i := range mask {
		mask[i] = uint8(r.IntN(k))
		if r.Float64() < 0.2 {
			mask[i] = IgnoreIndex
		}
	}
	// reference: PyTorch's definition, image by image, pixel by pixel
	var want float64
	count := 0
	for b := 0; b < n; b++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				lab := mask[(b*h+y)*w+x]
				if lab == IgnoreIndex {
					continue
				}
				j := (y*w+x)*n + b
				var s float64
				for cl := 0; cl < k; cl++ {
					s += math.Exp(float64(logits[cl*p+j]))
				}
				want += math.Log(s) - float64(logits[int(lab)*p+j])
				count++
			}
		}
	}
	want /= float64(count)
	d := make([]float32, k*p)
	got, cnt := pixelCrossEntropy(logits, k, h, w, n, mask, d)
	if cnt != count || math.Abs(got-want) > 1e-9*want {
		t.Errorf("loss %.12g over %d pixels, want %.12g over %d", got, cnt, want, count)
	}
	for b := 0; b < n; b++ {
		for i := 0; i < h*w; i++ {
			if mask[b*h*w+i] == IgnoreIndex {
				for cl := 0; cl < k; cl++ {
					if d[cl*p+i*n+b] != 0 {
						t.Fatalf("gradient at ignored pixel %d of image %d", i, b)
					}
				}
			}
		}
	}
	tmp := make([]float32, k*p)
	fdCheck(t, "dlogits", func() float64 { l, _ := pixelCrossEntropy(logits, k, h, w, n, mask, tmp); return l },
		logits, d, 1e-2, 1e-4, 60)

	all := make([]uint8, p)
	for i := range all {
		all[i] = IgnoreIndex
	}
	if l, c := pixelCrossEntropy(logits, k, h, w, n, all, d); l != 0 || c != 0 || dot64(d, d) != 0 {
		t.Errorf("all ignored: loss %g over %d pixels", l, c)
	}
	defer func() {
		if e := recover(); e == nil || !strings.Contains(e.(string), "label 4") {
			t.Errorf("label out of range: %v", e)
		}
	}()
	mask[3] = 4
	pixelCrossEntropy(logits, k, h, w, n, mask, d)
}

func TestDropout(t *testing.T) {
	d := dropout{p: 0.3, seed: 9}
	y := make([]float32, 10000)
	for i := range y {
		y[i] = 1
	}
	d.forward(y, 5)
	dropped := 0
	for _, v := range y {
		switch {
		case v == 0:
			dropped++
		case math.Abs(float64(v)-1/0.7) > 1e-6:
			t.Fatalf("kept value %g, want 1/(1−p)", v)
		}
	}
	if f := float64(dropped) / float64(len(y)); math.Abs(f-0.3) > 0.02 {
		t.Errorf("dropped %.3f, want 0.3", f)
	}
	first := append([]float32(nil), d.mask...)
	d.forward(make([]float32, len(y)), 5)
	if relErr(d.mask, first, 0) != 0 {
		t.Error("the same step drew another mask")
	}
	d.forward(make([]float32, len(y)), 6)
	if relErr(d.mask, first, 0) == 0 {
		t.Error("the next step drew the same mask")
	}
	g := make([]float32, len(y))
	for i := range g {
		g[i] = 2
	}
	d.backward(g)
	for i, v := range g {
		if v != 2*d.mask[i] {
			t.Fatalf("backward: %g at %d, mask %g", v, i, d.mask[i])
		}
	}
}

func tinySegNet(t *testing.T, opt SegOptions, seed uint64) *SegNet {
	t.Helper()
	m, err := model.New(segBackbone, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(seed)
	s, err := NewSegNet(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randMask(seed uint64, n, k int) []uint8 {
	r := rand.New(rand.NewPCG(seed, 1))
	m := make([]uint8, n)
	for i := range m {
		m[i] = uint8(r.IntN(k))
		if r.Float64() < 0.2 {
			m[i] = IgnoreIndex
		}
	}
	return m
}

// TestSegNetFiniteDifference checks the whole backward pass (upsampling,
// classifier, 3×3 layer, dropout, projection, the concatenation, the four
// conv branches, the image-pooling branch, the dilated backbone) against
// central differences of the training-mode loss, with dropout on (the same
// mask for every evaluation).
func TestSegNetFiniteDifference(t *testing.T) {
	s := tinySegNet(t, SegOptions{NumClasses: 3, OutputStride: 8, Rates: []int{1, 2, 3}, Channels: 4, Dropout: 0.2, Seed: 3}, 7)
	x := randInput(6, 2, 3, 32, 32)
	mask := randMask(2, 2*32*32, 3)
	loss := func() float64 {
		s.DropoutStep = 0
		return s.Forward(x, mask, true)
	}
	s.ZeroGrad()
	loss()
	s.Backward()
	n := 0
	for i, p := range s.Params() {
		head := strings.HasPrefix(p.Name, "classifier.")
		if !head && (i%7 != 0 || strings.HasSuffix(p.Name, "rbr_scale.conv.weight")) {
			continue
		}
		n++
		fdCheckSkip(t, p.Name, loss, p.W.Data, p.G.Data, 1e-3, 5e-2, 6, nil, true)
	}
	if n < 30 {
		t.Errorf("checked only %d parameters", n)
	}
}

func TestSegStateDictRoundTrip(t *testing.T) {
	opt := SegOptions{NumClasses: 3, Rates: []int{1, 2, 3}, Channels: 4}
	a := tinySegNet(t, opt, 1)
	x := randInput(1, 2, 3, 32, 24)
	mask := randMask(1, 2*32*24, 3)
	a.Forward(x, mask, true) // running statistics and num_batches_tracked move
	_, sd := a.StateDict()
	b := tinySegNet(t, SegOptions{NumClasses: 3, Rates: []int{1, 2, 3}, Channels: 4, Seed: 99}, 2)
	if err := b.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	a.Forward(x, nil, false)
	b.Forward(x, nil, false)
	if e := relErr(b.Logits().Data, a.Logits().Data, 0); e != 0 {
		t.Errorf("loaded net differs: %.2g", e)
	}
	if got := sdValue(t, b, "classifier.0.project.1.num_batches_tracked"); got != 1 {
		t.Errorf("num_batches_tracked %g after loading, want 1", got)
	}
	// Predict is the argmax of the logits.
	pred := b.Predict(x)
	lg := b.Logits()
	for i, v := range pred {
		img, pix := i/(32*24), i%(32*24)
		best := 0
		for cl := 1; cl < 3; cl++ {
			if lg.Data[(img*3+cl)*32*24+pix] > lg.Data[(img*3+best)*32*24+pix] {
				best = cl
			}
		}
		if int(v) != best {
			t.Fatalf("pixel %d: predicted %d, argmax %d", i, v, best)
		}
	}
	// strict loading
	del := func(k string) map[string]*tensor.Tensor {
		m := map[string]*tensor.Tensor{}
		for kk, v := range sd {
			if kk != k {
				m[kk] = v
			}
		}
		return m
	}
	for _, k := range []string{"classifier.0.convs.4.1.weight", "backbone.stage4.2.rbr_conv.1.conv.weight"} {
		if err := b.LoadStateDict(del(k)); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("missing %s: %v", k, err)
		}
	}
	extra := del("")
	extra["classifier.3.weight"] = tensor.New(1)
	if err := b.LoadStateDict(extra); err == nil || !strings.Contains(err.Error(), "classifier.3.weight") {
		t.Errorf("unexpected key: %v", err)
	}
	bad := del("")
	bad["classifier.4.weight"] = tensor.New(5, 4, 1, 1)
	if err := b.LoadStateDict(bad); err == nil || !strings.Contains(err.Error(), "classifier.4.weight") {
		t.Errorf("wrong shape: %v", err)
	}
}

// sdValue is the first value of a state_dict tensor of s.
func sdValue(t *testing.T, s *SegNet, k string) float32 {
	t.Helper()
	_, sd := s.StateDict()
	v, ok := sd[k]
	if !ok {
		t.Fatalf("no key %s", k)
	}
	return v.Data[0]
}

func TestSegBadUse(t *testing.T) {
	s := tinySegNet(t, SegOptions{NumClasses: 3, Rates: []int{1, 2, 3}, Channels: 4}, 1)
	x := randInput(1, 2, 3, 32, 32)
	mustPanic := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			e := recover()
			if e == nil || !strings.Contains(fmt.Sprint(e), want) {
				t.Errorf("%s: panic %v, want one mentioning %q", what, e, want)
			}
		}()
		f()
	}
	s.Forward(x, randMask(1, 2*32*32, 3), true)
	s.Forward(x, nil, true)
	mustPanic("Backward without a loss", "with a mask", s.Backward)
	s.Forward(x, randMask(1, 2*32*32, 3), false)
	mustPanic("Backward after evaluation", "training-mode", s.Backward)
	mustPanic("one image", "classifier.0.convs.4.2", func() { s.Forward(randInput(1, 1, 3, 32, 32), randMask(1, 32*32, 3), true) })
	mustPanic("mask size", "mask values", func() { s.Forward(x, make([]uint8, 10), true) })
	mustPanic("channels", "input must be", func() { s.Forward(randInput(1, 2, 1, 32, 32), nil, false) })
}

func TestSegOptions(t *testing.T) {
	o, err := SegOptions{NumClasses: 2}.withDefaults()
	// torchvision's DeepLabHead: rates 12, 24, 36, 256 channels, dropout 0.5
	if err != nil || o.OutputStride != 16 || o.Channels != 256 || o.Dropout != 0.5 || len(o.Rates) != 3 ||
		o.Rates[0] != 12 || o.Rates[1] != 24 || o.Rates[2] != 36 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o.Rates[0] = 1
	if DefaultSegRates[0] != 12 {
		t.Error("the options share DefaultSegRates' storage")
	}
	for _, bad := range []SegOptions{{NumClasses: 0}, {NumClasses: 2, OutputStride: 4}, {NumClasses: 2, Rates: []int{1, 2}},
		{NumClasses: 2, Rates: []int{0, 1, 2}}, {NumClasses: 2, Dropout: 1}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	m, _ := model.New(tinyConfig, false) // has a classifier
	if _, err := NewSegNet(m, SegOptions{NumClasses: 2}); err == nil || !strings.Contains(err.Error(), "classifier") {
		t.Errorf("backbone with a classifier: %v", err)
	}
}

// TestFusedStateDict checks that the fused backbone weights, run with the
// dense geometry (strides, dilations, paddings), give the unfused
// backbone's evaluation-mode features, and that the head's keys are
// StateDict's.
func TestFusedStateDict(t *testing.T) {
	for _, os := range []int{16, 8} {
		s := tinySegNet(t, SegOptions{NumClasses: 3, OutputStride: os, Rates: []int{1, 2, 3}, Channels: 4}, 11)
		x := randInput(9, 2, 3, 40, 32)
		s.Forward(x, randMask(3, 2*40*32, 3), true) // move the running statistics off their initial values
		want := s.Backbone.ForwardFeatures(x, false)
		keys, sd := s.FusedStateDict()
		cfg := s.Backbone.Model().Config
		names, specs := cfg.Specs()
		geo, _ := DenseGeometry(cfg, os)
		a := toCNHW(x)
		for i, sp := range specs {
			p := "backbone." + names[i]
			w, ok := sd[p+".reparam_conv.weight"]
			if !ok {
				t.Fatalf("no key %s.reparam_conv.weight in %v", p, keys)
			}
			bias := sd[p+".reparam_conv.bias"]
			op := convOp{Cin: sp.InC, Cout: sp.OutC, K: sp.K, S: geo[i].Stride, P: geo[i].Pad, D: geo[i].Dilation, DW: sp.Groups > 1}
			oh, ow := op.outSize(a.H, a.W)
			out := &act{C: sp.OutC, N: a.N, H: oh, W: ow, Data: make([]float32, sp.OutC*a.N*oh*ow)}
			var ws convWork
			op.forward(a, w.Data, out.Data, &ws)
			m := out.M()
			for c := 0; c < sp.OutC; c++ {
				for j := c * m; j < (c+1)*m; j++ {
					out.Data[j] += bias.Data[c]
				}
			}
			if sp.SE {
				se := &seParams{c: sp.OutC, hid: sd[p+".se.reduce.bias"].Numel(), wr: sd[p+".se.reduce.weight"].Data,
					br: sd[p+".se.reduce.bias"].Data, we: sd[p+".se.expand.weight"].Data, be: sd[p+".se.expand.bias"].Data}
				g := make([]float32, len(out.Data))
				se.forward(out.Data, a.N, oh*ow, g)
				out.Data = g
			}
			reluInPlace(out.Data)
			a = out
		}
		if e := relErr(fromCNHW(a).Data, want.Data, 0); e > 1e-5 {
			t.Errorf("output stride %d: fused features differ from the unfused: %.2g", os, e)
		}
		hk, hsd := s.StateDict()
		n := 0
		for _, k := range hk {
			if strings.HasPrefix(k, "classifier.") {
				n++
				if !slices.Equal(sd[k].Data, hsd[k].Data) || &sd[k].Data[0] == &hsd[k].Data[0] {
					t.Errorf("%s: not a copy of the net's tensor", k)
				}
			}
		}
		if len(keys) != len(sd) || n == 0 {
			t.Errorf("%d keys, %d tensors, %d head keys", len(keys), len(sd), n)
		}
	}
}

// TestSegLoadBackbone loads a classification model's train-time weights
// (with its linear.* keys) into a SegNet's backbone.
func TestSegLoadBackbone(t *testing.T) {
	cls := segBackbone
	cls.NumClasses = 10
	m, err := model.New(cls, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(21)
	_, sd := m.StateDict()
	s := tinySegNet(t, SegOptions{NumClasses: 3, Channels: 4}, 1)
	if err := s.LoadBackbone(sd); err != nil {
		t.Fatal(err)
	}
	_, got := s.StateDict()
	for _, k := range []string{"stage0.rbr_conv.0.conv.weight", "stage4.3.se.expand.bias", "stage3.2.rbr_conv.1.bn.running_var"} {
		if !slices.Equal(got["backbone."+k].Data, sd[k].Data) {
			t.Errorf("%s not loaded", k)
		}
	}
	delete(sd, "stage2.0.rbr_scale.conv.weight")
	if err := s.LoadBackbone(sd); err == nil || !strings.Contains(err.Error(), "stage2.0.rbr_scale.conv.weight") {
		t.Errorf("missing key: %v", err)
	}
}

// TestSegBF16Step runs a SegNet step with the bfloat16 products (their Go
// twin where the CPU has no bfloat16 unit): the loss agrees with float32 to
// bfloat16 precision, and differs (the bfloat16 path ran).
func TestSegBF16Step(t *testing.T) {
	opt := SegOptions{NumClasses: 3, Rates: []int{1, 2, 3}, Channels: 16, Dropout: -1}
	s32 := tinySegNet(t, opt, 4)
	s16 := tinySegNet(t, opt, 4)
	s16.Backbone.setBF16(true)
	s16.setHeadBF16(true)
	x := randInput(2, 8, 3, 128, 128) // bf16MinCols columns in the head (8·8·8)
	mask := randMask(5, 8*128*128, 3)
	l32 := s32.Forward(x, mask, true)
	l16 := s16.Forward(x, mask, true)
	s16.Backward()
	if math.Abs(l32-l16) > 1e-2*l32 || l32 == l16 {
		t.Errorf("loss %v with bfloat16, %v in float32: want within 1 %%, not equal", l16, l32)
	}
}
