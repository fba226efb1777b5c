package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/model"
)

// detGolden is golden.json of tools/reference/make_det_golden.py.
type detGolden struct {
	Backbone struct {
		Channels   [5]int `json:"channels"`
		Blocks     [4]int `json:"blocks"`
		K          int    `json:"k"`
		SEPairs    [4]int `json:"se_pairs"`
		InChannels int    `json:"in_channels"`
		StemStride int    `json:"stem_stride"`
	} `json:"backbone"`
	Width        float64  `json:"width"`
	NumClasses   int      `json:"num_classes"`
	Size         int      `json:"size"`
	FeatureSizes [][2]int `json:"feature_sizes"`
	Anchors      int      `json:"anchors"`
	Targets      []struct {
		Boxes  [][4]float32 `json:"boxes"`
		Labels []int        `json:"labels"`
	} `json:"targets"`
	Detections []struct {
		Boxes  [][4]float32 `json:"boxes"`
		Scores []float32    `json:"scores"`
		Labels []int        `json:"labels"`
	} `json:"detections"`
	First struct {
		Box       float64 `json:"bbox_regression"`
		Class     float64 `json:"classification"`
		Positives int     `json:"positives"`
	} `json:"first"`
	StepLosses    []float64     `json:"step_losses"`
	LR            float64       `json:"lr"`
	Momentum      float64       `json:"momentum"`
	WeightDecay   float64       `json:"weight_decay"`
	Steps         int           `json:"steps"`
	Grads         []goldenIndex `json:"grads"`
	After         []goldenIndex `json:"after"`
	ParamNames    []string      `json:"param_names"`
	StateDictKeys []string      `json:"state_dict_keys"`
}

const detGoldenDir = "testdata/det/tiny"

