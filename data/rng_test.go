package data

import (
	"math"
	"testing"
)

// SampleDraw is deterministic, in [0, 1), about uniform, and changes with
// the seed, the epoch and the index.
func TestSampleDraw(t *testing.T) {
	const n = 40000
	var sum float64
	below := 0
	for i := range n {
		u := SampleDraw(3, 5, i)
		if u < 0 || u >= 1 || u != SampleDraw(3, 5, i) {
			t.Fatalf("draw %d: %v", i, u)
		}
		sum += u
		if u < 0.3 {
			below++
		}
	}
	if m := sum / n; math.Abs(m-0.5) > 0.01 {
		t.Errorf("mean %v, want 0.5", m)
	}
	if f := float64(below) / n; math.Abs(f-0.3) > 0.01 {
		t.Errorf("%.3f of the draws below 0.3", f)
	}
	for _, c := range [][3]int{{4, 5, 7}, {3, 6, 7}, {3, 5, 8}} {
		if SampleDraw(uint64(c[0]), c[1], c[2]) == SampleDraw(3, 5, 7) {
			t.Errorf("SampleDraw%v equals SampleDraw(3, 5, 7)", c)
		}
	}
}
