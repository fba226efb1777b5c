package onnx_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/format/onnx/onnxpb"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// tinySE is a small configuration with Squeeze-Excite pairs, k=2 branches
// (so skip and scale branches exist) and a classifier.
var tinySE = model.Config{Name: "", Channels: [5]int{16, 16, 32, 32, 48}, Blocks: [4]int{1, 2, 2, 1},
	K: 2, SEPairs: [4]int{0, 1, 2, 1}, NumClasses: 7, InChannels: 3, StemStride: 2}

func randomModel(t *testing.T, cfg model.Config, seed uint64) *model.Model {
	t.Helper()
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(seed)
	return m.Fuse()
}

func exportBytes(t *testing.T, m *model.Model, opts onnx.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := onnx.Export(&buf, m, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStructure(t *testing.T) {
	m := randomModel(t, tinySE, 3)
	data := exportBytes(t, m, onnx.Options{Height: 40, Width: 36, ProducerVersion: "test"})
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		t.Fatal(err)
	}
	if mp.GetIrVersion() != 8 || len(mp.OpsetImport) != 1 || mp.OpsetImport[0].GetDomain() != "" || mp.OpsetImport[0].GetVersion() != 13 {
		t.Fatalf("IR %d, opsets %v; want IR 8, opset 13", mp.GetIrVersion(), mp.OpsetImport)
	}
	meta := map[string]string{}
	for _, p := range mp.MetadataProps {
		meta[p.GetKey()] = p.GetValue()
	}
	if meta["variant"] != "custom" || meta["fused"] != "true" || !strings.Contains(meta["config"], `"se_pairs":[0,1,2,1]`) {
		t.Errorf("metadata %v", meta)
	}
	if mp.GetProducerVersion() != "test" || !strings.Contains(mp.GetDocString(), "MobileOne custom") {
		t.Errorf("producer %q, doc %q", mp.GetProducerVersion(), mp.GetDocString())
	}
	g := mp.Graph
	dims := func(vi *onnxpb.ValueInfoProto) string {
		var s []string
		for _, d := range vi.GetType().GetTensorType().GetShape().GetDim() {
			if d.GetDimParam() != "" {
				s = append(s, d.GetDimParam())
			} else {
				s = append(s, fmt.Sprint(d.GetDimValue()))
			}
		}
		return strings.Join(s, ",")
	}
	if len(g.Input) != 1 || g.Input[0].GetName() != "input" || dims(g.Input[0]) != "batch,3,40,36" {
		t.Fatalf("input %v", g.Input)
	}
	if len(g.Output) != 1 || g.Output[0].GetName() != "logits" || dims(g.Output[0]) != "batch,7" {
		t.Fatalf("output %v", g.Output)
	}

	// Every initializer holds the model's weights under its authors' key.
	keys, sd := m.StateDict()
	inits := map[string]*onnxpb.TensorProto{}
	for _, in := range g.Initializer {
		if inits[in.GetName()] != nil {
			t.Fatalf("duplicate initializer %s", in.GetName())
		}
		inits[in.GetName()] = in
	}
	if len(inits) != len(keys) {
		t.Errorf("%d initializers, state dict has %d keys", len(inits), len(keys))
	}
	for _, k := range keys {
		in := inits[k]
		if in == nil {
			t.Errorf("no initializer %s", k)
			continue
		}
		want := sd[k]
		if in.GetDataType() != int32(onnxpb.TensorProto_FLOAT) || fmt.Sprint(in.Dims) != fmt.Sprint(want.Shape) {
			t.Errorf("%s: type %d dims %v, want float %v", k, in.GetDataType(), in.Dims, want.Shape)
			continue
		}
		if len(in.RawData) != 4*len(want.Data) {
			t.Errorf("%s: %d raw bytes, want %d", k, len(in.RawData), 4*len(want.Data))
			continue
		}
		for i, v := range want.Data {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(in.RawData[4*i:])); got != v {
				t.Errorf("%s[%d] = %v, want %v", k, i, got, v)
				break
			}
		}
	}

	// Nodes are in topological order, each output defined once, and the
	// op counts follow the blocks.
	defined := map[string]bool{"input": true}
	for k := range inits {
		defined[k] = true
	}
	ops := map[string]int{}
	for _, n := range g.Node {
		ops[n.GetOpType()]++
		for _, in := range n.Input {
			if !defined[in] {
				t.Fatalf("node %s reads %s before it is defined", n.GetName(), in)
			}
		}
		for _, out := range n.Output {
			if defined[out] {
				t.Fatalf("node %s redefines %s", n.GetName(), out)
			}
			defined[out] = true
		}
	}
	if !defined["logits"] {
		t.Fatal("logits never produced")
	}
	blocks, se := len(m.Blocks()), 0
	for _, nb := range m.Blocks() {
		if nb.Block.SE != nil {
			se++
		}
	}
	want := map[string]int{"Conv": blocks + 2*se, "Relu": blocks + se, "GlobalAveragePool": 1 + se,
		"Sigmoid": se, "Mul": se, "Flatten": 1, "Gemm": 1}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Errorf("ops %v, want %v", ops, want)
	}
	// A depthwise stride-2 block has the right attributes.
	for _, n := range g.Node {
		if n.GetName() != "stage1.0.reparam_conv" {
			continue
		}
		attrs := map[string]string{}
		for _, a := range n.Attribute {
			if a.GetType() == onnxpb.AttributeProto_INT {
				attrs[a.GetName()] = fmt.Sprint(a.GetI())
			} else {
				attrs[a.GetName()] = fmt.Sprint(a.Ints)
			}
		}
		if got := fmt.Sprint(attrs); got != "map[dilations:[1 1] group:16 kernel_shape:[3 3] pads:[1 1 1 1] strides:[2 2]]" {
			t.Errorf("stage1.0 attributes %s", got)
		}
	}
}

