package train

import (
	"math"
	"testing"
)

// TestFoldedEqualsBranches trains the same net one step with every
// multi-branch 1×1 block folded and with none folded: the loss, every
// gradient and every running statistic must agree.
func TestFoldedEqualsBranches(t *testing.T) {
	cfg := tinyConfig
	cfg.K, cfg.StemStride = 3, 1
	x := randInput(5, 4, 3, 16, 16)
	labels := []int{1, 0, 4, 2}
	var names []string
	run := func(factor float64) (float64, [][]float32, map[string][]float32, int) {
		old := foldFactor
		foldFactor = factor
		defer func() { foldFactor = old }()
		m, net := tinyNet(t, cfg, 7)
		net.ZeroGrad()
		loss, dl := CrossEntropy(net.Forward(x, true), labels, 0.1)
		net.Backward(dl)
		var grads [][]float32
		names = names[:0]
		for _, p := range net.Params() {
			grads = append(grads, append([]float32(nil), p.G.Data...))
			names = append(names, p.Name)
		}
		keys, sd := m.StateDict()
		stats := map[string][]float32{}
		for _, k := range keys {
			stats[k] = append([]float32(nil), sd[k].Data...)
		}
		folded := 0
		for _, b := range net.blocks {
			if b.folded {
				folded++
			}
		}
		return loss, grads, stats, folded
	}
	l0, g0, s0, f0 := run(0)
	l1, g1, s1, f1 := run(1e9)
	if f0 != 0 || f1 < 3 {
		t.Fatalf("folded blocks: %d with folding off, %d with it forced (want 0 and ≥ 3)", f0, f1)
	}
	if d := math.Abs(l0-l1) / l0; d > 1e-6 {
		t.Errorf("loss %v folded, %v unfolded", l1, l0)
	}
	for i := range g0 {
		if e := maxRel(g1[i], toF64(g0[i])); e > 2e-4 {
			t.Errorf("gradient of %s differs by %.2g", names[i], e)
		}
	}
	for k, v := range s0 {
		if e := maxRel(s1[k], toF64(v)); e > 1e-5 {
			t.Errorf("%s differs by %.2g", k, e)
		}
	}
}

func toF64(s []float32) []float64 {
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = float64(v)
	}
	return d
}
