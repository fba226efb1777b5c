package train

import (
	"math"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// fusedInitCfg is a small backbone with every kind of block: k=2 conv
// branches, scale branches, skip BatchNorms, SE in stage 4.
var fusedInitCfg = model.Config{Name: "", Channels: [5]int{8, 8, 12, 16, 24}, Blocks: [4]int{1, 1, 2, 1}, K: 2,
	SEPairs: [4]int{0, 0, 0, 1}, InChannels: 3, StemStride: 2}

// fusedClassifier returns a random train-time classifier of cfg, fused.
func fusedClassifier(t *testing.T, cfg model.Config, seed uint64) map[string]*tensor.Tensor {
	t.Helper()
	cfg.NumClasses = 5
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(seed)
	_, sd := m.Fuse().StateDict()
	return sd
}

func newInitSegNet(t *testing.T, cfg model.Config) *SegNet {
	t.Helper()
	cfg.NumClasses = 0
	bb, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	bb.InitRandom(99)
	s, err := NewSegNet(bb, SegOptions{NumClasses: 3, Rates: []int{1, 2, 3}, Channels: 8, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLoadFusedBackboneExact: loaded from a fused classifier, the
// train-time backbone re-fuses to exactly that classifier's weights (so it
// computes its features in evaluation mode), before and after the
// calibration; after the calibration the training-mode features on the
// calibration batch are the evaluation-mode ones, which they are not
// before it.
func TestLoadFusedBackboneExact(t *testing.T) {
	fused := fusedClassifier(t, fusedInitCfg, 5)
	s := newInitSegNet(t, fusedInitCfg)
	if err := s.LoadFusedBackbone(fused); err != nil {
		t.Fatal(err)
	}
	refused := func(stage string) {
		_, got := s.Backbone.Model().Fuse().StateDict()
		for k, want := range fused {
			if strings.HasPrefix(k, "linear.") {
				continue
			}
			g, ok := got[k]
			if !ok {
				t.Fatalf("%s: re-fused backbone has no %s", stage, k)
			}
			if e := relErr(g.Data, want.Data, 1e-3); e > 1e-5 {
				t.Errorf("%s: %s differs from the fused classifier's by %.2g", stage, k, e)
			}
		}
	}
	refused("loaded")
	x := randInput(1, 4, 3, 32, 32)
	featErr := func() float64 {
		eval := s.Backbone.ForwardFeatures(x, false)
		tr := s.Backbone.ForwardFeatures(x, true)
		return relErr(tr.Data, eval.Data, 0)
	}
	if e := featErr(); e < 0.1 {
		t.Errorf("before calibration the training-mode features are already the fused ones (error %.2g): the test cannot tell", e)
	}
	if err := s.CalibrateFusedBackbone(x); err != nil {
		t.Fatal(err)
	}
	refused("calibrated")
	if e := featErr(); e > 2e-3 {
		t.Errorf("calibrated: training-mode features differ from the fused classifier's by %.2g", e)
	}
}

// TestLoadFusedBackboneRefused: a checkpoint of another architecture, or
// with keys that fit nowhere, is refused naming the key, and the net is
// left unchanged.
func TestLoadFusedBackboneRefused(t *testing.T) {
	wider := fusedInitCfg
	wider.Channels[2] = 16
	good := fusedClassifier(t, fusedInitCfg, 5)
	extra := map[string]*tensor.Tensor{}
	for k, v := range good {
		extra[k] = v
	}
	extra["stage5.0.reparam_conv.weight"] = tensor.New(1)
	missing := map[string]*tensor.Tensor{}
	for k, v := range good {
		if k != "stage3.1.reparam_conv.bias" {
			missing[k] = v
		}
	}
	for _, c := range []struct {
		name string
		sd   map[string]*tensor.Tensor
		want string
	}{
		{"wider stage2", fusedClassifier(t, wider, 5), `"stage2.1.reparam_conv.weight"`},
		{"unused key", extra, `"stage5.0.reparam_conv.weight"`},
		{"missing key", missing, `"stage3.1.reparam_conv.bias"`},
	} {
		s := newInitSegNet(t, fusedInitCfg)
		_, before := s.Backbone.Model().StateDict()
		w0 := append([]float32(nil), before["stage1.0.rbr_conv.0.conv.weight"].Data...)
		err := s.LoadFusedBackbone(c.sd)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.want)
		}
		if relErr(before["stage1.0.rbr_conv.0.conv.weight"].Data, w0, 1) != 0 {
			t.Errorf("%s: the net changed although the load failed", c.name)
		}
	}
}

// TestGreyStemToRGB: on any two RGB pixels, the RGB kernel's response
// differs by what the grey kernel's differs on their luma (normalised as
// the grey model was): equal up to a constant.
func TestGreyStemToRGB(t *testing.T) {
	mean, std := [3]float32{0.485, 0.456, 0.406}, [3]float32{0.229, 0.224, 0.225}
	gm, gs := float32(0.286), float32(0.353)
	w := tensor.New(2, 1, 1, 1)
	w.Data[0], w.Data[1] = 1.5, -0.7
	rgb, err := GreyStemToRGB(w, mean, std, gs)
	if err != nil {
		t.Fatal(err)
	}
	resp := func(p [3]float64) (grey, col [2]float64) {
		g := 0.299*p[0] + 0.587*p[1] + 0.114*p[2]
		for o := 0; o < 2; o++ {
			grey[o] = float64(w.Data[o]) * (g - float64(gm)) / float64(gs)
			for c := 0; c < 3; c++ {
				col[o] += float64(rgb.Data[o*3+c]) * (p[c] - float64(mean[c])) / float64(std[c])
			}
		}
		return
	}
	for _, c := range []struct{ a, b [3]float64 }{
		{[3]float64{0, 0, 0}, [3]float64{1, 1, 1}},
		{[3]float64{0.2, 0.9, 0.1}, [3]float64{0.7, 0.1, 0.5}},
		{[3]float64{1, 0, 0}, [3]float64{0, 0, 1}},
	} {
		ga, ca := resp(c.a)
		gb, cb := resp(c.b)
		for o := 0; o < 2; o++ {
			if d := math.Abs((ga[o] - gb[o]) - (ca[o] - cb[o])); d > 1e-5 {
				t.Errorf("%v vs %v, channel %d: grey difference %g, RGB %g", c.a, c.b, o, ga[o]-gb[o], ca[o]-cb[o])
			}
		}
	}
	if _, err := GreyStemToRGB(tensor.New(2, 3, 3, 3), mean, std, gs); err == nil {
		t.Error("an RGB kernel was taken as grey")
	}
}