func TestDynamicSizeAndBackbone(t *testing.T) {
	cfg := tinySE
	cfg.NumClasses = 0
	m := randomModel(t, cfg, 4)
	mp, err := onnx.Build(m, onnx.Options{DynamicSize: true})
	if err != nil {
		t.Fatal(err)
	}
	in := mp.Graph.Input[0].GetType().GetTensorType().GetShape().GetDim()
	if in[0].GetDimParam() != "batch" || in[2].GetDimParam() != "height" || in[3].GetDimParam() != "width" {
		t.Errorf("input dims %v", in)
	}
	if out := mp.Graph.Output[0]; out.GetName() != "features" {
		t.Errorf("backbone output %q, want features", out.GetName())
	}
}

func TestUnfusedIsFusedFirst(t *testing.T) {
	u, err := model.New(tinySE, false)
	if err != nil {
		t.Fatal(err)
	}
	u.InitRandom(5)
	a := exportBytes(t, u, onnx.Options{})
	b := exportBytes(t, u.Fuse(), onnx.Options{})
	if !bytes.Equal(a, b) {
		t.Error("exporting an unfused model differs from exporting its fused form")
	}
	if u.IsFused() {
		t.Error("Export changed its argument")
	}
}

func TestErrors(t *testing.T) {
	if err := onnx.Export(&bytes.Buffer{}, nil, onnx.Options{}); err == nil {
		t.Error("nil model: no error")
	}
	m := randomModel(t, tinySE, 6)
	m.Stages[1][1].Fused.Weight = tensor.New(3, 3)
	err := onnx.Export(&bytes.Buffer{}, m, onnx.Options{})
	if err == nil || !strings.Contains(err.Error(), "stage2.1.reparam_conv.weight") || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad weight shape: error %v", err)
	}
	m = randomModel(t, tinySE, 6)
	if err := onnx.Export(&bytes.Buffer{}, m, onnx.Options{Height: -1}); err == nil {
		t.Error("negative height: no error")
	}
}

// goldenDirs are the PyTorch-written test checkpoints (see tools/reference).
var goldenDirs = []struct {
	name   string
	stride int
}{{"tiny-k4", 2}, {"tiny-se", 2}, {"tiny-gray", 1}}

func goldenModel(t *testing.T, dir string, stride int) *model.Model {
	t.Helper()
	m, err := mobileone.Load(filepath.Join("..", "..", "testdata", "golden", dir, "unfused.pth.tar"),
		mobileone.LoadOptions{StemStride: stride})
	if err != nil {
		t.Fatal(err)
	}
	return m.Model
}

