package dense_test

import (
	"fmt"

	"github.com/mobileone-go/mobileone/dense"
)

func ExampleConfusion() {
	cm := dense.NewConfusion(3) // background, cat, dog
	target := []uint8{0, 0, 1, 1, 255, 255}
	pred := []uint8{0, 1, 1, 1, 2, 0} // the pixels under 255 do not count
	if err := cm.Add(pred, target); err != nil {
		panic(err)
	}
	fmt.Printf("IoU %.3f (dog: in neither, no IoU)\n", cm.IoU())
	fmt.Printf("mIoU %.3f, pixel accuracy %.2f\n", cm.MeanIoU(), cm.PixelAccuracy())
	// Output:
	// IoU [0.500 0.667 NaN] (dog: in neither, no IoU)
	// mIoU 0.583, pixel accuracy 0.75
}
