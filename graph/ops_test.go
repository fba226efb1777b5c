package graph

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/tensor"
)

// opCase is testdata/ops/<case>/params.json (tools/reference/study.py
// --ops writes it with PyTorch's outputs).
type opCase struct {
	Case   string `json:"case"`
	Op     string `json:"op"`
	Inputs []struct {
		File  string `json:"file"`
		Shape []int  `json:"shape"`
	} `json:"inputs"`
	Weights map[string]struct {
		File  string `json:"file"`
		Shape []int  `json:"shape"`
	} `json:"weights"`
	Attrs  map[string]json.RawMessage `json:"attrs"`
	Output struct {
		File  string `json:"file"`
		Shape []int  `json:"shape"`
	} `json:"output"`
}

func (c *opCase) attr(name string, v any) bool {
	raw, ok := c.Attrs[name]
	if !ok {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

func (c *opCase) ints(name string) [2]int {
	var p [2]int
	if !c.attr(name, &p) {
		var one int
		c.attr(name, &one)
		p = [2]int{one, one}
	}
	return p
}

// Cases this engine has no operator for, and why.
var opSkips = map[string]string{
	"conv_k3_asym":                 "stride (2, 1) and dilation (1, 2) differ by axis; no zoo model has them",
	"avgpool_k3_s2_p1_exclude_pad": "count_include_pad=False; no zoo model uses it",
	"mobilevit_block_7x7":          "a composite, covered by mobilevit_xs's logits (arch.TestZooLogits)",
}

// TestOpsGolden: every operator against PyTorch on its golden cases
// (testdata/ops), through the reference executor and the planner.
func TestOpsGolden(t *testing.T) {
	root := filepath.Join("..", "testdata", "ops")
	dirs, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, d := range dirs {
		dir := filepath.Join(root, d.Name())
		raw, err := os.ReadFile(filepath.Join(dir, "params.json"))
		if err != nil {
			t.Fatal(err)
		}
		var c opCase
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		t.Run(c.Case, func(t *testing.T) {
			if why, ok := opSkips[c.Case]; ok {
				t.Logf("not an operator here: %s", why)
				return
			}
			read := func(f string) *tensor.Tensor {
				x, err := npy.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				return x
			}
			x := read(c.Inputs[0].File)
			want := read(c.Output.File)
			g, batch := buildOpCase(t, &c, x, read)
			if g == nil {
				t.Fatalf("no graph for op %q", c.Op)
			}
			per := len(x.Data) / batch
			if len(c.Inputs) == 2 { // concat: the two inputs side by side per image
				x2 := read(c.Inputs[1].File)
				p2 := len(x2.Data) / batch
				joined := make([]float32, 0, len(x.Data)+len(x2.Data))
				for i := 0; i < batch; i++ {
					joined = append(joined, x.Data[i*per:(i+1)*per]...)
					joined = append(joined, x2.Data[i*p2:(i+1)*p2]...)
				}
				x = &tensor.Tensor{Data: joined}
			}
			in := g.InputShape()
			xt := &tensor.Tensor{Shape: append([]int{batch}, in...), Data: x.Data}
			got, _, err := g.Ref(xt)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Data) != len(want.Data) {
				t.Fatalf("%d outputs, PyTorch has %d (%v)", len(got.Data), len(want.Data), want.Shape)
			}
			if e := maxRelErr(got.Data, want.Data); e > 1e-5 {
				t.Errorf("reference executor differs from PyTorch by %.3g", e)
			}
			p, err := NewPlan(g, batch)
			if err != nil {
				t.Fatal(err)
			}
			y, err := p.Run(xt.Data)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(y, want.Data); e > 1e-4 {
				t.Errorf("plan differs from PyTorch by %.3g", e)
			}
			ran++
		})
	}
	if ran < 25 {
		t.Errorf("only %d operator cases ran", ran)
	}
}

// buildOpCase builds the one-operator graph of c and loads its weights; it
// returns the graph and the batch size.
func buildOpCase(t *testing.T, c *opCase, x *tensor.Tensor, read func(string) *tensor.Tensor) (*Graph, int) {
	s := x.Shape
	var b *Builder
	batch := s[0]
	switch len(s) {
	case 4:
		b = NewBuilder(c.Case, s[1], s[2], s[3])
	case 3: // tokens (B, N, D) as (1, N, D) per image
		b = NewBuilder(c.Case, 1, s[1], s[2])
	}
	in := b.Input()
	var out Value
	weights := map[string]string{} // tensor key -> golden weight name
	switch c.Op {
	case "conv2d":
		k, st, pd, dl := c.ints("kernel"), c.ints("stride"), c.ints("padding"), c.ints("dilation")
		var groups int
		var bias bool
		c.attr("groups", &groups)
		c.attr("bias", &bias)
		cout := c.Weights["weight"].Shape[0]
		out = b.Conv(in, "conv", ConvSpec{Out: cout, K: k[0], KW: k[1], Stride: st[0], Pad: pd[0], PadW: pd[1], Dilation: dl[0], Groups: groups, Bias: bias})
		weights["conv.weight"], weights["conv.bias"] = "weight", "bias"
		if pd[1] == 0 && pd[0] != 0 {
			t.Skip("PadW 0 with Pad > 0 is not expressible (0 means same as Pad)")
		}
	case "avgpool", "maxpool":
		k, st, pd := c.ints("kernel"), c.ints("stride"), c.ints("padding")
		kind := MaxPool
		if c.Op == "avgpool" {
			kind = AvgPool
		}
		out = b.Pool(in, "pool", kind, k[0], st[0], pd[0])
	case "global_avgpool":
		out = b.GlobalAvgPool(in, "gap")
	case "resize":
		var mode string
		c.attr("mode", &mode)
		o := c.Output.Shape
		out = b.Upsample(in, "resize", o[2], o[3], mode == "nearest")
	case "channel_shuffle":
		var g int
		c.attr("groups", &g)
		out = b.Shuffle(in, "shuffle", g)
	case "concat":
		c1 := s[1]
		c2 := c.Inputs[1].Shape[1]
		b = NewBuilder(c.Case, c1+c2, s[2], s[3])
		in = b.Input()
		out = b.Concat("cat", b.Split(in, "a", 0, c1), b.Split(in, "b", c1, c1+c2))
	case "relu6", "hardswish", "hardsigmoid", "silu", "gelu", "sigmoid":
		a, err := ParseActivation(c.Op)
		if err != nil {
			t.Fatal(err)
		}
		out = b.Act(in, c.Op, a)
	case "layer_norm":
		var eps float64
		c.attr("eps", &eps)
		out = b.LayerNorm(in, "ln", eps)
		weights["ln.weight"], weights["ln.bias"] = "weight", "bias"
	case "mhsa":
		var heads int
		c.attr("heads", &heads)
		d := s[2]
		q := b.Linear(in, "qkv", 3*d, true, None)
		a := b.Attention(q, "attn", heads)
		out = b.Linear(a, "proj", d, true, None)
		weights["qkv.weight"], weights["qkv.bias"], weights["proj.weight"], weights["proj.bias"] = "qkv_weight", "qkv_bias", "proj_weight", "proj_bias"
	case "mobilevit_unfold":
		p := c.ints("patch")
		out = b.Unfold(in, "unfold", p[0])
	case "mobilevit_fold":
		p := c.ints("patch")
		var bt, h, w int
		c.attr("batch", &bt)
		c.attr("height", &h)
		c.attr("width", &w)
		b = NewBuilder(c.Case, s[0]/bt, s[1], s[2])
		out = b.Fold(b.Input(), "fold", p[0], h, w)
		batch = bt
	case "se":
		var gate string
		c.attr("gate", &gate)
		ga := Sigmoid
		if gate == "hardsigmoid" {
			ga = HardSigmoid
		}
		hid := c.Weights["reduce_weight"].Shape[0]
		out = b.SE(in, "se", SESpec{Hidden: hid, Act: ReLU, Gate: ga, Reduce: "se.reduce", Expand: "se.expand", ConvWeights: true})
		weights["se.reduce.weight"], weights["se.reduce.bias"], weights["se.expand.weight"], weights["se.expand.bias"] = "reduce_weight", "reduce_bias", "expand_weight", "expand_bias"
	case "dyrelu_a", "dyrelu_b", "dyshiftmax":
		hid := c.Weights["fc1_weight"].Shape[0]
		kind := DyReLU
		if c.Op == "dyshiftmax" {
			kind = DyShiftMax
		}
		out = b.Dynamic(in, "dy", kind, hid, c.Op == "dyrelu_b", 2)
		weights["dy.fc1.weight"], weights["dy.fc1.bias"], weights["dy.fc2.weight"], weights["dy.fc2.bias"] = "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"
	default:
		return nil, 0
	}
	g, err := b.Graph(out)
	if err != nil {
		t.Fatal(err)
	}
	sd := map[string]*tensor.Tensor{}
	for key, name := range weights {
		if w, ok := c.Weights[name]; ok {
			sd[key] = read(w.File)
		}
	}
	if err := g.Load(sd); err != nil {
		t.Fatal(err)
	}
	return g, batch
}
