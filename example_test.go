package mobileone_test

import (
	"fmt"
	"image"
	"image/color"
	"log"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/tensor"
)

// Load an authors'-format train-time checkpoint; it is re-parameterised
// (fused) at load time.
func ExampleLoad() {
	m, err := mobileone.Load("testdata/golden/tiny-k4/unfused.pth.tar", mobileone.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fused:", m.IsFused(), "params:", m.Params(), "classes:", m.Config.NumClasses)
	// Output: fused: true params: 2970 classes: 10
}

// Build a zoo variant, fuse it and look at the feature maps each stage
// gives a detection or segmentation head.
func ExampleModel_Features() {
	cfg, err := mobileone.Variant("s0")
	if err != nil {
		log.Fatal(err)
	}
	m, err := mobileone.New(cfg, false, 1) // train-time form, random weights
	if err != nil {
		log.Fatal(err)
	}
	f := m.Fuse()
	x := tensor.New(1, 3, 128, 96) // any size works
	feats, err := f.Features(x)
	if err != nil {
		log.Fatal(err)
	}
	for i, t := range feats {
		fmt.Printf("stage%d %v\n", i, t.Shape)
	}
	fmt.Println(m.Params(), "→", f.Params())
	// Output:
	// stage0 [1 48 64 48]
	// stage1 [1 48 32 24]
	// stage2 [1 128 16 12]
	// stage3 [1 256 8 6]
	// stage4 [1 1024 4 3]
	// 5293272 → 2078504
}

// A custom configuration: narrow widths, 3 conv branches, SE in the last
// pair of stage 3, 10 classes, grayscale input and a stride-1 stem for
// 28×28 images.
func ExampleNew_custom() {
	cfg := mobileone.Config{
		Channels:   [5]int{16, 16, 32, 64, 128},
		Blocks:     [4]int{1, 2, 2, 1},
		K:          3,
		SEPairs:    [4]int{0, 0, 1, 0},
		NumClasses: 10,
		InChannels: 1,
		StemStride: 1,
	}
	m, err := mobileone.New(cfg, false, 42)
	if err != nil {
		log.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(3, 3, color.Gray{255})
	fused := m.Fuse()
	x := tensor.New(1, 1, 28, 28)
	for i, p := range img.Pix {
		x.Data[i] = float32(p) / 255
	}
	a, _ := m.Forward(x)
	b, _ := fused.Forward(x)
	top := fused.TopK(b.Data, 1)[0]
	fmt.Println(len(a.Data), "logits; same top class fused and unfused:", m.TopK(a.Data, 1)[0].Index == top.Index)
	// Output: 10 logits; same top class fused and unfused: true
}
