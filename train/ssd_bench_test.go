package train

import (
	"testing"

	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// ssdBenchConfigs are the SSDLite training configurations compared with
// PyTorch by bench/train/det_run.sh (bench/train/torch_det_bench.py builds
// the same): S0 (k = 4) at 320×320 with COCO's 91 classes, as
// torchvision's ssdlite320; and the canvases run's small backbone.
var ssdBenchConfigs = []struct {
	name           string
	cfg            model.Config
	width          float64
	size, batch, k int
}{
	{"s0-320", model.Config{Channels: [5]int{48, 48, 128, 256, 1024}, Blocks: [4]int{2, 8, 10, 1}, K: 4, InChannels: 3, StemStride: 2}, 1, 320, 16, 91},
	{"canvases-128", model.Config{Channels: [5]int{32, 32, 64, 128, 256}, Blocks: [4]int{1, 2, 4, 1}, K: 2, InChannels: 3, StemStride: 2}, 0.5, 128, 16, 11},
}

// BenchmarkSSDTrainStep times forward + SSD loss + backward + SGD step of
// SSDNet on random images with two random boxes each (one warm-up step).
func BenchmarkSSDTrainStep(b *testing.B) {
	for _, c := range ssdBenchConfigs {
		b.Run(c.name, func(b *testing.B) {
			bb, err := model.New(c.cfg, false)
			if err != nil {
				b.Fatal(err)
			}
			bb.InitRandom(1)
			net, err := NewSSDNet(bb, SSDOptions{NumClasses: c.k, Width: c.width, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			x := tensor.New(c.batch, 3, c.size, c.size)
			for i := range x.Data {
				x.Data[i] = float32((i*7919)%255)/128 - 1
			}
			s := float32(c.size)
			targets := make([]detect.Target, c.batch)
			for i := range targets {
				f := float32(i%5) / 10
				targets[i] = detect.Target{Boxes: []detect.Box{{f * s, f * s, (f + 0.3) * s, (f + 0.4) * s}, {0.5 * s, 0.1 * s, 0.9 * s, 0.6 * s}},
					Labels: []int{1 + i%(c.k-1), 1 + (i+3)%(c.k-1)}}
			}
			opt := NewSGD(net.Params(), 0.01, 0.9, 4e-5, false)
			step := func() {
				net.ZeroGrad()
				if _, err := net.Forward(x, targets, true); err != nil {
					b.Fatal(err)
				}
				if err := net.Backward(); err != nil {
					b.Fatal(err)
				}
				opt.Step()
			}
			step()
			b.ResetTimer()
			for range b.N {
				step()
			}
			b.ReportMetric(float64(c.batch*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
