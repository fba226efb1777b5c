package train

import (
	"math"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

func tinySSDBackbone(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.New(model.Config{Name: "ssd-tiny", Channels: [5]int{8, 8, 12, 16, 24}, Blocks: [4]int{1, 1, 1, 1},
		K: 1, InChannels: 3, StemStride: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSSDNetErrors(t *testing.T) {
	m := tinySSDBackbone(t)
	for _, c := range []struct {
		name string
		opt  SSDOptions
		want string
	}{
		{"one class", SSDOptions{NumClasses: 1}, "classes"},
		{"five maps", SSDOptions{NumClasses: 3, Boxes: detect.DefaultBoxes{AspectRatios: [][]int{{2}, {2}, {2}, {2}, {2}}}}, "6 feature maps"},
	} {
		if _, err := NewSSDNet(m, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	s, err := NewSSDNet(m, SSDOptions{NumClasses: 3, Width: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Backward(); err == nil {
		t.Error("Backward before any Forward: no error")
	}
	ok := []detect.Target{{Boxes: []detect.Box{{4, 4, 30, 30}}, Labels: []int{1}}, {}}
	for _, c := range []struct {
		name     string
		x        *tensor.Tensor
		targets  []detect.Target
		training bool
		want     string
	}{
		{"wrong channels", tensor.New(2, 1, 64, 64), nil, false, "input must be"},
		{"one image in training", tensor.New(1, 3, 64, 64), ok[:1], true, "at least 2 images"},
		{"targets for another batch", tensor.New(2, 3, 64, 64), ok[:1], true, "1 targets for 2 images"},
		{"label out of range", tensor.New(2, 3, 64, 64), []detect.Target{{Boxes: []detect.Box{{4, 4, 30, 30}}, Labels: []int{3}}, {}}, true, "label 3"},
		{"empty box", tensor.New(2, 3, 64, 64), []detect.Target{{Boxes: []detect.Box{{4, 4, 4, 30}}, Labels: []int{1}}, {}}, true, "no area"},
	} {
		_, err := s.Forward(c.x, c.targets, c.training)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if err := s.Backward(); err == nil {
		t.Error("Backward after a failed loss: no error")
	}
	if _, err := s.Forward(tensor.New(2, 3, 64, 64), ok, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Backward(); err != nil {
		t.Fatal(err)
	}
}

// TestSSDStateDictRoundTrip: a net's state_dict loads into a fresh net
// (same outputs); a missing, an unexpected and a misshapen key are errors
// naming the key.
func TestSSDStateDictRoundTrip(t *testing.T) {
	a, err := NewSSDNet(tinySSDBackbone(t), SSDOptions{NumClasses: 3, Width: 0.05, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSSDNet(tinySSDBackbone(t), SSDOptions{NumClasses: 3, Width: 0.05, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range a.Params() {
		for j := range p.W.Data {
			p.W.Data[j] += float32((i+j)%5) * 0.01
		}
	}
	_, sd := a.StateDict()
	if err := b.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	x := tensor.New(2, 3, 64, 64)
	for i := range x.Data {
		x.Data[i] = float32(i%7) - 3
	}
	a.Forward(x, nil, false)
	la := append([]float32(nil), a.Logits()...)
	b.Forward(x, nil, false)
	if e := relErr(b.Logits(), la, 1); e != 0 || len(la) == 0 {
		t.Errorf("loaded net's logits differ by %.2g", e)
	}
	key := "head.regression_head.module_list.3.1.weight"
	for _, c := range []struct {
		name string
		edit func(map[string]*tensor.Tensor)
		want string
	}{
		{"missing", func(m map[string]*tensor.Tensor) { delete(m, key) }, "missing key \"" + key},
		{"unexpected", func(m map[string]*tensor.Tensor) { m["head.extra.weight"] = tensor.New(1) }, "unexpected key \"head.extra.weight"},
		{"shape", func(m map[string]*tensor.Tensor) { m[key] = tensor.New(3, 3) }, key},
	} {
		m := map[string]*tensor.Tensor{}
		for k, v := range sd {
			m[k] = v
		}
		c.edit(m)
		if err := b.LoadStateDict(m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

// TestSSDFusedGraph: after a few training steps (BatchNorm statistics
// moved), the fused detector (FusedStateDict on arch.SSDLiteMobileOne's
// graph) gives the unfused net's evaluation-mode outputs and detections.
func TestSSDFusedGraph(t *testing.T) {
	m, err := model.New(model.Config{Name: "ssd-tiny", Channels: [5]int{8, 8, 12, 16, 32}, Blocks: [4]int{1, 1, 1, 1},
		K: 2, SEPairs: [4]int{0, 0, 0, 1}, InChannels: 3, StemStride: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	const size, classes = 64, 3
	s, err := NewSSDNet(m, SSDOptions{NumClasses: classes, Width: 0.05, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(3, 3, size, size)
	for i := range x.Data {
		x.Data[i] = float32((i*7919)%13)/6 - 1
	}
	targets := []detect.Target{{Boxes: []detect.Box{{4, 4, 30, 40}}, Labels: []int{1}}, {},
		{Boxes: []detect.Box{{10, 20, 60, 60}, {0, 0, 20, 20}}, Labels: []int{2, 1}}}
	opt := NewSGD(s.Params(), 0.05, 0.9, 0, false)
	for range 3 {
		s.ZeroGrad()
		if _, err := s.Forward(x, targets, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Backward(); err != nil {
			t.Fatal(err)
		}
		opt.Step()
	}
	s.Forward(x, nil, false)
	g, err := arch.SSDLiteMobileOne(m.Config, classes, 0.05, size)
	if err != nil {
		t.Fatal(err)
	}
	_, sd := s.FusedStateDict()
	if err := g.Load(sd); err != nil {
		t.Fatal(err)
	}
	p, err := graph.NewPlan(g, 3)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Run(x.Data)
	if err != nil {
		t.Fatal(err)
	}
	per, a := len(out)/3, len(s.Anchors())
	for i := range 3 {
		logits, regs, err := arch.SSDLiteSplit(out[i*per:(i+1)*per], classes, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		wl, wr := s.Logits()[i*a*classes:(i+1)*a*classes], s.Regressions()[i*a*4:(i+1)*a*4]
		if e := relErr(logits, wl, 1e-3); e > 1e-4 {
			t.Errorf("image %d: fused logits differ by %.2g", i, e)
		}
		if e := relErr(regs, wr, 1e-3); e > 1e-4 {
			t.Errorf("image %d: fused regressions differ by %.2g", i, e)
		}
		post := detect.PostOptions{ScoreThresh: 0.2}
		df, _ := detect.Postprocess(logits, regs, s.Anchors(), classes, size, size, post)
		du, _ := detect.Postprocess(wl, wr, s.Anchors(), classes, size, size, post)
		if len(df) != len(du) || len(du) == 0 {
			t.Errorf("image %d: %d fused detections, %d unfused", i, len(df), len(du))
			continue
		}
		for j := range du {
			if df[j].Label != du[j].Label || math.Abs(float64(df[j].Score-du[j].Score)) > 1e-4 {
				t.Errorf("image %d detection %d: fused %+v, unfused %+v", i, j, df[j], du[j])
				break
			}
		}
	}
}