// loadDetGolden builds the SSDNet of the golden case with PyTorch's weights.
func loadDetGolden(t *testing.T) (*detGolden, *SSDNet) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(detGoldenDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g detGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	b := g.Backbone
	cfg := model.Config{Name: "det-golden", Channels: b.Channels, Blocks: b.Blocks, K: b.K, SEPairs: b.SEPairs,
		InChannels: b.InChannels, StemStride: b.StemStride}
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSSDNet(m, SSDOptions{NumClasses: g.NumClasses, Width: g.Width})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := pth.LoadFile(filepath.Join(detGoldenDir, "det.pth.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	return &g, s
}

func (g *detGolden) targets() []detect.Target {
	ts := make([]detect.Target, len(g.Targets))
	for i, tg := range g.Targets {
		for _, b := range tg.Boxes {
			ts[i].Boxes = append(ts[i].Boxes, detect.Box(b))
		}
		ts[i].Labels = tg.Labels
	}
	return ts
}

// TestSSDGoldenPyTorch compares SSDNet with torchvision's SSD (SSDLiteHead,
// extra blocks, on the MobileOne reference): the key and parameter lists,
// the evaluation-mode head outputs and final detections, the training-mode
// outputs, both losses and every gradient of one step, the loss of the
// second SGD step and the weights and running statistics after two.
func TestSSDGoldenPyTorch(t *testing.T) {
	g, s := loadDetGolden(t)
	keys, _ := s.StateDict()
	if len(keys) != len(g.StateDictKeys) {
		t.Fatalf("%d state_dict keys, PyTorch %d", len(keys), len(g.StateDictKeys))
	}
	for i, k := range keys {
		if k != g.StateDictKeys[i] {
			t.Fatalf("state_dict key %d is %s, PyTorch %s", i, k, g.StateDictKeys[i])
		}
	}
	params := s.Params()
	if len(params) != len(g.ParamNames) {
		t.Fatalf("%d params, PyTorch %d", len(params), len(g.ParamNames))
	}
	for i, p := range params {
		if p.Name != g.ParamNames[i] || p.NoDecay != g.Grads[i].NoDecay {
			t.Fatalf("param %d is %s (no decay %v), PyTorch %s (%v)", i, p.Name, p.NoDecay, g.ParamNames[i], g.Grads[i].NoDecay)
		}
	}
	x := readNpy(t, detGoldenDir, "input.npy")

	if _, err := s.Forward(x, nil, false); err != nil {
		t.Fatal(err)
	}
	for i, fs := range s.FeatureSizes() {
		if fs != g.FeatureSizes[i] {
			t.Errorf("map %d is %v, PyTorch %v", i, fs, g.FeatureSizes[i])
		}
	}
	if len(s.Anchors()) != g.Anchors {
		t.Fatalf("%d anchors, PyTorch %d", len(s.Anchors()), g.Anchors)
	}
	for _, c := range []struct {
		name      string
		got, want []float32
	}{{"eval logits", s.Logits(), readNpy(t, detGoldenDir, "cls_eval.npy").Data},
		{"eval regressions", s.Regressions(), readNpy(t, detGoldenDir, "reg_eval.npy").Data}} {
		if e := relErr(c.got, c.want, 0); e > 1e-4 {
			t.Errorf("%s: error %.2g", c.name, e)
		} else {
			t.Logf("%s: error %.2g", c.name, e)
		}
	}
	checkDetections(t, g, s)

	s.ZeroGrad()
	loss, err := s.Forward(x, g.targets(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want []float32
	}{{"train logits", s.Logits(), readNpy(t, detGoldenDir, "cls.npy").Data},
		{"train regressions", s.Regressions(), readNpy(t, detGoldenDir, "reg.npy").Data}} {
		if e := relErr(c.got, c.want, 0); e > 1e-4 {
			t.Errorf("%s: error %.2g", c.name, e)
		}
	}
	if loss.Positives != g.First.Positives {
		t.Errorf("%d positives, PyTorch %d", loss.Positives, g.First.Positives)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"box loss", loss.Box, g.First.Box}, {"class loss", loss.Class, g.First.Class}} {
		if d := math.Abs(c.got-c.want) / c.want; d > 1e-5 {
			t.Errorf("%s %.8f, PyTorch %.8f (rel %.2g)", c.name, c.got, c.want, d)
		}
	}
	if err := s.Backward(); err != nil {
		t.Fatal(err)
	}
	grads := readNpy(t, detGoldenDir, "grads.npy")
	worst, worstName := 0.0, ""
	for i, p := range params {
		gi := g.Grads[i]
		e := relErr(p.G.Data, grads.Data[gi.Offset:gi.Offset+p.G.Numel()], gradFloor)
		if e > worst {
			worst, worstName = e, p.Name
		}
		// 1e-3: PyTorch's own float32 run of this case is 4.9e-4 off its
		// float64 run; the Go kernels (-tags purego) sum in another order
		// than the AVX2 ones and reach 5e-4 on the tiny stage-1 maps.
		if e > 1e-3 {
			t.Errorf("grad %s: max error %.2g relative to its largest value", p.Name, e)
		}
	}
	t.Logf("loss %.8f (PyTorch %.8f); worst gradient error %.2g (%s)", loss.Total(), g.StepLosses[0], worst, worstName)

	opt := NewSGD(params, g.LR, g.Momentum, g.WeightDecay, false)
	opt.Step()
	for st := 1; st < g.Steps; st++ {
		s.ZeroGrad()
		loss, err := s.Forward(x, g.targets(), true)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Backward(); err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(loss.Total()-g.StepLosses[st]) / g.StepLosses[st]; d > 1e-4 {
			t.Errorf("step %d loss %.8f, PyTorch %.8f (rel %.2g)", st, loss.Total(), g.StepLosses[st], d)
		}
		opt.Step()
	}
	after := readNpy(t, detGoldenDir, "after.npy")
	_, sd := s.StateDict()
	worst, worstName = 0, ""
	for _, a := range g.After {
		got := sd[a.Name]
		e := relErr(got.Data, after.Data[a.Offset:a.Offset+got.Numel()], 0)
		if e > worst {
			worst, worstName = e, a.Name
		}
		// The second step's gradient of this tiny detector is sensitive
		// (hard-negative mining, BatchNorm over 1×1 maps): PyTorch's own
		// float32 run lands 0.6 % away from its float64 one here.
		if e > 2e-2 {
			t.Errorf("%s after %d steps: error %.2g", a.Name, g.Steps, e)
		}
	}
	t.Logf("after %d SGD steps: worst error %.2g (%s)", g.Steps, worst, worstName)
}

// checkDetections compares detect.Postprocess on the net's evaluation-mode
// outputs with torchvision's postprocess_detections: the same number per
// image, and the first 100 (best scores) the same boxes, labels and scores.
// Further down, float32 against float64 may reorder near-equal scores.
func checkDetections(t *testing.T, g *detGolden, s *SSDNet) {
	t.Helper()
	k, na := g.NumClasses, len(s.Anchors())
	for i, want := range g.Detections {
		dets, err := detect.Postprocess(s.Logits()[i*na*k:(i+1)*na*k], s.Regressions()[i*na*4:(i+1)*na*4], s.Anchors(),
			k, g.Size, g.Size, detect.PostOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(dets) != len(want.Scores) {
			t.Errorf("image %d: %d detections, torchvision %d", i, len(dets), len(want.Scores))
			continue
		}
		for j := range min(100, len(dets)) {
			d := dets[j]
			if d.Label != want.Labels[j] || math.Abs(float64(d.Score-want.Scores[j])) > 1e-5 {
				t.Errorf("image %d detection %d: label %d score %g, torchvision %d %g", i, j, d.Label, d.Score, want.Labels[j], want.Scores[j])
				break
			}
			for c := range 4 {
				if math.Abs(float64(d.Box[c]-want.Boxes[j][c])) > 1e-3 {
					t.Errorf("image %d detection %d: box %v, torchvision %v", i, j, d.Box, want.Boxes[j])
					break
				}
			}
		}
	}
}
