package mobileone

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// Golden files come from the independent PyTorch reference in
// tools/reference (see its README). testdata/golden holds small
// configurations and is committed; testdata/full holds the S0–S4 zoo and is
// made on demand with tools/reference/make_all.sh.

type goldenConfig struct {
	Name        string `json:"name"`
	StemStride  int    `json:"stem_stride"`
	NumClasses  int    `json:"num_classes"`
	FusedParams int    `json:"fused_params"`
	TrainParams int    `json:"train_params"`
}

func readGolden(t *testing.T, dir string) goldenConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c goldenConfig
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func mustNpy(t *testing.T, path string) *tensor.Tensor {
	t.Helper()
	x, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// relErr returns max|got-want| / max|want|, the spec's tolerance measure.
func relErr(t *testing.T, what string, got, want *tensor.Tensor) float64 {
	t.Helper()
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: shape %s, want %s", what, tensor.ShapeString(got.Shape), tensor.ShapeString(want.Shape))
	}
	var d, s float64
	for i := range got.Data {
		d = math.Max(d, math.Abs(float64(got.Data[i])-float64(want.Data[i])))
		s = math.Max(s, math.Abs(float64(want.Data[i])))
	}
	return d / math.Max(s, 1e-12)
}

const goldenTol = 1e-4

func checkGoldenDir(t *testing.T, dir string) {
	gc := readGolden(t, dir)
	x := mustNpy(t, filepath.Join(dir, "input.npy"))
	wantLogits := mustNpy(t, filepath.Join(dir, "logits.npy"))
	wantFused := mustNpy(t, filepath.Join(dir, "logits_fused.npy"))
	opts := LoadOptions{StemStride: gc.StemStride}
	cases := []struct {
		file   string
		fused  bool
		naming string
		want   *tensor.Tensor
	}{
		{"unfused.pth.tar", false, "authors", wantLogits},
		{"fused.pth.tar", true, "authors", wantFused},
		{"timm_unfused.safetensors", false, "timm", wantLogits},
		{"timm_fused.safetensors", true, "timm", wantFused},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			o := opts
			o.KeepUnfused = true
			m, err := Load(filepath.Join(dir, tc.file), o)
			if err != nil {
				t.Fatal(err)
			}
			if m.IsFused() != tc.fused || m.Naming != tc.naming {
				t.Fatalf("loaded fused=%v naming=%s, want fused=%v naming=%s", m.IsFused(), m.Naming, tc.fused, tc.naming)
			}
			wantParams := gc.TrainParams
			if tc.fused {
				wantParams = gc.FusedParams
			}
			if m.Params() != wantParams {
				t.Errorf("params = %d, PyTorch counts %d", m.Params(), wantParams)
			}
			got, err := m.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			e := relErr(t, "logits", got, tc.want)
			t.Logf("logits vs PyTorch: max rel err %.3g", e)
			if e > goldenTol {
				t.Errorf("logits differ from PyTorch: max rel err %.3g > %g", e, goldenTol)
			}
			if !tc.fused {
				feats, err := m.Features(x)
				if err != nil {
					t.Fatal(err)
				}
				for i, f := range feats {
					want := mustNpy(t, filepath.Join(dir, "features_"+string(rune('0'+i))+".npy"))
					if e := relErr(t, "features", f, want); e > goldenTol {
						t.Errorf("stage%d features differ from PyTorch: max rel err %.3g", i, e)
					}
				}
				// Our re-parameterisation against PyTorch's unfused logits.
				f := m.Fuse()
				got, err := f.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(t, "fused logits", got, wantLogits); e > goldenTol {
					t.Errorf("Go-fused logits differ from PyTorch: max rel err %.3g", e)
				}
			}
		})
	}
}

func TestGoldenSmall(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*/config.json")
	if err != nil || len(dirs) < 3 {
		t.Fatalf("expected at least 3 committed golden configurations, found %d (%v)", len(dirs), err)
	}
	for _, d := range dirs {
		dir := filepath.Dir(d)
		t.Run(filepath.Base(dir), func(t *testing.T) { checkGoldenDir(t, dir) })
	}
}

// TestGoldenZoo runs full S0–S4 parity when the reference files exist
// (tools/reference/make_all.sh writes them to testdata/full).
func TestGoldenZoo(t *testing.T) {
	for _, z := range model.Zoo {
		dir := filepath.Join("testdata", "full", z.Name)
		t.Run(z.Name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
				t.Skipf("%s absent: run tools/reference/make_all.sh (needs Debian's python3-torch) to make it", dir)
			}
			checkGoldenDir(t, dir)
			// Detection by shapes names the zoo variant.
			m, err := Load(filepath.Join(dir, "unfused.pth.tar"), LoadOptions{Variant: z.Name})
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Name != z.Name {
				t.Errorf("recognised as %q, want %q", m.Config.Name, z.Name)
			}
		})
	}
}

// TestGoldenBF16 runs the committed golden models in bfloat16
// (Precision "bf16", loaded from the authors' fused and unfused
// checkpoints) against PyTorch's computation of the same rounding
// (tools/reference/make_bf16_golden.py: bfloat16 weights and inputs of
// every convolution and linear layer, float64 sums). They agree to float32
// summation order, far closer than bfloat16 moves the logits from float32
// (which the test also checks, so that a rounding left out would show).
func TestGoldenBF16(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*/logits_bf16.npy")
	if err != nil || len(dirs) < 3 {
		t.Fatalf("expected at least 3 bfloat16 golden files, found %d (%v)", len(dirs), err)
	}
	for _, d := range dirs {
		dir := filepath.Dir(d)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			gc := readGolden(t, dir)
			x := mustNpy(t, filepath.Join(dir, "input.npy"))
			want := mustNpy(t, d)
			for _, file := range []string{"fused.pth.tar", "unfused.pth.tar"} {
				m, err := Load(filepath.Join(dir, file), LoadOptions{StemStride: gc.StemStride})
				if err != nil {
					t.Fatal(err)
				}
				f32, err := m.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				m = m.Fuse()
				if !m.IsFused() {
					t.Fatal("Fuse did not fuse")
				}
				m.Precision = "bf16"
				got, err := m.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				e, ef := relErr(t, "bf16 logits", got, want), relErr(t, "float32 logits", f32, want)
				t.Logf("%s: bf16 logits vs PyTorch's bf16: %.3g; float32 logits vs them: %.3g", file, e, ef)
				if e > 2e-5 || ef < 50*e {
					t.Errorf("%s: bf16 logits differ from PyTorch's by %.3g (float32 logits: %.3g)", file, e, ef)
				}
			}
		})
	}
}
