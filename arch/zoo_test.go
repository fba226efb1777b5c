package arch

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/tensor"
)

// The comparison zoo's reference data, written by tools/reference/zoo.py
// (tools/reference/README.md): the counts are small, the golden sets are
// big and git-ignored (CI generates them).
var (
	zooCounts = filepath.Join("..", "testdata", "zoo_counts.json")
	zooDir    = filepath.Join("..", "testdata", "zoo")
)

// zooTol is the largest max|got − golden| / max|golden| accepted: the
// goldens are float64 computations of the stored float32 weights, as is Ref.
const zooTol = 1e-4

// zooCount is one model's entry of zoo_counts.json; the _fused figures are
// those of a re-parameterised model (RepVGG), whose deploy form the graph is.
type zooCount struct {
	Params       *int64 `json:"params"`
	MACs224      *int64 `json:"macs_224"`
	MACs128      *int64 `json:"macs_128"`
	ParamsFused  *int64 `json:"params_fused"`
	MACs224Fused *int64 `json:"macs_224_fused"`
	MACs128Fused *int64 `json:"macs_128_fused"`
}

// TestZooCounts: every registered architecture counts exactly the
// parameters and multiply-accumulates (at 224×224 and at the goldens'
// 128×128) that the PyTorch reference counts with forward hooks.
func TestZooCounts(t *testing.T) {
	raw, err := os.ReadFile(zooCounts)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is absent: generate it with tools/reference/zoo.py --counts (see tools/reference/README.md)", zooCounts)
	}
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]zooCount
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%s: %v", zooCounts, err)
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("%s has no entry for %s", zooCounts, name)
			}
			params, m224, m128 := w.Params, w.MACs224, w.MACs128
			if w.ParamsFused != nil { // the graph is the deploy form
				params, m224, m128 = w.ParamsFused, w.MACs224Fused, w.MACs128Fused
			}
			if params == nil || m224 == nil {
				t.Fatalf("%s: the entry for %s lacks params or macs_224", zooCounts, name)
			}
			spec, _ := Get(name)
			for _, c := range []struct {
				side int
				macs *int64
			}{{224, m224}, {128, m128}} {
				if c.macs == nil {
					continue
				}
				g, err := spec.Build(c.side, c.side)
				if err != nil {
					t.Fatal(err)
				}
				if c.side == 224 && g.Params() != *params {
					t.Errorf("params %d, the reference counts %d (%+d)", g.Params(), *params, g.Params()-*params)
				}
				if g.MACs() != *c.macs {
					t.Errorf("MACs at %d×%d: %d, the reference counts %d (%+d)", c.side, c.side, g.MACs(), *c.macs, g.MACs()-*c.macs)
				}
			}
		})
	}
}

// runZoo builds name's graph for x and checks it on the golden logits.
func runZoo(t *testing.T, name string, sd map[string]*tensor.Tensor, x, want *tensor.Tensor) {
	t.Helper()
	spec, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := spec.Build(x.Shape[2], x.Shape[3])
	if err != nil {
		t.Fatal(err)
	}
	checkLogits(t, g, sd, x, want, zooTol, zooTol)
}

// checkLogits loads sd into g and compares the outputs of the reference
// executor (within refTol of want, relative to its largest value) and of
// the planned engine (within planTol, every node planned) on x.
func checkLogits(t *testing.T, g *graph.Graph, sd map[string]*tensor.Tensor, x, want *tensor.Tensor, refTol, planTol float64) {
	t.Helper()
	if err := g.Load(sd); err != nil {
		t.Fatal(err)
	}
	got, _, err := g.Ref(x)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("logits %s, golden %s", tensor.ShapeString(got.Shape), tensor.ShapeString(want.Shape))
	}
	e := relErr(got.Data, want.Data)
	t.Logf("%s at %d×%d: max relative error %.3g", g.Name, x.Shape[2], x.Shape[3], e)
	if e > refTol {
		t.Errorf("%s at %d×%d: logits differ from PyTorch's by %.3g (relative to the largest), more than %g", g.Name, x.Shape[2], x.Shape[3], e, refTol)
	}
	// The planned engine (packed kernels, float32 activations) too.
	p, err := graph.NewPlan(g, x.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	y, err := p.Run(x.Data)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(y, want.Data); e > planTol {
		t.Errorf("%s at %d×%d: the plan's logits differ from PyTorch's by %.3g, more than %g", g.Name, x.Shape[2], x.Shape[3], e, planTol)
	}
	if len(p.Unplanned) > 0 {
		t.Errorf("%s: nodes on reference code: %v", g.Name, p.Unplanned)
	}
}

