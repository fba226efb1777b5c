package dense

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/data"
)

func TestDataBatch(t *testing.T) {
	dir := folderSet(t) // a: 2x1, b: 3x2
	ds, err := Open(dir, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := BatchOptions{Augment: Augment{Crop: 2, Flip: 0.5, Fill: [3]uint8{9, 9, 9}}, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25}, Seed: 4, Epoch: 2}
	idx := []int{1, 0, 1}
	x, y, c, h, w, err := Batch(ds, idx, o)
	if err != nil {
		t.Fatal(err)
	}
	if c != 3 || h != 2 || w != 2 || len(x) != 3*3*2*2 || len(y) != 3*2*2 {
		t.Fatalf("batch (%d, %d, %d) with %d floats, %d labels", c, h, w, len(x), len(y))
	}
	// Each sample is the augmentation of its own seed, placed in order.
	for k, i := range idx {
		img, m, _ := ds.Get(i)
		img, m = o.Augment.Apply(img, m, data.NewRNG(data.SampleSeed(o.Seed, o.Epoch, i)))
		if !slices.Equal(x[k*12:(k+1)*12], CHW(img, o.Mean, o.Std)) || !slices.Equal(y[k*4:(k+1)*4], m.Pix) {
			t.Errorf("sample %d (index %d) differs from its own augmentation", k, i)
		}
	}
	o.Workers = 1
	x1, y1, _, _, _, err := Batch(ds, idx, o)
	if err != nil || !slices.Equal(x1, x) || !slices.Equal(y1, y) {
		t.Errorf("one worker gives another batch (%v)", err)
	}
	for _, tc := range []struct {
		name   string
		idx    []int
		o      BatchOptions
		break_ func()
		want   string
	}{
		{"sizes differ", []int{0, 1}, BatchOptions{}, nil, "sample 1 (b) is (3, 2, 3)"},
		{"empty", nil, BatchOptions{}, nil, "empty batch"},
		{"bad augment", []int{0}, BatchOptions{Augment: Augment{Flip: 2}}, nil, "flip"},
		{"bad mask", []int{0, 1}, BatchOptions{Augment: Augment{Crop: 2}}, func() {
			os.WriteFile(filepath.Join(dir, "masks", "b.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
		}, "b.png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.break_ != nil {
				tc.break_()
			}
			_, _, _, _, _, err := Batch(ds, tc.idx, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
