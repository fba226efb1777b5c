package main

import (
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
)

// TestFashionTransforms checks the Fashion-MNIST pipelines: pad 4 (--pad)
// + random crop at 28×28; at another --size the image is resized first
// (training and evaluation alike, and in the stored preprocessing) and the
// padding scales; --pad 0 leaves the crop out; every pipeline turns a 28×28
// grey image into a size×size tensor.
func TestFashionTransforms(t *testing.T) {
	for _, c := range []struct {
		size, pad, noAug int
		train, eval      string
		resize, crops    int
	}{
		{28, 4, 0, "Grey RandomCrop(28x28, pad 4) HorizontalFlip(0.5) ToTensor", "Grey CenterCrop(28x28) ToTensor", 28, 28},
		{32, 4, 0, "Grey Resize(32) RandomCrop(32x32, pad 5) HorizontalFlip(0.5) ToTensor", "Grey Resize(32) CenterCrop(32x32) ToTensor", 32, 32},
		{56, 4, 0, "Grey Resize(56) RandomCrop(56x56, pad 8) HorizontalFlip(0.5) ToTensor", "Grey Resize(56) CenterCrop(56x56) ToTensor", 56, 56},
		{32, 4, 1, "Grey Resize(32) CenterCrop(32x32) ToTensor", "Grey Resize(32) CenterCrop(32x32) ToTensor", 32, 32},
		{28, 2, 0, "Grey RandomCrop(28x28, pad 2) HorizontalFlip(0.5) ToTensor", "Grey CenterCrop(28x28) ToTensor", 28, 28},
		{20, 2, 0, "Grey Resize(20) RandomCrop(20x20, pad 1) HorizontalFlip(0.5) ToTensor", "Grey Resize(20) CenterCrop(20x20) ToTensor", 20, 20},
		{28, 0, 0, "Grey HorizontalFlip(0.5) ToTensor", "Grey CenterCrop(28x28) ToTensor", 28, 28},
		{24, 0, 0, "Grey Resize(24) HorizontalFlip(0.5) ToTensor", "Grey Resize(24) CenterCrop(24x24) ToTensor", 24, 24},
	} {
		a := trainArgs{Data: "fashion-mnist", Size: c.size, Pad: c.pad, NoAugment: c.noAug == 1}
		trainT, evalT, prep, err := transforms(&a)
		if err != nil {
			t.Fatal(err)
		}
		if got := prefixOps(trainT.String()); got != c.train {
			t.Errorf("size %d: training transform %q, want %q", c.size, got, c.train)
		}
		if got := prefixOps(evalT.String()); got != c.eval {
			t.Errorf("size %d: evaluation transform %q, want %q", c.size, got, c.eval)
		}
		if prep.ResizeShort != c.resize || prep.Crop != c.crops || !prep.Gray {
			t.Errorf("size %d: preprocessing %+v", c.size, prep)
		}
		img := imageproc.NewImage8(28, 28, 1)
		for i := range img.Pix {
			img.Pix[i] = uint8(i)
		}
		for _, tr := range []*data.Transform{trainT, evalT} {
			x, err := tr.Tensor(img, data.NewRNG(1, 2))
			if err != nil {
				t.Fatal(err)
			}
			if s := x.Shape; len(s) != 3 || s[0] != 1 || s[1] != c.size || s[2] != c.size {
				t.Errorf("size %d: %v gives shape %v", c.size, tr, s)
			}
		}
	}
}

// prefixOps drops the Normalize(...) step from a transform's description.
func prefixOps(s string) string {
	before, _, _ := strings.Cut(s, " Normalize")
	return before
}

// TestProgressiveTransforms checks --progressive's per-epoch transforms:
// training and validation both at the size in force for the epoch.
func TestProgressiveTransforms(t *testing.T) {
	a := trainArgs{Data: "fashion-mnist", Size: 36, Pad: 4, Progressive: "28@1,32@3,36@5"}
	trainFor, evalFor, err := progressive(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		epoch       int // 0-based
		train, eval string
	}{
		{0, "Grey RandomCrop(28x28, pad 4) HorizontalFlip(0.5) ToTensor", "Grey CenterCrop(28x28) ToTensor"},
		{1, "Grey RandomCrop(28x28, pad 4) HorizontalFlip(0.5) ToTensor", "Grey CenterCrop(28x28) ToTensor"},
		{2, "Grey Resize(32) RandomCrop(32x32, pad 5) HorizontalFlip(0.5) ToTensor", "Grey Resize(32) CenterCrop(32x32) ToTensor"},
		{4, "Grey Resize(36) RandomCrop(36x36, pad 5) HorizontalFlip(0.5) ToTensor", "Grey Resize(36) CenterCrop(36x36) ToTensor"},
		{9, "Grey Resize(36) RandomCrop(36x36, pad 5) HorizontalFlip(0.5) ToTensor", "Grey Resize(36) CenterCrop(36x36) ToTensor"},
	} {
		if got := prefixOps(trainFor(c.epoch).String()); got != c.train {
			t.Errorf("epoch %d: training %q, want %q", c.epoch, got, c.train)
		}
		if got := prefixOps(evalFor(c.epoch).String()); got != c.eval {
			t.Errorf("epoch %d: validation %q, want %q", c.epoch, got, c.eval)
		}
	}
	for _, bad := range []string{"28@2,36@5", "28@1,36@1", "28@1,32@4", "x@1", "4@1,36@3"} {
		b := a
		b.Progressive = bad
		if _, _, err := progressive(b); err == nil {
			t.Errorf("--progressive %q accepted", bad)
		}
	}
}
