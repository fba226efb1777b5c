package train

import (
	"fmt"

	"github.com/mobileone-go/mobileone/data"
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

// newPruner returns the pruner of a run with hyper-parameters h over n
// samples (the last h.FullEpochs() epochs unpruned).
func newPruner(n int, h Hyper) (*pruner, error) {
	if !(h.PruneRatio > 0 && h.PruneRatio < 1) || !(h.PruneAnneal >= 0 && h.PruneAnneal <= 1) {
		return nil, fmt.Errorf("train: pruning ratio %g must be in (0, 1) and annealing fraction %g in [0, 1]", h.PruneRatio, h.PruneAnneal)
	}
	p := &pruner{ratio: h.PruneRatio, stop: h.Epochs - h.FullEpochs(), seed: h.Seed,
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
		if float64(p.start[i]) < p.mean && data.SampleDraw(p.seed, e, i) < p.ratio {
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
