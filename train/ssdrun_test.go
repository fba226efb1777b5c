package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
)

// writeDetSplit writes a COCO-format split of n images (48×40 or 40×48)
// under dir: noise with one or two bright rectangles of category 4 (red)
// or 9 (blue); image 0 has no objects.
func writeDetSplit(t *testing.T, dir, split string, n int) {
	t.Helper()
	for _, d := range []string{"annotations", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	type ann struct {
		ID       int       `json:"id"`
		ImageID  int       `json:"image_id"`
		Category int       `json:"category_id"`
		BBox     []float64 `json:"bbox"`
		Area     float64   `json:"area"`
		IsCrowd  int       `json:"iscrowd"`
	}
	type img struct {
		ID     int    `json:"id"`
		File   string `json:"file_name"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	}
	var imgs []img
	var anns []ann
	for i := range n {
		w, h := 48, 40
		if i%2 == 1 {
			w, h = h, w
		}
		im := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				v := uint8((x*7 + y*13 + i*29) % 60)
				im.Set(x, y, color.NRGBA{v, v, v, 255})
			}
		}
		boxes := [][4]int{}
		if i > 0 {
			boxes = append(boxes, [4]int{2 + i%5, 3 + i%3, 14 + i%7, 12 + i%4})
		}
		if i%3 == 2 {
			boxes = append(boxes, [4]int{22, 20, 14, 16})
		}
		for k, b := range boxes {
			cat, c := 4, color.NRGBA{230, 30, 30, 255}
			if (i+k)%2 == 1 {
				cat, c = 9, color.NRGBA{30, 30, 230, 255}
			}
			for y := b[1]; y < b[1]+b[3]; y++ {
				for x := b[0]; x < b[0]+b[2]; x++ {
					im.Set(x, y, c)
				}
			}
			anns = append(anns, ann{ID: len(anns) + 1, ImageID: 100 + i, Category: cat, BBox: []float64{float64(b[0]), float64(b[1]), float64(b[2]), float64(b[3])}, Area: float64(b[2] * b[3])})
		}
		name := fmt.Sprintf("%s_%02d.png", split, i)
		f, err := os.Create(filepath.Join(dir, "images", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, im); err != nil {
			t.Fatal(err)
		}
		f.Close()
		imgs = append(imgs, img{ID: 100 + i, File: name, Width: w, Height: h})
	}
	js, _ := json.Marshal(map[string]any{"images": imgs, "annotations": anns,
		"categories": []map[string]any{{"id": 4, "name": "red"}, {"id": 9, "name": "blue"}}})
	if err := os.WriteFile(filepath.Join(dir, "annotations", "instances_"+split+".json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestSSDRun(t *testing.T, dir, data string) *SSDRun {
	t.Helper()
	cfg := model.Config{Channels: [5]int{8, 8, 16, 16, 24}, Blocks: [4]int{1, 1, 1, 1}, K: 2, InChannels: 3, StemStride: 2}
	bb, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	bb.InitRandom(4)
	net, err := NewSSDNet(bb, SSDOptions{NumClasses: 3, Width: 0.05, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	h := Hyper{Epochs: 2, BatchSize: 3, LR: 0.05, WarmupEpochs: 0.5, Momentum: 0.9, WDStart: 4e-5, WDEnd: 4e-5, Seed: 2, Workers: 2}
	r := &SSDRun{Dir: dir, Hyper: h, Net: net, Labels: []string{"background", "red", "blue"}, Size: 64}
	setSSDData(t, r, data)
	return r
}

func setSSDData(t *testing.T, r *SSDRun, data string) {
	t.Helper()
	train, val, err := detect.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	r.Train, r.Val = train, val
	r.Mean, r.Std = imageproc.ImageNetMean, imageproc.ImageNetStd
	r.Recipe = detect.SSDLiteRecipe()
}

// TestSSDRunResumeExact: a detection run interrupted mid-epoch and resumed
// from its checkpoint ends with bit-identical weights and log to an
// uninterrupted one; validation AP is logged; the folder holds the fused
// detector with its metadata (TestSSDFusedGraph: its graph gives the net's
// detections).
func TestSSDRunResumeExact(t *testing.T) {
	base := t.TempDir()
	data := filepath.Join(base, "data")
	writeDetSplit(t, data, "train", 7)
	writeDetSplit(t, data, "val", 3)
	a := newTestSSDRun(t, filepath.Join(base, "a"), data)
	if err := a.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := newTestSSDRun(t, filepath.Join(base, "b"), data)
	ctx, cancel := context.WithCancel(context.Background())
	b.OnStep = func(p Progress) {
		if p.Epoch == 2 && p.Step == 1 {
			cancel()
		}
	}
	if err := b.Execute(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	c, err := ResumeSSD(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if e, s := c.StartEpoch(); e != 1 || s != 1 || c.Finished() || c.Size != 64 {
		t.Fatalf("resumed at epoch %d step %d (size %d), want 1, 1", e, s, c.Size)
	}
	setSSDData(t, c, data)
	if err := c.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.Finished() {
		t.Error("not finished")
	}
	ka, sa := a.Net.StateDict()
	_, sc := c.Net.StateDict()
	for _, k := range ka {
		for i, v := range sa[k].Data {
			if sc[k].Data[i] != v {
				t.Fatalf("%s[%d]: resumed %v, uninterrupted %v", k, i, sc[k].Data[i], v)
			}
		}
	}
	la, _ := runlog.Open(a.Dir, 99)
	lc, _ := runlog.Open(c.Dir, 99)
	ra, rc := la.Rows(), lc.Rows()
	if len(ra) != 2 || len(rc) != 2 {
		t.Fatalf("log rows %d and %d", len(ra), len(rc))
	}
	for i := range ra {
		if ra[i].TrainLoss != rc[i].TrainLoss || ra[i].ValAP != rc[i].ValAP || ra[i].ValAP50 != rc[i].ValAP50 {
			t.Errorf("epoch %d: uninterrupted %+v, resumed %+v", i+1, ra[i], rc[i])
		}
	}
	if ra[1].TrainLoss <= 0 || ra[1].ValAP < 0 || ra[1].ValAP > 100 || ra[1].ValAP50 < ra[1].ValAP {
		t.Errorf("epoch 2: train loss %v, val AP %v, AP50 %v", ra[1].TrainLoss, ra[1].ValAP, ra[1].ValAP50)
	}
	f, err := safetensors.ReadFile(filepath.Join(c.Dir, SSDModelName))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"task": "detect", "labels": `["background","red","blue"]`, "size": "64", "width": "0.05"}
	for k, v := range want {
		if f.Metadata[k] != v {
			t.Errorf("model metadata %s = %q, want %q", k, f.Metadata[k], v)
		}
	}
	if _, ok := f.Tensors["backbone.stage0.reparam_conv.weight"]; !ok {
		t.Error("model.safetensors has no fused backbone")
	}
	ents, _ := os.ReadDir(c.Dir)
	if len(ents) != 4 {
		t.Errorf("run folder holds %d files, want checkpoint, model, log and plot", len(ents))
	}
}
