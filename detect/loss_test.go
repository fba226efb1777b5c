package detect

import (
	"slices"
	"strings"
	"testing"
)

func TestSelectHard(t *testing.T) {
	ce := []float64{1, 3, 3, 2, 3, 0.5}
	m := []int{-1, -1, 0, -1, -1, -1} // anchor 2 is a positive (its loss is never ranked)
	for _, c := range []struct {
		n    int
		want []float64
	}{
		{0, []float64{0, 0, 0, 0, 0, 0}},
		{1, []float64{0, 1, 0, 0, 0, 0}}, // ties at 3: the lower index first
		{2, []float64{0, 1, 0, 0, 1, 0}},
		{3, []float64{0, 1, 0, 1, 1, 0}},
		{5, []float64{1, 1, 0, 1, 1, 1}},
		{6, []float64{1, 1, 1, 1, 1, 1}}, // more than the negatives: the positive too
	} {
		w := make([]float64, len(ce))
		var scratch []float64
		selectHard(ce, m, c.n, w, &scratch)
		if !slices.Equal(w, c.want) {
			t.Errorf("n=%d: %v, want %v", c.n, w, c.want)
		}
	}
}

func TestSSDLossRefused(t *testing.T) {
	anchors := []Box{{0, 0, 10, 10}, {5, 5, 15, 15}}
	ok := []Target{{Boxes: []Box{{0, 0, 10, 10}}, Labels: []int{1}}}
	logits, regs := make([]float32, 2*3), make([]float32, 2*4)
	for _, c := range []struct {
		name    string
		targets []Target
		logits  []float32
		classes int
		msg     string
	}{
		{"degenerate box", []Target{{Boxes: []Box{{5, 5, 5, 9}}, Labels: []int{1}}}, logits, 3, "has no area"},
		{"label 0", []Target{{Boxes: []Box{{0, 0, 4, 4}}, Labels: []int{0}}}, logits, 3, "label 0 outside 1..2"},
		{"label too large", []Target{{Boxes: []Box{{0, 0, 4, 4}}, Labels: []int{3}}}, logits, 3, "label 3"},
		{"labels and boxes", []Target{{Boxes: []Box{{0, 0, 4, 4}}}}, logits, 3, "1 boxes and 0 labels"},
		{"shape", ok, logits[:5], 3, "logits 5"},
		{"one class", ok, logits[:2], 1, "at least 2"},
	} {
		_, err := SSDLoss(anchors, c.targets, c.logits, regs, c.classes, LossOptions{}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.msg)
		}
	}
	// no targets anywhere: zero loss, zero gradients, no division by zero
	gl, gr := []float32{9, 9, 9, 9, 9, 9}, []float32{9, 9, 9, 9, 9, 9, 9, 9}
	l, err := SSDLoss(anchors, []Target{{}}, logits, regs, 3, LossOptions{}, gl, gr)
	if err != nil || l.Total() != 0 || l.Positives != 0 || slices.ContainsFunc(append(gl, gr...), func(v float32) bool { return v != 0 }) {
		t.Errorf("empty image: %+v %v %v %v", l, err, gl, gr)
	}
}
