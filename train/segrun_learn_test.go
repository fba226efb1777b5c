package train

import (
	"context"
	"testing"

	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
)

// TestSegRunLearns: on an easy task (memSeg: a bright rectangle on dark
// noise, of class 1 or 2 by the image's parity, which its orientation
// shows only through the letterbox padding) a tiny DeepLabV3 trained by
// SegRun for a few seconds separates the rectangles from the background:
// untrained, or predicting the background everywhere, it scores 82.1 %
// pixel accuracy and 27.4 % mIoU; trained, about 89.5 % and 56 % (the two
// rectangle classes are mostly confused). Output stride 8 at 64×64: an
// 8×8 feature map (at 16 the 2×2 map learns nothing in this time).
func TestSegRunLearns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	cfg := model.Config{Channels: [5]int{8, 16, 16, 32, 32}, Blocks: [4]int{1, 1, 1, 1}, K: 1, InChannels: 3, StemStride: 2}
	bb, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	bb.InitRandom(4)
	net, err := NewSegNet(bb, SegOptions{NumClasses: 3, Channels: 16, Rates: []int{1, 2, 3}, OutputStride: 8, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	h := Hyper{Epochs: 32, BatchSize: 4, LR: 0.05, WarmupEpochs: 1, Momentum: 0.9, WDStart: 1e-4, WDEnd: 1e-4, Seed: 2, Workers: 1}
	r := &SegRun{Dir: t.TempDir(), Hyper: h, Net: net, Labels: []string{"bg", "a", "b"}, Size: 64,
		Train: memSeg{8}, Val: memSeg{8}, Mean: imageproc.ImageNetMean, Std: imageproc.ImageNetStd,
		Augment: dense.Augment{ScaleMin: 0.9, ScaleMax: 1.1, Base: 64, Flip: 0.5, Crop: 64}}
	r.OnEpoch = func(row runlog.Row) {
		t.Logf("epoch %d loss %.4f acc %.2f val mIoU %.2f pix %.2f", row.Epoch, row.TrainLoss, row.TrainAcc, row.ValMIoU, row.ValPixelAcc)
	}
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	miou, pa := r.LastVal()
	if pa < 87 || miou < 45 {
		t.Errorf("after training: pixel accuracy %.2f%%, mIoU %.2f%%", pa, miou)
	}
}
