package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// segGolden is golden.json of tools/reference/make_seg_golden.py.
type segGolden struct {
	Backbone struct {
		Channels   [5]int `json:"channels"`
		Blocks     [4]int `json:"blocks"`
		K          int    `json:"k"`
		SEPairs    [4]int `json:"se_pairs"`
		InChannels int    `json:"in_channels"`
		StemStride int    `json:"stem_stride"`
	} `json:"backbone"`
	OutputStride int   `json:"output_stride"`
	Rates        []int `json:"rates"`
	HeadChannels int   `json:"head_channels"`
	NumClasses   int   `json:"num_classes"`
	Geometry     []struct {
		Name     string `json:"name"`
		Stride   int    `json:"stride"`
		Dilation int    `json:"dilation"`
	} `json:"geometry"`
	Pixels        int           `json:"pixels"`
	LR            float64       `json:"lr"`
	Momentum      float64       `json:"momentum"`
	WeightDecay   float64       `json:"weight_decay"`
	Nesterov      bool          `json:"nesterov"`
	Steps         int           `json:"steps"`
	Loss          float64       `json:"loss"`
	StepLosses    []float64     `json:"step_losses"`
	Grads         []goldenIndex `json:"grads"`
	After         []goldenIndex `json:"after"`
	ParamNames    []string      `json:"param_names"`
	StateDictKeys []string      `json:"state_dict_keys"`
	NBT           float32       `json:"nbt"`
}

func readNpy(t *testing.T, dir, name string) *tensor.Tensor {
	t.Helper()
	x, err := npy.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// loadSegGolden builds the SegNet of a golden case with PyTorch's initial
// weights (dropout off, as the generator runs it).
func loadSegGolden(t *testing.T, dir string) (*segGolden, *SegNet) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g segGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	b := g.Backbone
	cfg := model.Config{Name: "seg-golden", Channels: b.Channels, Blocks: b.Blocks, K: b.K, SEPairs: b.SEPairs,
		InChannels: b.InChannels, StemStride: b.StemStride}
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSegNet(m, SegOptions{NumClasses: g.NumClasses, OutputStride: g.OutputStride, Rates: g.Rates,
		Channels: g.HeadChannels, Dropout: -1})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := pth.LoadFile(filepath.Join(dir, "seg.pth.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	return &g, s
}

func TestSegGoldenPyTorch(t *testing.T) {
	for _, c := range []string{"os16", "os8"} {
		t.Run(c, func(t *testing.T) { segGoldenCheck(t, filepath.Join("testdata/seg", c)) })
	}
}

// segGoldenCheck compares a SegNet with PyTorch's DeepLabV3 (torchvision's
// ASPP and head on the dilated MobileOne reference): the evaluation-mode
// logits, the training-mode logits, loss and every gradient of one step,
// the losses of three SGD steps and the weights and running statistics
// after them.
func segGoldenCheck(t *testing.T, dir string) {
	g, s := loadSegGolden(t, dir)
	// geometry: the blocks PyTorch dilated
	geo := s.Backbone.Geometry()
	if len(geo) != len(g.Geometry) {
		t.Fatalf("%d blocks, PyTorch %d", len(geo), len(g.Geometry))
	}
	for i, want := range g.Geometry {
		if got := geo[i]; got.Name != want.Name || got.Stride != want.Stride || got.Dilation != want.Dilation {
			t.Errorf("block %d: %+v, PyTorch %+v", i, got, want)
		}
	}
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
	x := readNpy(t, dir, "input.npy")
	mf := readNpy(t, dir, "mask.npy")
	mask := make([]uint8, len(mf.Data))
	for i, v := range mf.Data {
		mask[i] = uint8(v)
	}

	s.Forward(x, nil, false)
	if e := relErr(s.Logits().Data, readNpy(t, dir, "logits_eval.npy").Data, 0); e > 1e-4 {
		t.Errorf("evaluation-mode logits: error %.2g", e)
	} else {
		t.Logf("evaluation-mode logits: error %.2g", e)
	}

	s.ZeroGrad()
	loss := s.Forward(x, mask, true)
	if e := relErr(s.Logits().Data, readNpy(t, dir, "logits.npy").Data, 0); e > 1e-4 {
		t.Errorf("training-mode logits: error %.2g", e)
	} else {
		t.Logf("training-mode logits: error %.2g", e)
	}
	if s.Pixels() != g.Pixels {
		t.Errorf("%d pixels counted, PyTorch %d", s.Pixels(), g.Pixels)
	}
	if d := math.Abs(loss-g.Loss) / g.Loss; d > 1e-5 {
		t.Errorf("loss %.8f, PyTorch %.8f (rel %.2g)", loss, g.Loss, d)
	}
	s.Backward()
	grads := readNpy(t, dir, "grads.npy")
	worst, worstName := 0.0, ""
	for i, p := range params {
		gi := g.Grads[i]
		want := grads.Data[gi.Offset : gi.Offset+p.G.Numel()]
		e := relErr(p.G.Data, want, gradFloor)
		if e > worst {
			worst, worstName = e, p.Name
		}
		if e > 1e-4 {
			t.Errorf("grad %s: max error %.2g relative to its largest value", p.Name, e)
		}
	}
	t.Logf("loss %.8f (PyTorch %.8f); worst gradient error %.2g (%s)", loss, g.Loss, worst, worstName)

	opt := NewSGD(params, g.LR, g.Momentum, g.WeightDecay, g.Nesterov)
	opt.Step()
	for st := 1; st < g.Steps; st++ {
		s.ZeroGrad()
		loss := s.Forward(x, mask, true)
		s.Backward()
		if d := math.Abs(loss-g.StepLosses[st]) / g.StepLosses[st]; d > 1e-5 {
			t.Errorf("step %d loss %.8f, PyTorch %.8f (rel %.2g)", st, loss, g.StepLosses[st], d)
		}
		opt.Step()
	}
	after := readNpy(t, dir, "after.npy")
	_, sd := s.StateDict()
	worst, worstName = 0, ""
	for _, a := range g.After {
		got := sd[a.Name]
		want := after.Data[a.Offset : a.Offset+got.Numel()]
		e := relErr(got.Data, want, 0)
		if e > worst {
			worst, worstName = e, a.Name
		}
		if e > 1e-4 {
			t.Errorf("%s after %d steps: error %.2g", a.Name, g.Steps, e)
		}
	}
	t.Logf("after %d SGD steps: worst error %.2g (%s)", g.Steps, worst, worstName)
	if nbt := sd["classifier.2.num_batches_tracked"].Data[0]; nbt != g.NBT {
		t.Errorf("num_batches_tracked %v, PyTorch %v", nbt, g.NBT)
	}
}
