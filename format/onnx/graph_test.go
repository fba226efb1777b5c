package onnx_test

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// opsGraph uses every operator ExportGraph writes.
func opsGraph(t *testing.T) *graph.Graph {
	b := graph.NewBuilder("ops", 3, 24, 16)
	x := b.Conv(b.Input(), "stem", graph.ConvSpec{Out: 16, K: 3, Stride: 2, Pad: 1, BN: true, BNName: "stem_bn", Act: graph.HardSwish})
	y := b.Conv(x, "dw5", graph.ConvSpec{Out: 16, K: 5, Pad: 2, Groups: 16, BN: true, BNName: "dw5_bn", Act: graph.ReLU6})
	y = b.Conv(y, "grouped", graph.ConvSpec{Out: 16, K: 3, Pad: 1, Groups: 4, Bias: true, Act: graph.ReLU})
	y = b.Conv(y, "dilated", graph.ConvSpec{Out: 16, K: 3, Pad: 2, Dilation: 2, Bias: true, Act: graph.SiLU})
	x = b.Add(x, y, "add", graph.ReLU)
	x = b.SE(x, "se", graph.SESpec{Hidden: 4, Act: graph.ReLU, Gate: graph.HardSigmoid, Reduce: "se.fc1", Expand: "se.fc2", ConvWeights: true})
	l, r := b.Split(x, "left", 0, 8), b.Split(x, "right", 8, 16)
	r = b.Conv(r, "right.pw", graph.ConvSpec{Out: 8, K: 1, BN: true, BNName: "right.bn", Act: graph.GELU})
	x = b.Shuffle(b.Concat("cat", l, r), "shuffle", 2)
	x = b.Pool(x, "maxpool", graph.MaxPool, 3, 2, 1)
	x = b.Act(x, "sig", graph.Sigmoid)
	x = b.Pool(x, "avgpool", graph.AvgPool, 3, 1, 1)
	x = b.Dynamic(x, "dyrelu_b", graph.DyReLU, 4, true, 0)
	x = b.Dynamic(x, "dyrelu_a", graph.DyReLU, 4, false, 0)
	x = b.Dynamic(x, "dysm", graph.DyShiftMax, 4, false, 2)
	s := b.Shape(x)
	u := b.Upsample(x, "up", s[1]*2+1, s[2]*2, false)
	u = b.Upsample(u, "down", s[1], s[2], true)
	tok := b.Unfold(u, "unfold", 2)
	n := b.LayerNorm(tok, "ln", 1e-5)
	qkv := b.Linear(n, "qkv", 48, true, graph.None)
	att := b.Attention(qkv, "attn", 2)
	att = b.Linear(att, "proj", 16, true, graph.None)
	tok = b.Add(tok, att, "res", graph.None)
	x = b.Fold(tok, "fold", 2, s[1], s[2])
	x = b.GlobalAvgPool(x, "gap")
	x = b.Linear(x, "fc", 10, true, graph.None)
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(5)
	return g
}

// TestGraphORTParity: ONNX Runtime runs ExportGraph's file of a graph that
// uses every exportable operator and gives the reference executor's outputs.
func TestGraphORTParity(t *testing.T) {
	graphORTParity(t, opsGraph(t), tensor.New(2, 3, 24, 16), 1)
}

// graphORTParity exports g, runs it in ONNX Runtime on x filled with
// seeded normal values, and checks the outputs against the reference
// executor's.
func graphORTParity(t *testing.T, g *graph.Graph, x *tensor.Tensor, seed uint64) {
	t.Helper()
	node, script, env := ortScript(t)
	mp := filepath.Join(t.TempDir(), "graph.onnx")
	f, err := os.Create(mp)
	if err != nil {
		t.Fatal(err)
	}
	if err := onnx.ExportGraph(f, g, "test"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r := rand.New(rand.NewPCG(seed, seed+1))
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	ort := runORT(t, node, script, env, mp, x)
	want, _, err := g.Ref(x)
	if err != nil {
		t.Fatal(err)
	}
	rel := maxRel(t, ort, want)
	t.Logf("ORT vs reference executor: max relative error %.2g", rel)
	if rel > 1e-4 {
		t.Errorf("ORT differs from the reference executor by %.3g", rel)
	}
}

// TestGraphONNXChecker: the file passes onnx's checker with shape inference.
func TestGraphONNXChecker(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		t.Skip("python3-onnx is not importable by /usr/bin/python3 (apt-get install python3-onnx enables this test)")
	}
	p := filepath.Join(t.TempDir(), "ops.onnx")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := onnx.ExportGraph(f, opsGraph(t), "test"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	script := `
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
print([d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim])
`
	if out, err := exec.Command(py, "-c", script, p).CombinedOutput(); err != nil {
		t.Fatalf("onnx checker: %v\n%s", err, out)
	}
}

// TestGraphORTParitySeg: DeepLabV3 on MobileOne (a small backbone at output
// stride 8: dilated depthwise blocks; ASPP rates reaching outside the map;
// image pooling broadcast back; logits upsampled to the input) exported
// with ExportGraph runs in ONNX Runtime as in the reference executor.
func TestGraphORTParitySeg(t *testing.T) {
	cfg := model.Config{Name: "tiny", Channels: [5]int{16, 16, 32, 48, 64}, Blocks: [4]int{1, 2, 3, 2}, K: 1,
		SEPairs: [4]int{0, 0, 1, 1}, InChannels: 3, StemStride: 2}
	g, err := arch.DeepLabV3MobileOne(cfg, 5, 8, []int{2, 5, 13}, 72, 96)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(9)
	graphORTParity(t, g, tensor.New(1, 3, 72, 96), 3)
}

// TestGraphORTParityDet: SSDLite on MobileOne (stage3 and stage4 maps,
// extra blocks down to 1×1, depthwise-separable heads with ReLU6, each
// map's head outputs put channels-last by an Unfold and concatenated)
// exported with ExportGraph runs in ONNX Runtime as in the reference
// executor.
func TestGraphORTParityDet(t *testing.T) {
	cfg := model.Config{Name: "tiny", Channels: [5]int{16, 16, 32, 48, 64}, Blocks: [4]int{1, 2, 3, 2}, K: 1,
		SEPairs: [4]int{0, 0, 1, 1}, InChannels: 3, StemStride: 2}
	g, err := arch.SSDLiteMobileOne(cfg, 4, 0.0625, 96)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(9)
	graphORTParity(t, g, tensor.New(2, 3, 96, 96), 4)
}
