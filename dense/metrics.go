package dense

import (
	"fmt"
	"math"
)

// Confusion is a segmentation confusion matrix over N classes:
// M[t*N+p] counts the pixels of target class t predicted as class p.
// Pixels whose target is Ignore are not counted.
//
// The metrics follow the common convention (mmsegmentation's, and
// torchvision's reference ConfusionMatrix): the IoU of class c is
// TP / (TP + FP + FN); a class that appears in neither the targets nor the
// predictions has no IoU (NaN) and is left out of the mean, while a class
// that appears in only one of them has IoU 0.
type Confusion struct {
	N int
	M []int64
}

// NewConfusion returns an empty n-class matrix (1 <= n <= 255).
func NewConfusion(n int) *Confusion {
	if n < 1 || n > Ignore {
		panic(fmt.Sprintf("dense: %d classes", n))
	}
	return &Confusion{N: n, M: make([]int64, n*n)}
}

// Add counts one prediction against its target (same length, H×W of one
// image or several); target pixels equal to Ignore are skipped. A
// prediction or target value out of range (≥ N and, for the target, not
// Ignore) is an error and nothing is counted.
func (c *Confusion) Add(pred, target []uint8) error {
	if len(pred) != len(target) {
		return fmt.Errorf("dense: prediction of %d pixels, target of %d", len(pred), len(target))
	}
	n := c.N
	for i, t := range target {
		if t == Ignore {
			continue
		}
		if int(t) >= n {
			return fmt.Errorf("dense: target class %d at pixel %d, %d classes", t, i, n)
		}
		if int(pred[i]) >= n {
			return fmt.Errorf("dense: predicted class %d at pixel %d, %d classes", pred[i], i, n)
		}
	}
	for i, t := range target {
		if t != Ignore {
			c.M[int(t)*n+int(pred[i])]++
		}
	}
	return nil
}

// Merge adds the counts of o (same N), e.g. from another worker.
func (c *Confusion) Merge(o *Confusion) error {
	if o.N != c.N {
		return fmt.Errorf("dense: merging a %d-class confusion matrix into a %d-class one", o.N, c.N)
	}
	for i, v := range o.M {
		c.M[i] += v
	}
	return nil
}

// Total returns the number of counted (not ignored) pixels.
func (c *Confusion) Total() int64 {
	var s int64
	for _, v := range c.M {
		s += v
	}
	return s
}

// IoU returns the per-class intersection over union TP / (TP + FP + FN),
// NaN for a class absent from both targets and predictions.
func (c *Confusion) IoU() []float64 {
	n := c.N
	out := make([]float64, n)
	for k := range out {
		tp := c.M[k*n+k]
		var row, col int64 // target k; predicted k
		for j := 0; j < n; j++ {
			row += c.M[k*n+j]
			col += c.M[j*n+k]
		}
		union := row + col - tp
		if union == 0 {
			out[k] = math.NaN()
			continue
		}
		out[k] = float64(tp) / float64(union)
	}
	return out
}

// MeanIoU is the mean of IoU over the classes that have one (present in
// the targets or the predictions); NaN if none has.
func (c *Confusion) MeanIoU() float64 { return nanMean(c.IoU()) }

// PixelAccuracy is the share of counted pixels predicted right; NaN if no
// pixel was counted.
func (c *Confusion) PixelAccuracy() float64 {
	var tp int64
	for k := 0; k < c.N; k++ {
		tp += c.M[k*c.N+k]
	}
	total := c.Total()
	if total == 0 {
		return math.NaN()
	}
	return float64(tp) / float64(total)
}

// ClassAccuracy returns the per-class recall TP / (TP + FN) (mmseg's
// "Acc"), NaN for a class with no target pixels.
func (c *Confusion) ClassAccuracy() []float64 {
	n := c.N
	out := make([]float64, n)
	for k := range out {
		var row int64
		for j := 0; j < n; j++ {
			row += c.M[k*n+j]
		}
		if row == 0 {
			out[k] = math.NaN()
			continue
		}
		out[k] = float64(c.M[k*n+k]) / float64(row)
	}
	return out
}

func nanMean(v []float64) float64 {
	s, n := 0.0, 0
	for _, x := range v {
		if !math.IsNaN(x) {
			s += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// Report is a JSON-ready summary of a Confusion: absent values are null
// instead of NaN (which JSON cannot hold).
type Report struct {
	MeanIoU       *float64   `json:"mean_iou"`
	PixelAccuracy *float64   `json:"pixel_accuracy"`
	MeanAccuracy  *float64   `json:"mean_accuracy"`
	Pixels        int64      `json:"pixels"`
	Classes       []ClassIoU `json:"classes"`
	// Matrix[t][p]: pixels of target class t predicted as p.
	Matrix [][]int64 `json:"confusion_matrix"`
}

// ClassIoU is one class's line of a Report.
type ClassIoU struct {
	Class    int      `json:"class"`
	Name     string   `json:"name"`
	IoU      *float64 `json:"iou"`      // null: absent from targets and predictions
	Accuracy *float64 `json:"accuracy"` // recall; null: no target pixels
	Target   int64    `json:"target_pixels"`
	Pred     int64    `json:"predicted_pixels"`
}

func ptr(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// Report summarises the matrix; classes names the rows (a missing name
// becomes "class N").
func (c *Confusion) Report(classes []string) Report {
	n := c.N
	iou, acc := c.IoU(), c.ClassAccuracy()
	r := Report{MeanIoU: ptr(c.MeanIoU()), PixelAccuracy: ptr(c.PixelAccuracy()), MeanAccuracy: ptr(nanMean(acc)), Pixels: c.Total()}
	for k := 0; k < n; k++ {
		line := ClassIoU{Class: k, Name: className(k, classes), IoU: ptr(iou[k]), Accuracy: ptr(acc[k])}
		row := make([]int64, n)
		copy(row, c.M[k*n:(k+1)*n])
		for j := 0; j < n; j++ {
			line.Target += c.M[k*n+j]
			line.Pred += c.M[j*n+k]
		}
		r.Classes = append(r.Classes, line)
		r.Matrix = append(r.Matrix, row)
	}
	return r
}
