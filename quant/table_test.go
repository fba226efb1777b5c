package quant

import (
	"fmt"
	"os"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/train"
)

type fmImages struct {
	ds  data.Dataset
	idx []int
	tr  *data.Transform
}

func (f *fmImages) Len() int { return len(f.idx) }
func (f *fmImages) Image(i int) ([]float32, error) {
	img, _, err := f.ds.Get(f.idx[i])
	if err != nil {
		return nil, err
	}
	x, err := f.tr.Tensor(img, nil)
	if err != nil {
		return nil, err
	}
	return x.Data, nil
}

// TestInt8AccuracyTable prints docs/quantization.md's accuracy table: the
// built-in model on the full Fashion-MNIST test set in float32 and in int8
// for each calibration method, with the stem in int8 and in float, and
// without constant folding; calibrated once on 512 training images spread
// over the split (as "mobileone quantize --calib fashion-mnist" does).
// Slow (eight int8 passes over the test set): MOBILEONE_INT8_TABLE=1 runs
// it; MOBILEONE_INT8_TABLE_ONLY=METHOD runs one method's rows.
func TestInt8AccuracyTable(t *testing.T) {
	if os.Getenv("MOBILEONE_INT8_TABLE") == "" {
		t.Skip("MOBILEONE_INT8_TABLE=1 runs the full accuracy table")
	}
	m, err := zoo.Default()
	if err != nil {
		t.Fatal(err)
	}
	trainSet, err := data.LoadFashionMNIST(data.FashionMNISTDir, "train")
	if err != nil {
		t.Skip(err)
	}
	test, err := data.LoadFashionMNIST(data.FashionMNISTDir, "test")
	if err != nil {
		t.Skip(err)
	}
	p := m.Preprocessing()
	tr := data.EvalTransform(0, 28, 1, []float32{p.Mean[0]}, []float32{p.Std[0]})
	imgs := &fmImages{ds: trainSet, tr: tr}
	for i := range 512 {
		imgs.idx = append(imgs.idx, i*trainSet.Len()/512)
	}
	cal, err := Calibrate(m, imgs)
	if err != nil {
		t.Fatal(err)
	}
	fres, err := train.Evaluate(m.Model, test, tr, 256, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("| model | top-1 %% | Δ vs float32 | agreement with float32 %% | logits SQNR dB (32 calibration images) |\n|---|---|---|---|---|\n")
	fmt.Printf("| float32 | %.2f | | | |\n", fres.Top1)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"int8 minmax", Options{Method: MinMax}},
		{"int8 percentile 99.99", Options{Method: Percentile}},
		{"int8 entropy", Options{Method: Entropy}},
		{"int8 minmax, float stem", Options{Method: MinMax, FloatFirst: true}},
		{"int8 percentile, float stem", Options{Method: Percentile, FloatFirst: true}},
		{"int8 entropy, float stem", Options{Method: Entropy, FloatFirst: true}},
		{"int8 minmax, no weight clipping", Options{Method: MinMax, NoWeightClip: true}},
		{"int8 minmax, no constant folding", Options{Method: MinMax, NoConstantFold: true}},
	} {
		if only := os.Getenv("MOBILEONE_INT8_TABLE_ONLY"); only != "" && only != string(c.opts.Method) {
			continue
		}
		q, err := cal.Quantize(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		r, err := cal.Report(q, 32)
		if err != nil {
			t.Fatal(err)
		}
		plans := map[int]func([]float32) ([]float32, error){}
		res, err := train.EvaluateForward(test, tr, 256, 0, 10, func(x []float32, n, h, w int) ([]float32, error) {
			run := plans[n]
			if run == nil {
				pl, err := q.NewPlan(n, h, w)
				if err != nil {
					return nil, err
				}
				run = pl.Run
				plans[n] = run
			}
			return run(x)
		})
		if err != nil {
			t.Fatal(err)
		}
		same := 0
		for i, v := range res.Predictions {
			if v == fres.Predictions[i] {
				same++
			}
		}
		fmt.Printf("| %s | %.2f | %+.2f | %.2f | %.1f |\n", c.name, res.Top1, res.Top1-fres.Top1, 100*float64(same)/float64(len(res.Predictions)), r.OutputSQNR)
	}
}
