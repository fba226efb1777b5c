package arch

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/model"
)

func relErr(a, b []float32) float64 {
	var d, m float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d / m
}

// TestMobileOneGraphGolden: the authors' fused checkpoints of the golden
// configurations, loaded into the MobileOne graph by their key names, give
// PyTorch's logits through the reference executor and the planner.
func TestMobileOneGraphGolden(t *testing.T) {
	for _, name := range []string{"tiny-k4", "tiny-se", "tiny-gray"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "golden", name)
			raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var cfg model.Config
			if err := json.Unmarshal(raw, &cfg); err != nil {
				t.Fatal(err)
			}
			x, err := npy.ReadFile(filepath.Join(dir, "input.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(filepath.Join(dir, "logits_fused.npy"))
			if err != nil {
				t.Fatal(err)
			}
			sd, err := pth.LoadFile(filepath.Join(dir, "fused.pth.tar"))
			if err != nil {
				t.Fatal(err)
			}
			g, err := MobileOne(cfg, x.Shape[2], x.Shape[3])
			if err != nil {
				t.Fatal(err)
			}
			checkLogits(t, g, sd, x, want, 1e-5, 1e-4)
			if g.Params() != int64(cfg.Params()) || g.MACs() != cfg.MACs(x.Shape[2], x.Shape[3]) {
				t.Errorf("params %d MACs %d, the model's table says %d and %d", g.Params(), g.MACs(), cfg.Params(), cfg.MACs(x.Shape[2], x.Shape[3]))
			}
		})
	}
}

// TestMobileOneZooCounts: S0–S4 as graphs count what the paper's table
// (model.Config, checked against it) counts.
func TestMobileOneZooCounts(t *testing.T) {
	for _, v := range []string{"s0", "s1", "s2", "s3", "s4"} {
		cfg, _ := model.Variant(v)
		s, err := Get("mobileone_" + v)
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.Build(224, 224)
		if err != nil {
			t.Fatal(err)
		}
		if g.Params() != int64(cfg.Params()) || g.MACs() != cfg.MACs(224, 224) {
			t.Errorf("%s: params %d MACs %d, want %d and %d", v, g.Params(), g.MACs(), cfg.Params(), cfg.MACs(224, 224))
		}
	}
}
