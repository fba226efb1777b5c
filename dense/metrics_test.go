package dense

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

const nan = -1.0 // a NaN in the tables below

func near(got, want float64) bool {
	if want == nan {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) < 1e-12
}

func TestDataConfusionMetrics(t *testing.T) {
	for _, tc := range []struct {
		name         string
		n            int
		pred, target []uint8
		iou          []float64
		miou, acc    float64
	}{
		{"perfect", 3, []uint8{0, 1, 2, 2}, []uint8{0, 1, 2, 2}, []float64{1, 1, 1}, 1, 1},
		{"all wrong", 2, []uint8{1, 1, 0, 0}, []uint8{0, 0, 1, 1}, []float64{0, 0}, 0, 0},
		// Class 2 is in neither: no IoU, left out of the mean.
		{"absent class", 3, []uint8{0, 0, 1, 1}, []uint8{0, 0, 1, 1}, []float64{1, 1, nan}, 1, 1},
		// Class 2 is never predicted: IoU 0. Class 1: TP 1, FP 2 -> 1/3.
		{"class never predicted", 3, []uint8{0, 1, 1, 1}, []uint8{0, 1, 2, 2}, []float64{1, 1.0 / 3, 0}, 4.0 / 9, 0.5},
		// Class 2 only predicted (a false positive): IoU 0; class 0 2/3.
		{"class only predicted", 3, []uint8{0, 0, 2, 1}, []uint8{0, 0, 0, 1}, []float64{2.0 / 3, 1, 0}, 5.0 / 9, 0.75},
		// Ignored target pixels count for nothing, whatever was predicted
		// there, even a class that appears nowhere else.
		{"ignored pixels", 3, []uint8{0, 2, 1, 2}, []uint8{0, 255, 1, 255}, []float64{1, 1, nan}, 1, 1},
		{"all ignored", 2, []uint8{0, 1}, []uint8{255, 255}, []float64{nan, nan}, nan, nan},
		{"one class, mixed", 2, []uint8{1, 1, 1, 0, 0}, []uint8{1, 1, 0, 0, 255}, []float64{0.5, 2.0 / 3}, 7.0 / 12, 0.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfusion(tc.n)
			// Added in two halves: accumulation must not matter.
			h := len(tc.pred) / 2
			if err := c.Add(tc.pred[:h], tc.target[:h]); err != nil {
				t.Fatal(err)
			}
			if err := c.Add(tc.pred[h:], tc.target[h:]); err != nil {
				t.Fatal(err)
			}
			iou := c.IoU()
			for k := range iou {
				if !near(iou[k], tc.iou[k]) {
					t.Errorf("IoU %v, want %v (-1 = NaN)", iou, tc.iou)
					break
				}
			}
			if got := c.MeanIoU(); !near(got, tc.miou) {
				t.Errorf("mIoU %v, want %v", got, tc.miou)
			}
			if got := c.PixelAccuracy(); !near(got, tc.acc) {
				t.Errorf("pixel accuracy %v, want %v", got, tc.acc)
			}
			if _, err := json.Marshal(c.Report(nil)); err != nil {
				t.Errorf("report does not marshal: %v", err)
			}
		})
	}
}

func TestDataConfusionRefused(t *testing.T) {
	for _, tc := range []struct {
		name         string
		pred, target []uint8
		err          string
	}{
		{"lengths", []uint8{0}, []uint8{0, 1}, "1 pixels"},
		{"target out of range", []uint8{0, 0}, []uint8{0, 3}, "target class 3 at pixel 1"},
		{"prediction out of range", []uint8{0, 255}, []uint8{0, 1}, "predicted class 255 at pixel 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfusion(3)
			err := c.Add(tc.pred, tc.target)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if c.Total() != 0 {
				t.Error("a refused Add counted pixels")
			}
		})
	}
	if err := NewConfusion(2).Merge(NewConfusion(3)); err == nil {
		t.Error("merged matrices of different sizes")
	}
}

func TestDataConfusionReport(t *testing.T) {
	a, b := NewConfusion(3), NewConfusion(3)
	a.Add([]uint8{0, 1}, []uint8{0, 0})
	b.Add([]uint8{1, 255}, []uint8{1, 255})
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	r := a.Report([]string{"bg", "cat"})
	js, _ := json.Marshal(r)
	// Class 0: TP 1, FN 1 -> IoU 1/2, recall 1/2; class 1: TP 1, FP 1 ->
	// 1/2, recall 1; class 2 absent: null.
	for _, want := range []string{`"mean_iou":0.5`, `"pixel_accuracy":0.6666666666666666`, `"mean_accuracy":0.75`, `"pixels":3`,
		`{"class":2,"name":"class 2","iou":null,"accuracy":null,"target_pixels":0,"predicted_pixels":0}`,
		`"confusion_matrix":[[1,1,0],[0,1,0],[0,0,0]]`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("report %s\nlacks %s", js, want)
		}
	}
}
