package detect

import (
	"math/rand/v2"
	"testing"
)

// SSDLite at 320×320: 3234 default boxes; the canvases' 11 classes.
func benchSetup(b *testing.B, n, classes int) ([]Box, []Target, []float32, []float32) {
	anchors, err := SSDLiteBoxes().Generate(320, 320, [][2]int{{20, 20}, {10, 10}, {5, 5}, {3, 3}, {2, 2}, {1, 1}})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var tg []Target
	for range n {
		var t Target
		for range 4 {
			x, y := r.Float32()*250, r.Float32()*250
			t.Boxes = append(t.Boxes, Box{x, y, x + 20 + r.Float32()*50, y + 20 + r.Float32()*50})
			t.Labels = append(t.Labels, 1+r.IntN(classes-1))
		}
		tg = append(tg, t)
	}
	logits := make([]float32, n*len(anchors)*classes)
	regs := make([]float32, n*len(anchors)*4)
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	for i := range regs {
		regs[i] = float32(r.NormFloat64() * 0.5)
	}
	return anchors, tg, logits, regs
}

func BenchmarkSSDLossBatch16(b *testing.B) {
	anchors, tg, logits, regs := benchSetup(b, 16, 11)
	gl, gr := make([]float32, len(logits)), make([]float32, len(regs))
	b.ResetTimer()
	for b.Loop() {
		if _, err := SSDLoss(anchors, tg, logits, regs, 11, LossOptions{}, gl, gr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPostprocess(b *testing.B) {
	anchors, _, logits, regs := benchSetup(b, 1, 11)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Postprocess(logits, regs, anchors, 11, 320, 320, PostOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
