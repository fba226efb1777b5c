package arch

import (
	"testing"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
)

// TestSegPlanned: every variant's DeepLabV3 at output strides 16 and 8 runs
// with every node planned (the fast kernels), at a size whose maps are
// larger than some of the rates and smaller than others.
func TestSegPlanned(t *testing.T) {
	for _, v := range []string{"s0", "s4"} {
		for _, os := range []int{16, 8} {
			cfg, _ := model.Variant(v)
			g, err := DeepLabV3MobileOne(cfg, 21, os, nil, 160, 224)
			if err != nil {
				t.Fatal(err)
			}
			g.InitRandom(1)
			p, err := graph.NewPlan(g, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Unplanned) > 0 {
				t.Errorf("%s at output stride %d: on reference code: %v", v, os, p.Unplanned)
			}
			if s := g.OutputShape(); s[0] != 21 || s[1] != 160 || s[2] != 224 {
				t.Errorf("%s: output %v", v, s)
			}
		}
	}
	if _, err := DeepLabV3MobileOne(model.Zoo[0], 21, 4, nil, 64, 64); err == nil {
		t.Error("output stride 4 accepted")
	}
	if _, err := DeepLabV3MobileOne(model.Zoo[0], 0, 16, nil, 64, 64); err == nil {
		t.Error("0 classes accepted")
	}
	if _, err := DeepLabV3MobileOne(model.Zoo[0], 21, 16, []int{6, 0}, 64, 64); err == nil {
		t.Error("rate 0 accepted")
	}
}
