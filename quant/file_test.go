package quant

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/internal/zoo"
)

var (
	calOnce sync.Once
	calOne  *Calibration
	calErr  error
)

// builtinInt8 quantises the built-in model, calibrated once per test
// binary on 12 test images (calibration is the slow part).
func builtinInt8(t *testing.T, opts Options) (*Calibration, *Model) {
	t.Helper()
	calOnce.Do(func() {
		m, err := zoo.Default()
		if err != nil {
			calErr = err
			return
		}
		calOne, calErr = Calibrate(m, testImages{12})
	})
	if calErr != nil {
		t.Fatal(calErr)
	}
	cal := calOne
	q, err := cal.Quantize(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cal, q
}

// TestInt8BuiltinAgreesWithFloat: the int8 built-in model gives the float
// model's class on the test images and its logits are close (SQNR), with
// the stem in int8 (zero point) and in float. Without constant folding
// the logits are far worse (the failure constant folding fixes).
func TestInt8BuiltinAgreesWithFloat(t *testing.T) {
	if testing.Short() {
		t.Skip("four quantisations and reports of the built-in model (about a minute under -race)")
	}
	for _, c := range []struct {
		opts    Options
		minSQNR float64
		maxSQNR float64
	}{
		{Options{Method: MinMax}, 15, math.Inf(1)},
		{Options{Method: MinMax, FloatFirst: true}, 15, math.Inf(1)},
		{Options{Method: Percentile}, 12, math.Inf(1)},
		{Options{Method: MinMax, NoConstantFold: true}, -100, 12},
	} {
		cal, q := builtinInt8(t, c.opts)
		r, err := cal.Report(q, 6)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v: logits SQNR %.1f dB, agreement %.0f%%", c.opts, r.OutputSQNR, 100*r.Agreement)
		if r.OutputSQNR < c.minSQNR || r.OutputSQNR > c.maxSQNR {
			t.Errorf("%+v: logits SQNR %.1f dB, want in [%g, %g]", c.opts, r.OutputSQNR, c.minSQNR, c.maxSQNR)
		}
		if c.minSQNR > 0 && r.Agreement < 0.8 {
			t.Errorf("%+v: top-1 agreement %.2f", c.opts, r.Agreement)
		}
		if len(r.Layers) != 43 {
			t.Errorf("report has %d layers, want the 43 convolutions", len(r.Layers))
		}
		first := r.Layers[0]
		if want := map[bool]string{true: "float", false: "int8"}[c.opts.FloatFirst]; first.Precision != want {
			t.Errorf("stem precision %s, want %s", first.Precision, want)
		}
	}
}

// TestFoldConstantsExact: folding constant input channels into the bias
// leaves a 1×1 convolution's float output unchanged.
func TestFoldConstantsExact(t *testing.T) {
	b := graph.NewBuilder("fold", 3, 2, 2)
	x := b.Conv(b.Input(), "pw", graph.ConvSpec{Out: 2, K: 1, Bias: true})
	g, err := b.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	nd := g.Nodes[1]
	w := []float32{1, 200, -3, 0.5, -150, 2}
	bias := []float32{0.25, -1}
	o := newObserver()
	in := []float32{1, 2, 3, 4, 0.7, 0.7, 0.7, 0.7, 5, 6, 7, 8} // channel 1 is constant 0.7
	o.add(in)
	o.addChannels(in, 3)
	fw, fb := foldConstants(w, bias, nd, o)
	if fw[1] != 0 || fw[4] != 0 || fw[0] != 1 || w[1] != 200 {
		t.Fatalf("folded weights %v (original %v)", fw, w)
	}
	for p := range 4 {
		for oc := range 2 {
			want, got := float64(bias[oc]), float64(fb[oc])
			for c := range 3 {
				want += float64(w[oc*3+c]) * float64(in[c*4+p])
				got += float64(fw[oc*3+c]) * float64(in[c*4+p])
			}
			if math.Abs(want-got) > 1e-4 {
				t.Errorf("pixel %d out %d: %v after folding, %v before", p, oc, got, want)
			}
		}
	}
	// A 3×3 convolution (padding) is left alone.
	b2 := graph.NewBuilder("fold3", 3, 2, 2)
	g2, _ := b2.Graph(b2.Conv(b2.Input(), "c", graph.ConvSpec{Out: 1, K: 3, Pad: 1}))
	w3 := make([]float32, 27)
	w3[13] = 9
	if fw, _ := foldConstants(w3, []float32{0}, g2.Nodes[1], o); fw[13] != 9 {
		t.Error("a padded 3x3 convolution was folded")
	}
}

// TestInt8SaveLoad: a saved int8 model loads back with the same
// parameters and runs to the same logits, bit for bit.
func TestInt8SaveLoad(t *testing.T) {
	_, q := builtinInt8(t, Options{Method: Entropy})
	path := filepath.Join(t.TempDir(), "m.int8.safetensors")
	if err := q.Save(path); err != nil {
		t.Fatal(err)
	}
	if !IsInt8(path) {
		t.Fatal("IsInt8 does not recognise the file")
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Method != Entropy || back.Images != 12 || len(back.Labels) != 10 || back.Preprocess == nil {
		t.Errorf("metadata: method %q images %d labels %d", back.Method, back.Images, len(back.Labels))
	}
	x := make([]float32, 2*784)
	for i := range 2 {
		img, _ := testImages{}.Image(i + 20)
		copy(x[i*784:], img)
	}
	run := func(m *Model) []float32 {
		p, err := m.NewPlan(2, 28, 28)
		if err != nil {
			t.Fatal(err)
		}
		y, err := p.Run(x)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), y...)
	}
	a, b := run(q), run(back)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d: %v after loading, %v before", i, b[i], a[i])
		}
	}
}

