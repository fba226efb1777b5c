package train

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// segBackbone is a tiny backbone whose stages 3 and 4 have several pairs,
// so that dilation reaches blocks after a stage's first one.
var segBackbone = model.Config{Name: "seg-tiny", Channels: [5]int{8, 8, 12, 16, 24}, Blocks: [4]int{1, 1, 2, 2}, K: 2,
	SEPairs: [4]int{0, 0, 0, 1}, NumClasses: 0, InChannels: 3, StemStride: 2}

func TestDenseGeometry(t *testing.T) {
	str := func(geo []BlockGeometry) string {
		var b strings.Builder
		for _, g := range geo {
			fmt.Fprintf(&b, "%s:%d/%d/%d ", g.Name, g.Stride, g.Dilation, g.Pad)
		}
		return strings.TrimSpace(b.String())
	}
	want := map[int]string{
		32: "stage0:2/1/1 stage1.0:2/1/1 stage1.1:1/1/0 stage2.0:2/1/1 stage2.1:1/1/0 stage3.0:2/1/1 stage3.1:1/1/0 stage3.2:1/1/1 stage3.3:1/1/0 stage4.0:2/1/1 stage4.1:1/1/0 stage4.2:1/1/1 stage4.3:1/1/0",
		// torchvision's replace_stride_with_dilation=[False, False, True]
		16: "stage0:2/1/1 stage1.0:2/1/1 stage1.1:1/1/0 stage2.0:2/1/1 stage2.1:1/1/0 stage3.0:2/1/1 stage3.1:1/1/0 stage3.2:1/1/1 stage3.3:1/1/0 stage4.0:1/1/1 stage4.1:1/1/0 stage4.2:1/2/2 stage4.3:1/1/0",
		// [False, True, True]
		8: "stage0:2/1/1 stage1.0:2/1/1 stage1.1:1/1/0 stage2.0:2/1/1 stage2.1:1/1/0 stage3.0:1/1/1 stage3.1:1/1/0 stage3.2:1/2/2 stage3.3:1/1/0 stage4.0:1/2/2 stage4.1:1/1/0 stage4.2:1/4/4 stage4.3:1/1/0",
	}
	for os, w := range want {
		geo, err := DenseGeometry(segBackbone, os)
		if err != nil {
			t.Fatal(err)
		}
		if got := str(geo); got != w {
			t.Errorf("output stride %d:\n got %s\nwant %s", os, got, w)
		}
	}
	if _, err := DenseGeometry(segBackbone, 4); err == nil {
		t.Error("output stride 4 accepted")
	}
}

func TestForwardFeaturesStride(t *testing.T) {
	_, net := tinyNet(t, segBackbone, 4)
	x := randInput(3, 2, 3, 64, 48)
	for _, c := range []struct{ os, h, w int }{{32, 2, 2}, {16, 4, 3}, {8, 8, 6}} {
		if err := net.SetOutputStride(c.os); err != nil {
			t.Fatal(err)
		}
		f := net.ForwardFeatures(x, false)
		if !tensor.SameShape(f.Shape, []int{2, 24, c.h, c.w}) {
			t.Errorf("output stride %d: features %v", c.os, f.Shape)
		}
	}
	// Output stride 32 is the classifier's backbone: model.Features.
	if err := net.SetOutputStride(32); err != nil {
		t.Fatal(err)
	}
	got := net.ForwardFeatures(x, false)
	feats, err := net.Model().Features(x)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got.Data, feats[len(feats)-1].Data, 0); e > 1e-5 {
		t.Errorf("features differ from model.Features: %.2g", e)
	}
}

// TestBackwardFeaturesFiniteDifference checks the backward pass through the
// dilated backbone (output stride 8: stride-1 first blocks without skip,
// dilations 2 and 4, SE) against central differences of a training-mode
// loss Σ r·features.
func TestBackwardFeaturesFiniteDifference(t *testing.T) {
	_, net := tinyNet(t, segBackbone, 5)
	if err := net.SetOutputStride(8); err != nil {
		t.Fatal(err)
	}
	x := randInput(4, 3, 3, 32, 32)
	f := net.ForwardFeatures(x, true)
	r := randInput(5, f.Shape...)
	loss := func() float64 { return dot64(net.ForwardFeatures(x, true).Data, r.Data) }
	net.ZeroGrad()
	net.ForwardFeatures(x, true)
	net.BackwardFeatures(r.Clone())
	n := 0
	for _, p := range net.Params() {
		if !strings.HasPrefix(p.Name, "stage3.") && !strings.HasPrefix(p.Name, "stage4.") && p.Name != "stage0.rbr_conv.0.conv.weight" {
			continue
		}
		if strings.HasSuffix(p.Name, "rbr_scale.conv.weight") || strings.Contains(p.Name, ".bn.") && !strings.HasSuffix(p.Name, "weight") {
			continue
		}
		n++
		fdCheckSkip(t, p.Name, loss, p.W.Data, p.G.Data, 1e-3, 5e-2, 4, nil, true)
	}
	if n < 10 {
		t.Errorf("checked only %d parameters", n)
	}
}
