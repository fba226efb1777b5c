package arch_test

import (
	"fmt"
	"strings"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/model"
)

// DeepLabV3 on MobileOne-S0 for 512×512 images and Pascal VOC's 21 classes:
// the logits come at the input size; the state-dict keys are torchvision's
// DeepLabV3 layout, the backbone's the authors' fused ones.
func ExampleDeepLabV3MobileOne() {
	cfg, _ := model.Variant("s0")
	g, err := arch.DeepLabV3MobileOne(cfg, 21, 16, nil, 512, 512)
	if err != nil {
		panic(err)
	}
	fmt.Println("output", g.OutputShape())
	fmt.Println("parameters", g.Params())
	for _, t := range g.Tensors() {
		if strings.HasSuffix(t.Key, "stage0.reparam_conv.weight") || strings.HasPrefix(t.Key, "classifier.0.convs.4.") ||
			strings.HasPrefix(t.Key, "classifier.4.") {
			fmt.Println(t.Key, t.Shape)
		}
	}
	// Output:
	// output [21 512 512]
	// parameters 9582165
	// backbone.stage0.reparam_conv.weight [48 3 3 3]
	// classifier.0.convs.4.1.weight [256 1024 1 1]
	// classifier.0.convs.4.2.weight [256]
	// classifier.0.convs.4.2.bias [256]
	// classifier.0.convs.4.2.running_mean [256]
	// classifier.0.convs.4.2.running_var [256]
	// classifier.4.weight [21 256 1 1]
	// classifier.4.bias [21]
}
