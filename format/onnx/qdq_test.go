package onnx_test

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/tensor"
)

// synthImages are deterministic stripes-and-blobs 28×28 grey images,
// normalised like Fashion-MNIST (so the test needs no data set).
type synthImages struct{ n int }

func (s synthImages) Len() int { return s.n }
func (s synthImages) Image(i int) ([]float32, error) {
	x := make([]float32, 28*28)
	for y := range 28 {
		for xx := range 28 {
			v := 0.5 + 0.5*math.Sin(float64(xx*(i%5+1))/4+float64(y*(i%3+1))/5)
			if (xx-14)*(xx-14)+(y-14)*(y-14) < 40+i*7 {
				v *= 0.3
			}
			x[y*28+xx] = float32((v - 0.286) / 0.353)
		}
	}
	return x, nil
}

// TestInt8QDQORTParity exports the int8 built-in model (default
// calibration) as a QDQ graph, runs it in ONNX Runtime and compares with
// our int8 plan, two ways: with graph optimisation disabled (ORT executes
// the QDQ graph literally: DequantizeLinear, float Conv, QuantizeLinear)
// and with ORT's own int8 kernels (QLinearConv after fusion).
//
// Tolerance: 10% of the largest logit and the same top-1 class on every
// image. Neither ORT run does our exact integer arithmetic: the literal
// run sums dequantised products in float32, the int8 kernels re-derive
// each layer's multiplier in float32, and a float stem's output is summed
// in a different order; near a requantisation tie any of these flips a
// uint8 code by one, and flips propagate through 43 layers. Such flips
// are far below the quantisation error itself (logits SQNR ≈ 20 dB: about
// 10% of the logits' magnitude RMS), while a wrong scale, zero point, axis
// or bias scale in the export changes the logits by their own size.
//
// Not asserted: ORT's int8 kernels with an int8 stem. On AVX2 without VNNI
// they use VPMADDUBSW, which saturates int16 pair sums (255·127·2 > 32767)
// and the stem's full-range input codes hit it (microsoft/onnxruntime#16105,
// #24220): logged only.
func TestInt8QDQORTParity(t *testing.T) {
	node, script, env := ortScript(t)
	m, err := zoo.Default()
	if err != nil {
		t.Fatal(err)
	}
	imgs := synthImages{16}
	cal, err := quant.Calibrate(m, imgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, floatFirst := range []bool{false, true} {
		q, err := cal.Quantize(quant.Options{FloatFirst: floatFirst})
		if err != nil {
			t.Fatal(err)
		}
		g, err := q.Graph(28, 28)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "int8.onnx")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := onnx.ExportInt8(f, g, q.Spec, "test"); err != nil {
			t.Fatal(err)
		}
		f.Close()
		const n = 8
		x := tensor.New(n, 1, 28, 28)
		for i := range n {
			img, _ := imgs.Image(i + 3)
			copy(x.Data[i*784:], img)
		}
		p, err := q.NewPlan(n, 28, 28)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := p.Run(x.Data)
		if err != nil {
			t.Fatal(err)
		}
		want := &tensor.Tensor{Shape: []int{n, 10}, Data: append([]float32(nil), ours...)}
		got := runORT(t, node, script, env, path, x)
		rel := maxRel(t, got, want)
		lit := runORTOpt(t, node, script, env, path, x, "disabled")
		relLit := maxRel(t, lit, want)
		t.Logf("float first %v: ORT int8 kernels vs ours: max difference %.3g of the largest logit; ORT running the QDQ graph literally in float: %.3g",
			floatFirst, rel, relLit)
		const tol = 0.1
		if relLit > tol {
			t.Errorf("float first %v: ORT's literal run of the QDQ graph differs from ours by %.3g (tolerance %g)", floatFirst, relLit, tol)
		}
		sameTop1(t, "literal", lit, want, n)
		if floatFirst {
			if rel > tol {
				t.Errorf("ORT's int8 logits differ from ours by %.3g of the largest", rel)
			}
			sameTop1(t, "int8 kernels", got, want, n)
		}
	}
}

func sameTop1(t *testing.T, what string, got, want *tensor.Tensor, n int) {
	t.Helper()
	c := len(want.Data) / n
	for i := range n {
		if a, b := argmax(got.Data[i*c:(i+1)*c]), argmax(want.Data[i*c:(i+1)*c]); a != b {
			t.Errorf("%s: image %d: ORT top-1 %d, ours %d", what, i, a, b)
		}
	}
}

func argmax(x []float32) int {
	b := 0
	for i, v := range x {
		if v > x[b] {
			b = i
		}
	}
	return b
}

// runORTOpt is runORT with ONNX Runtime's graph optimisation level.
func runORTOpt(t *testing.T, node, script string, env []string, model string, x *tensor.Tensor, level string) *tensor.Tensor {
	t.Helper()
	in, out := model+".in.npy", model+"."+level+".npy"
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, "--model", model, "--npy", in, "--out", out, "--threads", "1", "--optimization", level)
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
