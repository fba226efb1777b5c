package train

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
)

// memSeg is an in-memory segmentation set: image i is 40×32 (or 32×40 for
// odd i) noise with a bright rectangle of class 1 + i%2, the rest class 0
// and a border of 255.
type memSeg struct{ n int }

func (m memSeg) Len() int          { return m.n }
func (m memSeg) Classes() []string { return []string{"bg", "a", "b"} }
func (m memSeg) Name(i int) string { return fmt.Sprintf("img%02d", i) }
func (m memSeg) Get(i int) (*imageproc.Image8, *dense.Mask, error) {
	w, h := 40, 32
	if i%2 == 1 {
		w, h = h, w
	}
	img, mask := imageproc.NewImage8(w, h, 3), dense.NewMask(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := y*w + x
			v := uint8((x*7 + y*13 + i*29) % 60)
			if x >= 5+i%4 && x < 20 && y >= 6 && y < 22 {
				v = 200
				mask.Pix[p] = uint8(1 + i%2)
			}
			if x == 0 || y == 0 {
				mask.Pix[p] = dense.Ignore
			}
			img.Pix[3*p], img.Pix[3*p+1], img.Pix[3*p+2] = v, v/2, 255-v
		}
	}
	return img, mask, nil
}

func newTestSegRun(t *testing.T, dir string) *SegRun {
	t.Helper()
	cfg := model.Config{Channels: [5]int{8, 8, 16, 16, 24}, Blocks: [4]int{1, 1, 1, 1}, K: 2, InChannels: 3, StemStride: 2}
	bb, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	bb.InitRandom(4)
	net, err := NewSegNet(bb, SegOptions{NumClasses: 3, Channels: 16, Rates: []int{1, 2, 3}, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	h := Hyper{Epochs: 2, BatchSize: 3, LR: 0.05, WarmupEpochs: 0.5, Momentum: 0.9, WDStart: 1e-4, WDEnd: 1e-4, Seed: 2, Workers: 2}
	r := &SegRun{Dir: dir, Hyper: h, Net: net, Labels: []string{"bg", "a", "b"}, Size: 32}
	setSegData(r)
	return r
}

func setSegData(r *SegRun) {
	r.Train, r.Val = memSeg{7}, memSeg{3}
	r.Mean, r.Std = imageproc.ImageNetMean, imageproc.ImageNetStd
	r.Augment = dense.Augment{ScaleMin: 0.75, ScaleMax: 1.5, Base: 32, Flip: 0.5, Crop: 32}
}

// TestSegRunResumeExact: a run interrupted mid-epoch and resumed from its
// checkpoint ends with bit-identical weights, optimiser state and log to
// an uninterrupted one; the folder holds the fused model with its metadata.
func TestSegRunResumeExact(t *testing.T) {
	base := t.TempDir()
	a := newTestSegRun(t, filepath.Join(base, "a"))
	if err := a.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := newTestSegRun(t, filepath.Join(base, "b"))
	ctx, cancel := context.WithCancel(context.Background())
	b.OnStep = func(p Progress) {
		if p.Epoch == 2 && p.Step == 1 {
			cancel()
		}
	}
	if err := b.Execute(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	c, err := ResumeSeg(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if e, s := c.StartEpoch(); e != 1 || s != 1 || c.Finished() || c.Size != 32 {
		t.Fatalf("resumed at epoch %d step %d (size %d), want 1, 1", e, s, c.Size)
	}
	setSegData(c)
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
		if ra[i].TrainLoss != rc[i].TrainLoss || ra[i].ValMIoU != rc[i].ValMIoU || ra[i].TrainAcc != rc[i].TrainAcc {
			t.Errorf("epoch %d: uninterrupted %+v, resumed %+v", i+1, ra[i], rc[i])
		}
	}
	if ra[1].ValMIoU <= 0 || ra[1].ValPixelAcc <= 0 || ra[1].ValMIoU > 100 {
		t.Errorf("val mIoU %v, pixel accuracy %v", ra[1].ValMIoU, ra[1].ValPixelAcc)
	}
	// the fused model next to the checkpoint
	f, err := safetensors.ReadFile(filepath.Join(c.Dir, SegModelName))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"task": "segment", "output_stride": "16", "rates": "[1,2,3]", "labels": `["bg","a","b"]`, "size": "32"}
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

// TestSegEvaluateProtocol: SegEvaluate's masks are at the images' own
// sizes, and a net whose every prediction is one class scores as the
// confusion matrix says (IoU of that class = its share, 0 for the other
// present class).
func TestSegEvaluateProtocol(t *testing.T) {
	r := newTestSegRun(t, t.TempDir())
	// classifier: bias only, class 2 wins everywhere
	_, sd := r.Net.StateDict()
	clear(sd["classifier.4.weight"].Data)
	sd["classifier.4.bias"].Data[2] = 10
	var sizes [][2]int
	cm, err := SegEvaluate(r.Net, memSeg{2}, 32, r.Mean, r.Std, [3]uint8{}, 4, 1, func(i int, m *dense.Mask) error {
		sizes = append(sizes, [2]int{m.Width, m.Height})
		for _, v := range m.Pix {
			if v != 2 {
				return fmt.Errorf("image %d: class %d predicted", i, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 2 || sizes[0] != [2]int{40, 32} || sizes[1] != [2]int{32, 40} {
		t.Errorf("mask sizes %v", sizes)
	}
	var counted, b int64
	for i := 0; i < 2; i++ {
		_, m, _ := memSeg{2}.Get(i)
		for _, v := range m.Pix {
			if v != dense.Ignore {
				counted++
			}
			if v == 2 {
				b++
			}
		}
	}
	iou := cm.IoU()
	if cm.Total() != counted || iou[0] != 0 || iou[1] != 0 || iou[2] != float64(b)/float64(counted) {
		t.Errorf("total %d (want %d), IoU %v (want 0, 0, %g)", cm.Total(), counted, iou, float64(b)/float64(counted))
	}
}