// TestInt8LoadRejects: corrupt or mismatched files are errors naming the
// problem, never panics.
func TestInt8LoadRejects(t *testing.T) {
	_, q := builtinInt8(t, Options{})
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := q.Save(good); err != nil {
		t.Fatal(err)
	}
	raw, err := safetensors.ReadRawFile(good)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name string, f func(ts map[string]safetensors.RawTensor, meta map[string]string)) string {
		ts := map[string]safetensors.RawTensor{}
		for k, v := range raw.Tensors {
			ts[k] = v
		}
		meta := map[string]string{}
		for k, v := range raw.Metadata {
			meta[k] = v
		}
		f(ts, meta)
		p := filepath.Join(dir, name)
		if err := safetensors.WriteRawFile(p, ts, meta); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const conv = "stage2.3.reparam_conv"
	cases := []struct {
		name string
		path string
		want string
	}{
		{"missing weight scale", edit("a", func(ts map[string]safetensors.RawTensor, _ map[string]string) { delete(ts, conv+".weight_scale") }), `missing tensor "` + conv + `.weight_scale"`},
		{"missing activation scale", edit("b", func(ts map[string]safetensors.RawTensor, _ map[string]string) {
			delete(ts, conv+".output_scale")
			delete(ts, conv+".output_zero_point")
		}), "no quantisation for the output of " + conv},
		{"bias as float", edit("c", func(ts map[string]safetensors.RawTensor, _ map[string]string) {
			b := ts[conv+".bias"]
			b.DType = safetensors.F32
			ts[conv+".bias"] = b
		}), "dtype F32, want I32"},
		{"wrong shape", edit("d", func(ts map[string]safetensors.RawTensor, _ map[string]string) {
			s := ts[conv+".weight_scale"]
			s.Shape = []int{len(s.Data) / 8, 2}
			ts[conv+".weight_scale"] = s
		}), "has shape"},
		{"zero scale", edit("e", func(ts map[string]safetensors.RawTensor, _ map[string]string) {
			ts[conv+".output_scale"] = safetensors.RawTensor{DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}
		}), "out of range"},
		{"NaN weight scale", edit("f", func(ts map[string]safetensors.RawTensor, _ map[string]string) {
			s := ts[conv+".weight_scale"]
			d := append([]byte(nil), s.Data...)
			copy(d, []byte{0, 0, 0xc0, 0x7f})
			s.Data = d
			ts[conv+".weight_scale"] = s
		}), "non-finite"},
		{"unused tensor", edit("g", func(ts map[string]safetensors.RawTensor, _ map[string]string) {
			ts["extra.weight"] = safetensors.RawTensor{DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}
		}), "unused tensors: extra.weight"},
		{"not int8", edit("h", func(_ map[string]safetensors.RawTensor, m map[string]string) { m[MetaPrecision] = "float32" }), "not an int8 model"},
		{"bad config", edit("i", func(_ map[string]safetensors.RawTensor, m map[string]string) { m["config"] = "{" }), "config"},
	}
	for _, c := range cases {
		_, err := Load(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// Truncated at every few hundred bytes: always an error.
	b, _ := os.ReadFile(good)
	for n := 0; n < len(b); n += 997 {
		p := filepath.Join(dir, "trunc")
		os.WriteFile(p, b[:n], 0o644)
		if _, err := Load(p); err == nil {
			t.Fatalf("truncated to %d bytes: loaded", n)
		}
	}
	// A float reader refuses the int8 file instead of misreading it.
	if _, err := safetensors.Read(bytes.NewReader(b), int64(len(b))); err == nil {
		t.Error("the float safetensors reader accepted an int8 file")
	}
}
