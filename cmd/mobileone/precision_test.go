package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// TestEvalBuiltinBF16 scores the built-in model in bfloat16 on the whole
// Fashion-MNIST test split (docs/quantization.md's accuracy table: 94.89 %
// against float32's 95.05 %).
func TestEvalBuiltinBF16(t *testing.T) {
	if _, err := os.Stat(filepath.Join(data.FashionMNISTDir, "t10k-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST not installed in %s (apt-get install dataset-fashion-mnist)", data.FashionMNISTDir)
	}
	code, out, errs := cli("eval", "--json", "--precision", "bf16")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var ev struct {
		N    int
		Top1 float64
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.N != 10000 || ev.Top1 < 94.6 || ev.Top1 > 95.3 {
		t.Errorf("built-in model in bf16: %d images, top-1 %.2f %% (want 10000, about 94.9 %%)", ev.N, ev.Top1)
	}
}

// TestPrecisionFlag: --precision on predict (images and .npy), bench (the
// MobileOne engine and a zoo model), and its errors.
func TestPrecisionFlag(t *testing.T) {
	dir := t.TempDir()
	s := zoo.Samples()[1]
	img := filepath.Join(dir, s.Name)
	if err := os.WriteFile(img, s.PNG, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli("predict", "--precision", "bf16", "--top", "1", img)
	if code != 0 || !strings.Contains(out, "Trouser") {
		t.Fatalf("predict --precision bf16: exit %d\n%s\n%s", code, out, errs)
	}
	// .npy: bf16 logits close to float32's, not equal.
	x := tensor.New(2, 1, 28, 28)
	for i := range x.Data {
		x.Data[i] = float32(i%29)/14 - 1
	}
	in := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	var logits [2]*tensor.Tensor
	for i, p := range []string{"float32", "bf16"} {
		o := filepath.Join(dir, p+".npy")
		if code, _, errs := cli("predict", "--precision", p, "--npy", in, "--out", o); code != 0 {
			t.Fatalf("predict --npy --precision %s: %s", p, errs)
		}
		var err error
		if logits[i], err = npy.ReadFile(o); err != nil {
			t.Fatal(err)
		}
	}
	var d, m float64
	for i, v := range logits[0].Data {
		d = max(d, math.Abs(float64(v-logits[1].Data[i])))
		m = max(m, math.Abs(float64(v)))
	}
	if d == 0 || d > 0.05*m {
		t.Errorf("bf16 logits differ from float32's by %.3g (max |logit| %.3g): want a bfloat16-sized difference", d, m)
	}
	for _, args := range [][]string{
		{"bench", "-m", "s0", "--size", "64", "--precision", "bf16"},
		{"bench", "-m", "mobilenet_v2", "--size", "64", "--precision", "bfloat16"},
	} {
		code, out, errs := cli(append(args, "--rounds", "1", "--runs", "3", "--trim", "0", "--json")...)
		if code != 0 {
			t.Fatalf("%v: %s", args, errs)
		}
		var res struct{ Precision string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Precision != "bf16" {
			t.Errorf("%v: precision %q (%v)", args, res.Precision, err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"predict", "--precision", "fp8", img}, "want float32 or bf16"},
		{[]string{"bench", "-m", "s0", "--precision", "half"}, "want float32 or bf16"},
		{[]string{"eval", "--precision", "int8"}, "want float32 or bf16"},
		{[]string{"predict", "-m", "resnet18", "--precision", "bf16", img}, "bench -m resnet18 --precision bf16"},
	} {
		code, _, errs := cli(c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q (want an error with %q)", c.args, code, errs, c.want)
		}
	}
}

// TestDensePrecision: segment and detect load their networks in bfloat16
// (--precision bf16): the outputs move by a bfloat16-sized amount from
// float32's, and a bad --precision is refused.
func TestDensePrecision(t *testing.T) {
	near := func(name string, f32, bf []float32) {
		t.Helper()
		var d, m float64
		for i, v := range f32 {
			d = max(d, math.Abs(float64(v-bf[i])))
			m = max(m, math.Abs(float64(v)))
		}
		if d == 0 || d > 0.05*m {
			t.Errorf("%s: bf16 outputs differ from float32's by %.3g (max %.3g)", name, d, m)
		}
	}
	g, err := arch.DeepLabV3MobileOne(segTinyConfig, 3, 16, []int{1, 2, 3}, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(4)
	keys, sd := g.StateDict()
	dir := t.TempDir()
	ck := filepath.Join(dir, "seg.safetensors")
	if err := safetensors.WriteFile(ck, keys, sd, nil, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*64*64)
	for i := range x {
		x[i] = float32(i%37)/18 - 1
	}
	var outs [2][]float32
	for i, p := range []string{"float32", "bf16"} {
		s, err := loadSegmenter(ck, segOptions{Size: 64, Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		y, err := s.plan.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = append([]float32(nil), y...)
	}
	near("segment", outs[0], outs[1])

	dg, err := arch.SSDLiteMobileOne(model.Zoo[0], 5, 0.5, 128)
	if err != nil {
		t.Fatal(err)
	}
	dg.InitRandom(2)
	_, dsd := dg.StateDict()
	x = make([]float32, 3*128*128)
	for i := range x {
		x[i] = float32(i%41)/20 - 1
	}
	for i, p := range []string{"float32", "bf16"} {
		d, err := newDetector(dsd, nil, 128, p)
		if err != nil {
			t.Fatal(err)
		}
		y, err := d.plan.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = append([]float32(nil), y...)
	}
	near("detect", outs[0], outs[1])

	img := filepath.Join(dir, "x.png")
	writePNG(t, img, 40, 30)
	for _, args := range [][]string{
		{"segment", "-w", ck, "--precision", "fp16", img},
		{"detect", "-w", ck, "--precision", "fp16", img},
	} {
		if code, _, errs := cli(args...); code == 0 || !strings.Contains(errs, "want float32 or bf16") {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
}
