package train

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/tensor"
)

// CrossEntropy is PyTorch's nn.CrossEntropyLoss(label_smoothing=smoothing)
// with mean reduction over the batch: for logits (N, C) and labels in
// [0, C), the target distribution is (1−ε)·onehot + ε/C and
//
//	loss = mean_i −Σ_c q_ic · log softmax(logits_i)_c.
//
// It returns the loss and its gradient with respect to the logits,
// (softmax − q)/N. It panics if a label is out of range or the sizes differ.
func CrossEntropy(logits *tensor.Tensor, labels []int, smoothing float64) (loss float64, dlogits *tensor.Tensor) {
	return crossEntropy(logits, labels, smoothing, nil, nil)
}

// crossEntropy is CrossEntropy with, if weights is not nil, sample i's
// gradient scaled by weights[i] (the loss it returns stays the unweighted
// mean), and, if losses is not nil, sample i's loss stored in losses[i].
func crossEntropy(logits *tensor.Tensor, labels []int, smoothing float64, weights []float32, losses []float32) (loss float64, dlogits *tensor.Tensor) {
	if len(logits.Shape) != 2 || logits.Shape[0] != len(labels) ||
		(weights != nil && len(weights) != len(labels)) || (losses != nil && len(losses) != len(labels)) {
		panic(fmt.Sprintf("train: CrossEntropy: logits %v for %d labels (%d weights, %d losses)", logits, len(labels), len(weights), len(losses)))
	}
	n, c := logits.Shape[0], logits.Shape[1]
	dlogits = tensor.New(n, c)
	lp := make([]float64, c)
	for i := 0; i < n; i++ {
		y := labels[i]
		if y < 0 || y >= c {
			panic(fmt.Sprintf("train: CrossEntropy: label %d of sample %d is outside [0, %d)", y, i, c))
		}
		row := logits.Data[i*c : (i+1)*c]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		lse := mx + math.Log(s)
		var sumLP float64
		for j, v := range row {
			lp[j] = float64(v) - lse
			sumLP += lp[j]
		}
		li := -(1-smoothing)*lp[y] - smoothing/float64(c)*sumLP
		loss += li
		if losses != nil {
			losses[i] = float32(li)
		}
		d := dlogits.Data[i*c : (i+1)*c]
		for j := range d {
			q := smoothing / float64(c)
			if j == y {
				q += 1 - smoothing
			}
			d[j] = float32((math.Exp(lp[j]) - q) / float64(n))
		}
		if weights != nil {
			for j := range d {
				d[j] *= weights[i]
			}
		}
	}
	return loss / float64(n), dlogits
}
