package train

import (
	"math"
	"slices"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

func TestPrunerRejectsBadSettings(t *testing.T) {
	for _, c := range [][2]float64{{0, 0.1}, {1, 0.1}, {-0.2, 0.1}, {math.NaN(), 0.1}, {0.5, -0.1}, {0.5, 1.5}, {0.5, math.NaN()}} {
		if _, err := newPruner(10, Hyper{PruneRatio: c[0], PruneAnneal: c[1], Epochs: 10, Seed: 1}); err == nil {
			t.Errorf("ratio %g, anneal %g accepted", c[0], c[1])
		}
	}
}

func TestPrunerEpochs(t *testing.T) {
	const n, ratio = 20000, 0.4
	p, err := newPruner(n, Hyper{PruneRatio: ratio, PruneAnneal: 0.2, Epochs: 10, Seed: 7}) // epochs 8 and 9 unpruned
	if err != nil {
		t.Fatal(err)
	}
	full := make([]int, n)
	for i := range full {
		full[i] = (i * 7919) % n // some order that is not 0..n-1
	}
	if got := p.begin(0, true, full); len(got) != n {
		t.Fatalf("first epoch (no scores yet) keeps %d of %d", len(got), n)
	}
	// Scores: a quarter of the samples hard (loss 4), the rest learned (0.1);
	// the mean is 1.075.
	for i := range p.score {
		p.score[i] = 0.1
		if i%4 == 0 {
			p.score[i] = 4
		}
	}
	kept := p.begin(3, true, full)
	pos := map[int]int{}
	for k, i := range full {
		pos[i] = k
	}
	hard, easy := 0, 0
	for k, i := range kept {
		if k > 0 && pos[i] <= pos[kept[k-1]] {
			t.Fatal("kept samples not in the epoch's order")
		}
		if i%4 == 0 {
			hard++
		} else {
			easy++
		}
	}
	if hard != n/4 {
		t.Errorf("kept %d of the %d hard samples, want all", hard, n/4)
	}
	if f := float64(easy) / float64(n-n/4); math.Abs(f-(1-ratio)) > 0.02 {
		t.Errorf("kept %.3f of the learned samples, want %.3f", f, 1-ratio)
	}
	w := p.weights([]int{0, 1, 4, 5}, nil)
	up := float32(1 / (1 - ratio))
	if !slices.Equal(w, []float32{1, up, 1, up}) {
		t.Errorf("weights %v, want [1 %v 1 %v]", w, up, up)
	}
	// The same epoch from the same start scores keeps the same samples,
	// even after the scores moved (a resumed epoch); another epoch others.
	p.update([]int{1, 2, 3}, []float32{9, 9, 9})
	if again := p.begin(3, false, full); !slices.Equal(again, kept) {
		t.Error("epoch 3 resumed keeps other samples")
	}
	if other := p.begin(4, false, full); slices.Equal(other, kept) {
		t.Error("epochs 3 and 4 keep the same samples")
	}
	// Annealing: the last epochs train on every sample with weight 1.
	if got := p.begin(8, true, full); len(got) != n {
		t.Errorf("annealed epoch keeps %d of %d", len(got), n)
	}
	if w := p.weights([]int{1, 5}, w); !slices.Equal(w, []float32{1, 1}) {
		t.Errorf("annealed weights %v", w)
	}
}

func TestCrossEntropyWeighted(t *testing.T) {
	logits := tensor.New(3, 4)
	for i := range logits.Data {
		logits.Data[i] = float32(math.Sin(float64(i)))
	}
	labels := []int{2, 0, 3}
	loss, d := CrossEntropy(logits, labels, 0.1)
	w := []float32{1, 2, 0.5}
	per := make([]float32, 3)
	wloss, wd := crossEntropy(logits, labels, 0.1, w, per)
	if wloss != loss {
		t.Errorf("weighted loss %v, want the unweighted mean %v", wloss, loss)
	}
	var sum float64
	for i := range 3 {
		one := tensor.New(1, 4)
		copy(one.Data, logits.Data[i*4:(i+1)*4])
		li, _ := CrossEntropy(one, labels[i:i+1], 0.1)
		if math.Abs(float64(per[i])-li) > 1e-6 {
			t.Errorf("sample %d loss %v, want %v", i, per[i], li)
		}
		sum += li
		for j := range 4 {
			if got, want := wd.Data[i*4+j], d.Data[i*4+j]*w[i]; got != want {
				t.Errorf("dlogits[%d,%d] = %v, want %v", i, j, got, want)
			}
		}
	}
	if math.Abs(sum/3-loss) > 1e-9 {
		t.Errorf("mean of per-sample losses %v, loss %v", sum/3, loss)
	}
}