func writeExport(t *testing.T, path string, m *model.Model, opts onnx.Options) {
	t.Helper()
	if err := os.WriteFile(path, exportBytes(t, m, opts), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestONNXChecker runs the onnx package's checker (with shape inference)
// on exported files, when Debian's python3-onnx is installed.
func TestONNXChecker(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Skip("python3-onnx is not importable by /usr/bin/python3 (apt-get install python3-onnx enables this test)")
	}
	dir := t.TempDir()
	var files []string
	for _, g := range goldenDirs {
		p := filepath.Join(dir, g.name+".onnx")
		writeExport(t, p, goldenModel(t, g.name, g.stride), onnx.Options{DynamicSize: true})
		files = append(files, p)
	}
	p := filepath.Join(dir, "se-static.onnx")
	writeExport(t, p, randomModel(t, tinySE, 7), onnx.Options{})
	files = append(files, p)
	cfg := tinySE
	cfg.NumClasses = 0
	p = filepath.Join(dir, "backbone.onnx")
	writeExport(t, p, randomModel(t, cfg, 7), onnx.Options{DynamicSize: true})
	files = append(files, p)
	if !testing.Short() {
		s0, _ := model.Variant("s0")
		p = filepath.Join(dir, "s0.onnx")
		writeExport(t, p, randomModel(t, s0, 1), onnx.Options{})
		files = append(files, p)
	}
	script := `
import sys, onnx
for path in sys.argv[1:]:
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    out = inferred.graph.output[0].type.tensor_type.shape
    print(path, m.ir_version, m.opset_import[0].version, [d.dim_param or d.dim_value for d in out.dim])
`
	out, err := exec.Command(py, append([]string{"-c", script}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx checker: %v\n%s", err, out)
	}
	t.Logf("onnx checker:\n%s", out)
}

// ortScript finds node, onnxruntime-node and bench/peers/ort_bench.js, or
// skips the test.
func ortScript(t *testing.T) (node, script string, env []string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (apt-get install nodejs; then bench/peers/run.sh --install-only installs onnxruntime-node)")
	}
	modules := os.Getenv("MOBILEONE_ORT_NODE_MODULES")
	if modules == "" {
		home, _ := os.UserHomeDir()
		modules = filepath.Join(home, ".cache", "mobileone-peers", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "onnxruntime-node", "package.json")); err != nil {
		t.Skipf("onnxruntime-node is not installed in %s (bench/peers/run.sh --install-only installs it; MOBILEONE_ORT_NODE_MODULES points elsewhere)", modules)
	}
	script, err = filepath.Abs(filepath.Join("..", "..", "bench", "peers", "ort_bench.js"))
	if err != nil {
		t.Fatal(err)
	}
	return node, script, append(os.Environ(), "NODE_PATH="+modules)
}

// runORT runs model on x in ONNX Runtime (one thread) and returns its output.
func runORT(t *testing.T, node, script string, env []string, model string, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	in, out := model+".in.npy", model+".ort.npy"
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, "--model", model, "--npy", in, "--out", out, "--threads", "1")
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("onnxruntime: %v\n%s", err, b)
	}
	y, err := npy.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// maxRel returns max |a-b| / max |b|.
func maxRel(t *testing.T, got, want *tensor.Tensor) float64 {
	t.Helper()
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
	}
	var scale, diff float64
	for i, w := range want.Data {
		scale = math.Max(scale, math.Abs(float64(w)))
		diff = math.Max(diff, math.Abs(float64(got.Data[i])-float64(w)))
	}
	return diff / scale
}

// TestORTParity runs exported files in ONNX Runtime (through node) and
// compares the logits with the Go model's: at most 1e-4 relative to the
// logits' largest magnitude.
func TestORTParity(t *testing.T) {
	node, script, env := ortScript(t)
	dir := t.TempDir()
	type tc struct {
		name   string
		m      *model.Model
		x      *tensor.Tensor
		golden *tensor.Tensor
		opts   onnx.Options
	}
	var cases []tc
	for _, g := range goldenDirs {
		gd := filepath.Join("..", "..", "testdata", "golden", g.name)
		x, err := npy.ReadFile(filepath.Join(gd, "input.npy"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := npy.ReadFile(filepath.Join(gd, "logits.npy"))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, tc{g.name, goldenModel(t, g.name, g.stride), x, want, onnx.Options{DynamicSize: true}})
	}
	randInput := func(shape ...int) *tensor.Tensor {
		x := tensor.New(shape...)
		for i := range x.Data {
			x.Data[i] = float32(math.Sin(float64(i)*0.7311) * 2)
		}
		return x
	}
	cases = append(cases, tc{"tiny-se-random", randomModel(t, tinySE, 9), randInput(3, 3, 40, 36), nil, onnx.Options{Height: 40, Width: 36}})
	if !testing.Short() {
		for _, v := range []string{"s0", "s4"} {
			cfg, _ := model.Variant(v)
			cases = append(cases, tc{v + "-random", randomModel(t, cfg, 1), randInput(2, 3, 224, 224), nil, onnx.Options{}})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mp := filepath.Join(dir, c.name+".onnx")
			writeExport(t, mp, c.m, c.opts)
			ort := runORT(t, node, script, env, mp, c.x)
			ours, err := c.m.Forward(c.x)
			if err != nil {
				t.Fatal(err)
			}
			rel := maxRel(t, ort, ours)
			t.Logf("%s: ORT vs Go max relative logit error %.2g", c.name, rel)
			if rel > 1e-4 {
				t.Errorf("ORT logits differ from Go's: %.3g relative", rel)
			}
			if c.golden != nil {
				relG := maxRel(t, ort, c.golden)
				t.Logf("%s: ORT vs PyTorch golden %.2g", c.name, relG)
				if relG > 1e-4 {
					t.Errorf("ORT logits differ from PyTorch's: %.3g relative", relG)
				}
			}
		})
	}
}
