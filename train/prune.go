package train

import (
	"fmt"
	"math"
)

// pruner is dynamic data pruning after InfoBatch (Qin et al., "InfoBatch:
// Lossless Training Speed Up by Unbiased Dynamic Data Pruning", ICLR 2024):
// every sample keeps a score, its training loss when it was last trained
// (1 before that, so the first epoch prunes nothing). At the start of an
// epoch, each sample scoring below the mean of all scores (one the network
// has learned) is left out of the epoch with probability ratio; those kept
// have their gradient scaled by 1/(1−ratio), so that the expected gradient
// of the epoch is the full one's. The last epochs (from stop on) train on
// every sample, as InfoBatch's annealing does. Which samples an epoch
// leaves out depends only on the seed, the epoch and the scores at its
// start, which the checkpoint keeps: a resumed run trains on the same ones.
type pruner struct {
	ratio float64
	stop  int // epochs from stop on are not pruned
	seed  uint64
	score []float32 // last training loss of each sample
	start []float32 // the scores when the epoch in progress started
	mean  float64   // mean of start
	on    bool      // the epoch in progress is pruned
}

// newPruner returns a pruner for n samples over a run of epochs, the last
// round(anneal·epochs) of them unpruned.
func newPruner(n int, ratio, anneal float64, epochs int, seed uint64) (*pruner, error) {
	if !(ratio > 0 && ratio < 1) || !(anneal >= 0 && anneal <= 1) {
		return nil, fmt.Errorf("train: pruning ratio %g must be in (0, 1) and annealing fraction %g in [0, 1]", ratio, anneal)
	}
	p := &pruner{ratio: ratio, stop: epochs - int(math.Round(anneal*float64(epochs))), seed: seed,
		score: make([]float32, n), start: make([]float32, n)}
	for i := range p.score {
		p.score[i], p.start[i] = 1, 1
	}
	return p, nil
}

// begin starts epoch e; fresh is false when the epoch is being resumed
// mid-way (the start scores then come from the checkpoint). It returns the
// epoch's samples: those of full (the epoch's shuffled order) it keeps, in
// full's order.
func (p *pruner) begin(e int, fresh bool, full []int) []int {
	if fresh {
		copy(p.start, p.score)
	}
	var sum float64
	for _, v := range p.start {
		sum += float64(v)
	}
	p.mean = sum / float64(len(p.start))
	p.on = e < p.stop
	if !p.on {
		return full
	}
	kept := full[:0:0]
	for _, i := range full {
		if float64(p.start[i]) < p.mean && unitHash(p.seed, uint64(e), uint64(i)) < p.ratio {
			continue
		}
		kept = append(kept, i)
	}
	return kept
}

// weights stores in w the loss weight of each sample of a batch (dataset
// indices idx): 1/(1−ratio) for a learned sample of a pruned epoch, else 1.
func (p *pruner) weights(idx []int, w []float32) []float32 {
	w = w[:0]
	up := float32(1 / (1 - p.ratio))
	for _, i := range idx {
		if p.on && float64(p.start[i]) < p.mean {
			w = append(w, up)
		} else {
			w = append(w, 1)
		}
	}
	return w
}

// update records the training losses of a batch's samples.
func (p *pruner) update(idx []int, losses []float32) {
	for k, i := range idx {
		p.score[i] = losses[k]
	}
}

// unitHash is a uniform number in [0, 1) from (seed, a, b) (SplitMix64's
// finaliser over a mix of the three).
func unitHash(seed, a, b uint64) float64 {
	z := seed ^ (a+1)*0x9e3779b97f4a7c15 ^ (b+1)*0xc2b2ae3d27d4eb4f
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}
