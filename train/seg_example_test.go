package train_test

import (
	"fmt"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
	"github.com/mobileone-go/mobileone/train"
)

// A DeepLabV3 training step on a MobileOne backbone, then the inference
// weights for the segmentation graph.
func ExampleSegNet() {
	cfg := model.Config{Name: "tiny", Channels: [5]int{8, 8, 16, 16, 24}, Blocks: [4]int{1, 1, 2, 1}, K: 2,
		InChannels: 3, StemStride: 2} // NumClasses 0: a backbone
	backbone, _ := model.New(cfg, false)
	backbone.InitRandom(1) // or LoadStateDict with ImageNet weights (without linear.*)
	net, err := train.NewSegNet(backbone, train.SegOptions{NumClasses: 3, OutputStride: 16, Channels: 16})
	if err != nil {
		panic(err)
	}
	x := tensor.New(2, 3, 64, 64)  // images (N, C, H, W), normalised
	mask := make([]uint8, 2*64*64) // class per pixel (N, H, W); 255 = ignored
	opt := train.NewSGD(net.Params(), 0.01, 0.9, 1e-4, false)
	net.ZeroGrad()
	loss := net.Forward(x, mask, true) // mean cross-entropy over the pixels not ignored
	net.Backward()
	opt.Step()
	fmt.Printf("loss finite: %v, logits %v\n", loss == loss, net.Logits().Shape)

	pred := net.Predict(x) // evaluation mode: a class per pixel
	keys, _ := net.FusedStateDict()
	fmt.Println(len(pred), keys[0], keys[len(keys)-1])
	// Output:
	// loss finite: true, logits [2 3 64 64]
	// 8192 backbone.stage0.reparam_conv.weight classifier.4.bias
}