func readNpy(t *testing.T, dir, file string) *tensor.Tensor {
	t.Helper()
	x, err := npy.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func readPth(t *testing.T, dir, file string) map[string]*tensor.Tensor {
	t.Helper()
	sd, err := pth.LoadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

// TestZooLogits: each architecture, given the reference's checkpoint by its
// state-dict key names, computes the reference's logits (random weights,
// 2 images of 128×128). RepVGG's train-time checkpoint goes through
// RepVGGDeploy, whose result must equal the reference's own fold
// (state_dict_fused.pth) to float32 rounding.
func TestZooLogits(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the reference executor on every network takes a minute (the full run and CI's zoo step run it)")
	}
	for _, name := range Names() {
		dir := filepath.Join(zooDir, name)
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, "state_dict.pth")); errors.Is(err, fs.ErrNotExist) {
				t.Skipf("golden set %s is absent: generate it with tools/reference/make_zoo.sh (see tools/reference/README.md)", dir)
			}
			t.Parallel()
			x, want := readNpy(t, dir, "input.npy"), readNpy(t, dir, "logits.npy")
			sd := readPth(t, dir, "state_dict.pth")
			if strings.HasPrefix(name, "repvgg_") {
				var err error
				if sd, err = RepVGGDeploy(sd); err != nil {
					t.Fatal(err)
				}
				// The conversion agrees with the reference's own fold.
				fused := readPth(t, dir, "state_dict_fused.pth")
				if len(fused) != len(sd) {
					t.Errorf("deploy state dict has %d keys, the reference's %d", len(sd), len(fused))
				}
				for k, f := range fused {
					c, ok := sd[k]
					if !ok {
						t.Errorf("deploy state dict lacks %s", k)
						continue
					}
					if e := relErr(c.Data, f.Data); e > 1e-6 {
						t.Errorf("%s differs from the reference's fold by %.3g", k, e)
					}
				}
			}
			runZoo(t, name, sd, x, want)
			if name == "mobilevit_xs" { // stage maps that are not whole patches: resized around the transformer
				runZoo(t, name, sd, readNpy(t, dir, "input_100.npy"), readNpy(t, dir, "logits_100.npy"))
			}
		})
	}
}

// TestZooStrictLoad: a checkpoint loads only if its keys are exactly the
// architecture's (but BatchNorm's num_batches_tracked); the error names
// the keys.
func TestZooStrictLoad(t *testing.T) {
	spec, err := Get("resnet18")
	if err != nil {
		t.Fatal(err)
	}
	src, err := spec.Build(32, 32)
	if err != nil {
		t.Fatal(err)
	}
	src.InitRandom(1)
	_, full := src.StateDict()
	for _, c := range []struct {
		name   string
		edit   func(sd map[string]*tensor.Tensor)
		errHas []string // nil: loads
	}{
		{"complete", func(map[string]*tensor.Tensor) {}, nil},
		{"num_batches_tracked ignored", func(sd map[string]*tensor.Tensor) {
			sd["layer1.0.bn1.num_batches_tracked"] = tensor.New()
		}, nil},
		{"missing", func(sd map[string]*tensor.Tensor) { delete(sd, "layer2.1.bn2.running_var") },
			[]string{"missing", "layer2.1.bn2.running_var"}},
		{"extra", func(sd map[string]*tensor.Tensor) { sd["layer3.0.se.fc1.weight"] = tensor.New(16, 256) },
			[]string{"does not have", "layer3.0.se.fc1.weight"}},
		{"missing and extra", func(sd map[string]*tensor.Tensor) {
			sd["head.weight"] = sd["fc.weight"]
			delete(sd, "fc.weight")
		}, []string{"fc.weight"}},
		{"shape", func(sd map[string]*tensor.Tensor) { sd["fc.bias"] = tensor.New(999) },
			[]string{"fc.bias", "(999)", "(1000)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sd := make(map[string]*tensor.Tensor, len(full))
			for k, v := range full {
				sd[k] = v
			}
			c.edit(sd)
			g, err := spec.Build(32, 32)
			if err != nil {
				t.Fatal(err)
			}
			err = g.Load(sd)
			switch {
			case c.errHas == nil && err != nil:
				t.Fatalf("Load: %v", err)
			case c.errHas != nil && err == nil:
				t.Fatalf("Load accepted the checkpoint")
			case err != nil:
				for _, s := range c.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
			}
		})
	}
}
