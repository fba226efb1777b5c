package train

import (
	"testing"

	"github.com/mobileone-go/mobileone/model"
)

// BenchmarkSegStepS0 is one DeepLabV3-S0 training step (forward, loss,
// backward, SGD) at output stride 16, batch 4 of 256×256, torchvision's head.
func BenchmarkSegStepS0(b *testing.B) {
	cfg, err := model.Variant("s0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.NumClasses = 0
	m, err := model.New(cfg, false)
	if err != nil {
		b.Fatal(err)
	}
	m.InitRandom(1)
	s, err := NewSegNet(m, SegOptions{NumClasses: 21})
	if err != nil {
		b.Fatal(err)
	}
	x := randInput(1, 4, 3, 256, 256)
	mask := randMask(1, 4*256*256, 21)
	opt := NewSGD(s.Params(), 0.01, 0.9, 1e-4, false)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ZeroGrad()
		s.Forward(x, mask, true)
		s.Backward()
		opt.Step()
	}
	b.ReportMetric(float64(4*b.N)/b.Elapsed().Seconds(), "images/s")
}
