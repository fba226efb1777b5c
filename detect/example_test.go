package detect_test

import (
	"fmt"

	"github.com/mobileone-go/mobileone/detect"
)

// The default boxes of SSDLite at 320×320: feature maps at strides 16 and
// 32 (20×20, 10×10) and four extra maps, six boxes a location.
func ExampleDefaultBoxes_Generate() {
	anchors, err := detect.SSDLiteBoxes().Generate(320, 320, [][2]int{{20, 20}, {10, 10}, {5, 5}, {3, 3}, {2, 2}, {1, 1}})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(anchors), detect.SSDLiteBoxes().PerLocation())
	fmt.Println(anchors[0], anchors[1])
	// Output:
	// 3234 [6 6 6 6 6 6]
	// [-24 -24 40 40] [-34.33202 -34.33202 50.332024 50.332024]
}

func ExampleNMS() {
	boxes := []detect.Box{{0, 0, 10, 10}, {1, 1, 11, 11}, {20, 20, 30, 30}, {0, 0, 10, 10}}
	scores := []float32{0.9, 0.8, 0.7, 0.9}
	fmt.Println(detect.NMS(boxes, scores, 0.5))                           // ties by index
	fmt.Println(detect.BatchedNMS(boxes, scores, []int{1, 2, 1, 1}, 0.5)) // box 1 is another class
	// Output:
	// [0 2]
	// [0 1 2]
}

func ExampleEvaluate() {
	gts := []detect.GroundTruth{
		{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 50, 50}},
		{ImageID: 1, CategoryID: 1, BBox: [4]float64{100, 100, 50, 50}}, // missed
	}
	dets := []detect.Result{{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 50, 50}, Score: 0.9}}
	r, err := detect.Evaluate([]int{1}, []int{1}, gts, dets, map[int]string{1: "thing"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("AP %.4f AR@100 %.2f\n", r.AP, r.AR100) // recall 0.5: 51 of 101 recall points
	fmt.Println(r.Lines()[0])
	// Output:
	// AP 0.5050 AR@100 0.50
	//  Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505
}
