package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

func TestCrossEntropy(t *testing.T) {
	// By hand: logits (1, 3) = [1, 2, 3], label 0, smoothing 0.1.
	lg, _ := tensor.FromData([]float32{1, 2, 3}, 1, 3)
	lse := math.Log(math.Exp(1) + math.Exp(2) + math.Exp(3))
	lp := []float64{1 - lse, 2 - lse, 3 - lse}
	want := -0.9*lp[0] - 0.1/3*(lp[0]+lp[1]+lp[2])
	got, d := CrossEntropy(lg, []int{0}, 0.1)
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("loss %.15g, want %.15g", got, want)
	}
	for j := 0; j < 3; j++ {
		q := 0.1 / 3
		if j == 0 {
			q += 0.9
		}
		if w := math.Exp(lp[j]) - q; math.Abs(float64(d.Data[j])-w) > 1e-7 {
			t.Errorf("dlogits[%d] = %v, want %v", j, d.Data[j], w)
		}
	}
	// Without smoothing it is −log softmax; large logits do not overflow.
	lg2, _ := tensor.FromData([]float32{1000, 0, -1000}, 1, 3)
	if l, _ := CrossEntropy(lg2, []int{0}, 0); l != 0 || math.IsNaN(l) {
		t.Errorf("loss of a confident correct prediction: %v", l)
	}

	// Finite differences on a batch (mean reduction).
	r := rand.New(rand.NewPCG(1, 2))
	logits := tensor.New(5, 7)
	for i := range logits.Data {
		logits.Data[i] = float32(r.NormFloat64() * 2)
	}
	labels := []int{0, 6, 3, 3, 1}
	_, dl := CrossEntropy(logits, labels, 0.1)
	f := func() float64 { l, _ := CrossEntropy(logits, labels, 0.1); return l }
	fdCheck(t, "dlogits", f, logits.Data, dl.Data, 1e-2, 1e-3, 35)
}

func TestCrossEntropyBadLabel(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("label out of range accepted")
		}
	}()
	CrossEntropy(tensor.New(2, 3), []int{0, 3}, 0.1)
}
