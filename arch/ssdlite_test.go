package arch

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

const detGolden = "../train/testdata/det/tiny" // tools/reference/make_det_golden.py

// ssdGolden loads the golden detector: its config and its weights with the
// backbone re-parameterised (the train-time PyTorch state_dict fused here).
func ssdGolden(t *testing.T) (cfg model.Config, g struct {
	Backbone struct {
		Channels   [5]int `json:"channels"`
		Blocks     [4]int `json:"blocks"`
		K          int    `json:"k"`
		SEPairs    [4]int `json:"se_pairs"`
		InChannels int    `json:"in_channels"`
		StemStride int    `json:"stem_stride"`
	} `json:"backbone"`
	Width      float64 `json:"width"`
	NumClasses int     `json:"num_classes"`
	Size       int     `json:"size"`
	Batch      int     `json:"batch"`
	Detections []struct {
		Boxes  [][4]float32 `json:"boxes"`
		Scores []float32    `json:"scores"`
		Labels []int        `json:"labels"`
	} `json:"detections"`
}, fused map[string]*tensor.Tensor) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(detGolden, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	b := g.Backbone
	cfg = model.Config{Name: "det-golden", Channels: b.Channels, Blocks: b.Blocks, K: b.K, SEPairs: b.SEPairs,
		InChannels: b.InChannels, StemStride: b.StemStride}
	sd, err := pth.LoadFile(filepath.Join(detGolden, "det.pth.tar"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	bsd := map[string]*tensor.Tensor{}
	fused = map[string]*tensor.Tensor{}
	for k, v := range sd {
		if r, ok := strings.CutPrefix(k, "backbone."); ok && !strings.HasPrefix(r, "extra.") {
			bsd[r] = v
		} else {
			fused[k] = v
		}
	}
	if err := m.LoadStateDict(bsd); err != nil {
		t.Fatal(err)
	}
	_, fsd := m.Fuse().StateDict()
	for k, v := range fsd {
		fused["backbone."+k] = v
	}
	return cfg, g, fused
}

// TestSSDLiteGolden: the fused SSDLite graph (reference evaluation and the
// planned kernels) gives torchvision's evaluation-mode head outputs of the
// unfused detector, and the same detections after detect.Postprocess.
func TestSSDLiteGolden(t *testing.T) {
	cfg, g, sd := ssdGolden(t)
	gr, err := SSDLiteMobileOne(cfg, g.NumClasses, g.Width, g.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := gr.Load(sd); err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile(filepath.Join(detGolden, "input.npy"))
	if err != nil {
		t.Fatal(err)
	}
	wantCls, err := npy.ReadFile(filepath.Join(detGolden, "cls_eval.npy"))
	if err != nil {
		t.Fatal(err)
	}
	wantReg, err := npy.ReadFile(filepath.Join(detGolden, "reg_eval.npy"))
	if err != nil {
		t.Fatal(err)
	}
	n, k := g.Batch, g.NumClasses
	a := wantReg.Shape[1]
	plan, err := graph.NewPlan(gr, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Unplanned) > 0 {
		t.Errorf("on reference code: %v", plan.Unplanned)
	}
	planned, err := plan.Run(x.Data)
	if err != nil {
		t.Fatal(err)
	}
	per := len(planned) / n
	anchors, err := detect.SSDLiteBoxes().Generate(g.Size, g.Size, SSDLiteMapSizes(gr))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := &tensor.Tensor{Shape: []int{1, 3, g.Size, g.Size}, Data: x.Data[i*3*g.Size*g.Size : (i+1)*3*g.Size*g.Size]}
		ref, _, err := gr.Ref(img)
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range []struct {
			name string
			data []float32
			tol  float64
		}{{"reference", ref.Data, 1e-5}, {"planned", planned[i*per : (i+1)*per], 1e-4}} {
			logits, regs, err := SSDLiteSplit(out.data, k, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(regs) != a*4 {
				t.Fatalf("%d anchors, torchvision %d", len(regs)/4, a)
			}
			if e := maxRel(logits, wantCls.Data[i*a*k:(i+1)*a*k]); e > out.tol {
				t.Errorf("image %d, %s: logits error %.2g", i, out.name, e)
			}
			if e := maxRel(regs, wantReg.Data[i*a*4:(i+1)*a*4]); e > out.tol {
				t.Errorf("image %d, %s: regressions error %.2g", i, out.name, e)
			}
			if out.name != "planned" {
				continue
			}
			dets, err := detect.Postprocess(logits, regs, anchors, k, g.Size, g.Size, detect.PostOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := g.Detections[i]
			if len(dets) != len(want.Scores) {
				t.Errorf("image %d: %d detections, torchvision (unfused) %d", i, len(dets), len(want.Scores))
				continue
			}
			for j := range min(100, len(dets)) {
				d := dets[j]
				bad := d.Label != want.Labels[j] || math.Abs(float64(d.Score-want.Scores[j])) > 1e-4
				for c := range 4 {
					bad = bad || math.Abs(float64(d.Box[c]-want.Boxes[j][c])) > 1e-2
				}
				if bad {
					t.Errorf("image %d detection %d: %+v, torchvision (unfused) %v %v %v", i, j, d, want.Boxes[j], want.Scores[j], want.Labels[j])
					break
				}
			}
		}
	}
}

func maxRel(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
		s = math.Max(s, math.Abs(float64(want[i])))
	}
	return d / math.Max(s, 1e-12)
}

func TestSSDLiteErrors(t *testing.T) {
	cfg := model.Zoo[0]
	for _, c := range []struct {
		name    string
		classes int
		width   float64
		size    int
		want    string
	}{
		{"one class", 1, 1, 320, "classes"},
		{"negative width", 3, -1, 320, "width"},
		{"no pixels", 3, 1, 0, "size 0"},
	} {
		if _, err := SSDLiteMobileOne(cfg, c.classes, c.width, c.size); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if _, _, err := SSDLiteSplit(make([]float32, 10), 3, nil, nil); err == nil {
		t.Error("a partial location split without error")
	}
	// S0 at 320: maps 20, 10, 5, 3, 2, 1 (torchvision's ssdlite320), 3234 anchors
	g, err := SSDLiteMobileOne(cfg, 91, 1, 320)
	if err != nil {
		t.Fatal(err)
	}
	fs := SSDLiteMapSizes(g)
	want := [][2]int{{20, 20}, {10, 10}, {5, 5}, {3, 3}, {2, 2}, {1, 1}}
	for i := range want {
		if fs[i] != want[i] {
			t.Errorf("S0 at 320: maps %v, want %v", fs, want)
			break
		}
	}
	if s := g.OutputShape(); s[0]*6 != 3234 || s[2] != 6*95 {
		t.Errorf("S0 at 320: output %v", s)
	}
}
