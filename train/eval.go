package train

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// EvalResult is a model's score on a data set.
type EvalResult struct {
	N    int     `json:"n"`
	Loss float64 `json:"loss"` // cross-entropy, no smoothing
	Top1 float64 `json:"top1"` // percent
	Top5 float64 `json:"top5"` // percent
	// Confusion[true][predicted] counts.
	Confusion [][]int `json:"confusion"`
	// Predictions is the top-1 class of every image, in data set order.
	Predictions []int `json:"-"`
}

// EvaluateForward scores any classifier given as forward: x (n, C, h, w)
// flattened → logits (n, classes) (used for int8 models).
func EvaluateForward(ds data.Dataset, tr *data.Transform, batch, workers, classes int, forward func(x []float32, n, h, w int) ([]float32, error)) (*EvalResult, error) {
	return evaluate(ds, tr, batch, workers, classes, func(x *tensor.Tensor) ([]float32, error) {
		return forward(x.Data, x.Shape[0], x.Shape[2], x.Shape[3])
	})
}

// Evaluate scores m on ds through the inference engine: the model is fused
// (if it is not already) and run with planned, packed kernels.
func Evaluate(m *model.Model, ds data.Dataset, tr *data.Transform, batch, workers int) (*EvalResult, error) {
	return EvaluatePlan(m, ds, tr, batch, workers, model.PlanOptions{})
}

// EvaluatePlan is Evaluate with the plans' options (e.g. bfloat16).
func EvaluatePlan(m *model.Model, ds data.Dataset, tr *data.Transform, batch, workers int, o model.PlanOptions) (*EvalResult, error) {
	f := m
	if !m.IsFused() {
		f = m.Fuse()
	}
	plans := map[[3]int]*model.Plan{}
	return evaluate(ds, tr, batch, workers, m.Config.NumClasses, func(x *tensor.Tensor) ([]float32, error) {
		key := [3]int{x.Shape[0], x.Shape[2], x.Shape[3]}
		p := plans[key]
		if p == nil {
			var err error
			if p, err = model.NewPlanWith(f, key[0], key[1], key[2], o); err != nil {
				return nil, err
			}
			plans[key] = p
		}
		return p.Run(x.Data)
	})
}

// EvaluateUnfused scores a train-time model layer by layer, branches and
// BatchNorms as they are (evaluation mode), without re-parameterising.
func EvaluateUnfused(m *model.Model, ds data.Dataset, tr *data.Transform, batch, workers int) (*EvalResult, error) {
	if m.IsFused() {
		return nil, fmt.Errorf("train: EvaluateUnfused needs a train-time model")
	}
	net, err := NewNet(m)
	if err != nil {
		return nil, err
	}
	return evaluate(ds, tr, batch, workers, m.Config.NumClasses, func(x *tensor.Tensor) ([]float32, error) {
		return net.Forward(x, false).Data, nil
	})
}

func evaluate(ds data.Dataset, tr *data.Transform, batch, workers, classes int, forward func(*tensor.Tensor) ([]float32, error)) (*EvalResult, error) {
	if classes < 1 {
		return nil, fmt.Errorf("train: the model has no classifier to evaluate")
	}
	if len(ds.Classes()) > classes {
		return nil, fmt.Errorf("train: the data has %d classes, the model %d", len(ds.Classes()), classes)
	}
	l, err := data.NewLoader(ds, data.Options{BatchSize: batch, Workers: workers, Transform: tr})
	if err != nil {
		return nil, err
	}
	res := &EvalResult{Confusion: make([][]int, classes)}
	for i := range res.Confusion {
		res.Confusion[i] = make([]int, classes)
	}
	var lossSum float64
	top1, top5 := 0, 0
	for b, err := range l.Epoch(0) {
		if err != nil {
			return nil, err
		}
		logits, err := forward(b.X)
		if err != nil {
			b.Release()
			return nil, err
		}
		for i, label := range b.Labels {
			row := logits[i*classes : (i+1)*classes]
			maxv := math.Inf(-1)
			best := 0
			for j, v := range row {
				if float64(v) > maxv {
					maxv, best = float64(v), j
				}
			}
			var z float64
			rank := 0
			for _, v := range row {
				z += math.Exp(float64(v) - maxv)
				if v > row[label] {
					rank++
				}
			}
			lossSum += math.Log(z) + maxv - float64(row[label])
			res.Predictions = append(res.Predictions, best)
			if best == label {
				top1++
			}
			if rank < 5 {
				top5++
			}
			if label >= 0 && label < classes {
				res.Confusion[label][best]++
			}
			res.N++
		}
		b.Release()
	}
	if res.N == 0 {
		return nil, fmt.Errorf("train: the evaluation set is empty")
	}
	res.Loss = lossSum / float64(res.N)
	res.Top1 = 100 * float64(top1) / float64(res.N)
	res.Top5 = 100 * float64(top5) / float64(res.N)
	return res, nil
}
