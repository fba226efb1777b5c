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

type goldenIndex struct {
	Name    string `json:"name"`
	Shape   []int  `json:"shape"`
	Offset  int    `json:"offset"`
	NoDecay bool   `json:"no_decay"`
}

type golden struct {
	Config struct {
		Channels   [5]int `json:"channels"`
		Blocks     [4]int `json:"blocks"`
		K          int    `json:"k"`
		SEPairs    [4]int `json:"se_pairs"`
		NumClasses int    `json:"num_classes"`
		InChannels int    `json:"in_channels"`
		StemStride int    `json:"stem_stride"`
	} `json:"config"`
	Labels      []int         `json:"labels"`
	Smoothing   float64       `json:"smoothing"`
	LR          float64       `json:"lr"`
	Momentum    float64       `json:"momentum"`
	WeightDecay float64       `json:"weight_decay"`
	Nesterov    bool          `json:"nesterov"`
	Steps       int           `json:"steps"`
	Loss        float64       `json:"loss"`
	StepLosses  []float64     `json:"step_losses"`
	FinalLoss   float64       `json:"final_loss"`
	Grads       []goldenIndex `json:"grads"`
	After       []goldenIndex `json:"after"`
	NBT         float32       `json:"stage0_num_batches_tracked"`
	ParamNames  []string      `json:"param_names"`
}

const goldenDir = "testdata/golden"

func loadGolden(t *testing.T) (*golden, *model.Model, *tensor.Tensor) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(goldenDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	c := g.Config
	cfg := model.Config{Name: "train-golden", Channels: c.Channels, Blocks: c.Blocks, K: c.K, SEPairs: c.SEPairs,
		NumClasses: c.NumClasses, InChannels: c.InChannels, StemStride: c.StemStride}
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := pth.LoadFile(filepath.Join(goldenDir, "unfused.pth.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile(filepath.Join(goldenDir, "input.npy"))
	if err != nil {
		t.Fatal(err)
	}
	return &g, m, x
}

// relErr returns max|got−want| / max(max|want|, floor).
func relErr(got, want []float32, floor float64) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		s = math.Max(s, math.Abs(float64(want[i])))
	}
	return d / math.Max(s, floor)
}

const gradFloor = 0.05

func TestGoldenPyTorch(t *testing.T) { goldenCheck(t) }

// TestGoldenPyTorchFolded is TestGoldenPyTorch with every multi-branch 1×1
// block trained in the folded form (folded.go).
func TestGoldenPyTorchFolded(t *testing.T) {
	old := foldFactor
	foldFactor = 1e9
	defer func() { foldFactor = old }()
	net := goldenCheck(t)
	folded := 0
	for _, b := range net.blocks {
		if b.folded {
			folded++
		}
	}
	if folded == 0 {
		t.Fatal("no block was folded")
	}
	t.Logf("%d blocks folded", folded)
}

// goldenCheck compares one training step (and three SGD steps) with
// PyTorch's and returns the net.
func goldenCheck(t *testing.T) *Net {
	g, m, x := loadGolden(t)
	net, err := NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	params := net.Params()
	if len(params) != len(g.ParamNames) {
		t.Fatalf("%d params, PyTorch has %d", len(params), len(g.ParamNames))
	}
	for i, p := range params {
		if p.Name != g.ParamNames[i] {
			t.Fatalf("param %d is %s, PyTorch has %s", i, p.Name, g.ParamNames[i])
		}
		if p.NoDecay != g.Grads[i].NoDecay {
			t.Errorf("param %s: NoDecay %v, PyTorch groups say %v", p.Name, p.NoDecay, g.Grads[i].NoDecay)
		}
	}
	grads, err := npy.ReadFile(filepath.Join(goldenDir, "grads.npy"))
	if err != nil {
		t.Fatal(err)
	}

	step := func() float64 {
		net.ZeroGrad()
		loss, dl := CrossEntropy(net.Forward(x, true), g.Labels, g.Smoothing)
		net.Backward(dl)
		return loss
	}
	loss := step()
	if d := math.Abs(loss-g.Loss) / g.Loss; d > 1e-5 {
		t.Errorf("loss %.8f, PyTorch %.8f (rel %.2g)", loss, g.Loss, d)
	}
	worst, worstName := 0.0, ""
	for i, p := range params {
		gi := g.Grads[i]
		want := grads.Data[gi.Offset : gi.Offset+p.G.Numel()]
		// A 1×1 depthwise scale kernel feeds a BatchNorm that is invariant to
		// its scale: its exact gradient is ~0 (eps effects only) and float32
		// cancellation dominates, so errors are measured against at least
		// gradFloor, a typical gradient size of this net (0.05–2).
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
	for s := 1; s < g.Steps; s++ {
		loss := step()
		if d := math.Abs(loss-g.StepLosses[s]) / g.StepLosses[s]; d > 1e-5 {
			t.Errorf("step %d loss %.8f, PyTorch %.8f (rel %.2g)", s, loss, g.StepLosses[s], d)
		} else {
			t.Logf("step %d loss %.8f, PyTorch %.8f (rel %.2g)", s, loss, g.StepLosses[s], d)
		}
		opt.Step()
	}
	final, _ := CrossEntropy(net.Forward(x, true), g.Labels, g.Smoothing)
	if d := math.Abs(final-g.FinalLoss) / g.FinalLoss; d > 1e-5 {
		t.Errorf("final loss %.8f, PyTorch %.8f (rel %.2g)", final, g.FinalLoss, d)
	}
	after, err := npy.ReadFile(filepath.Join(goldenDir, "after.npy"))
	if err != nil {
		t.Fatal(err)
	}
	_, sd := m.StateDict()
	for _, a := range g.After {
		got := sd[a.Name]
		want := after.Data[a.Offset : a.Offset+got.Numel()]
		if e := relErr(got.Data, want, 0); e > 1e-4 {
			t.Errorf("%s after %d steps: error %.2g", a.Name, g.Steps, e)
		}
	}
	if nbt := sd["stage0.rbr_conv.0.bn.num_batches_tracked"].Data[0]; nbt != g.NBT {
		t.Errorf("num_batches_tracked %v, PyTorch %v", nbt, g.NBT)
	}
	return net
}
