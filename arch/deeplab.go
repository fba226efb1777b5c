package arch

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
)

// DeepLabRates are the ASPP atrous rates DeepLabV3MobileOne uses by default:
// torchvision 0.14's DeepLabHead hard-codes [12, 24, 36] (the DeepLabV3
// paper's rates for output stride 8, which torchvision keeps at 16), so a
// checkpoint trained with torchvision's head runs unchanged. The paper's
// rates for output stride 16 are [6, 12, 18] (DeepLabPaperRates); the rates
// are not stored in a checkpoint, so they must be the ones it was trained
// with.
var (
	DeepLabRates      = []int{12, 24, 36}
	DeepLabPaperRates = []int{6, 12, 18}
)

// DeepLabChannels is the width of ASPP's branches and of the head.
const DeepLabChannels = 256

// DeepLabV3MobileOne builds the fused DeepLabV3 segmentation network on
// MobileOne cfg (its classifier fields ignored) for an h×w image:
//
//   - the backbone, the fused MobileOne stem and four stages (no pooling or
//     linear layer) under "backbone." with the authors' keys
//     (backbone.stage0.reparam_conv.weight, backbone.stage4.1.reparam_conv.bias,
//     …), at outputStride 16 (0 means 16) or 8: the last stage's (for 8
//     also stage3's) stride-2 block runs at stride 1 and the 3×3 blocks after
//     it are dilated (padding = dilation), by the rule of
//     model.Config.DenseStrides (torchvision ResNet's
//     replace_stride_with_dilation): at 16 stage4's later depthwise blocks
//     get dilation 2; at 8 stage3's later ones 2, stage4's first 2 and its
//     later ones 4. (The zoo's S0–S4 have one pair in stage4, so at 16 no
//     convolution is dilated: stage4 only keeps its resolution.)
//   - torchvision 0.14's DeepLabHead(in_channels, classes) under
//     "classifier." with its keys: ASPP (classifier.0) of a 1×1
//     conv-BN-ReLU (convs.0.{0,1}), one dilated 3×3 conv-BN-ReLU per rate
//     (convs.1..n.{0,1}), the image-pooling branch (convs.n+1: global average
//     pool, 1×1 conv .1, BN .2, ReLU, bilinear upsampling back to the map's
//     size, a broadcast), their concatenation, the projection 1×1
//     conv-BN-ReLU (project.{0,1}; its dropout is the identity at
//     inference); a 3×3 conv-BN-ReLU (classifier.1, .2); the 1×1
//     classifier with bias (classifier.4). BatchNorm eps 1e-5.
//   - bilinear upsampling (align_corners=False) of the logits to h×w, as
//     torchvision's DeepLabV3 does: the output is (classes, h, w).
//
// rates nil means DeepLabRates.
func DeepLabV3MobileOne(cfg model.Config, classes, outputStride int, rates []int, h, w int) (*graph.Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if classes < 1 {
		return nil, fmt.Errorf("deeplabv3: %d classes", classes)
	}
	if outputStride == 0 {
		outputStride = 16
	}
	if rates == nil {
		rates = DeepLabRates
	}
	for _, r := range rates {
		if r < 1 {
			return nil, fmt.Errorf("deeplabv3: atrous rate %d must be at least 1", r)
		}
	}
	name := cfg.Name
	if name == "" {
		name = "custom"
	}
	b := graph.NewBuilder("deeplabv3_mobileone_"+name, cfg.InChannels, h, w)
	x, err := model.AddBlocks(b, b.Input(), cfg, "backbone.", outputStride)
	if err != nil {
		return nil, fmt.Errorf("deeplabv3: %w", err)
	}
	x = deepLabHead(b, x, "classifier", classes, rates)
	x = b.Upsample(x, "upsample", h, w, false)
	g, err := b.Graph(x)
	if err != nil {
		return nil, fmt.Errorf("deeplabv3: %w", err)
	}
	return g, nil
}

// deepLabHead is torchvision's DeepLabHead(in_channels, classes) with ASPP's
// rates, under prefix.
func deepLabHead(b *graph.Builder, x graph.Value, prefix string, classes int, rates []int) graph.Value {
	s := b.Shape(x)
	aspp := prefix + ".0.convs."
	branches := []graph.Value{cna(b, x, aspp+"0", DeepLabChannels, 1, 1, 1, bnEps, graph.ReLU)}
	for i, r := range rates {
		p := aspp + strconv.Itoa(i+1)
		branches = append(branches, b.Conv(x, p+".0", graph.ConvSpec{Out: DeepLabChannels, K: 3, Pad: r, Dilation: r,
			BN: true, BNName: p + ".1", BNEps: bnEps, Act: graph.ReLU}))
	}
	p := aspp + strconv.Itoa(len(rates)+1)
	pool := b.GlobalAvgPoolMap(x, p+".0")
	pool = b.Conv(pool, p+".1", graph.ConvSpec{Out: DeepLabChannels, K: 1, BN: true, BNName: p + ".2", BNEps: bnEps, Act: graph.ReLU})
	branches = append(branches, b.Upsample(pool, p+".upsample", s[1], s[2], false))
	y := b.Concat(prefix+".0.cat", branches...)
	y = cna(b, y, prefix+".0.project", DeepLabChannels, 1, 1, 1, bnEps, graph.ReLU)
	y = b.Conv(y, prefix+".1", graph.ConvSpec{Out: DeepLabChannels, K: 3, Pad: 1, BN: true, BNName: prefix + ".2", BNEps: bnEps, Act: graph.ReLU})
	return b.Conv(y, prefix+".4", graph.ConvSpec{Out: classes, K: 1, Bias: true})
}

// segPrefix names the segmentation models: deeplabv3_mobileone_s0 … _s4.
const segPrefix = "deeplabv3_mobileone_"

// SegmentationNames lists the segmentation models SegmentationSpec builds.
// They are not in the zoo's registry (Names, Get): the zoo's counts, lists
// and latency studies are of classification networks.
func SegmentationNames() []string {
	var n []string
	for _, c := range model.Zoo {
		n = append(n, segPrefix+c.Name)
	}
	return n
}

// SegmentationSpec returns the spec of segmentation model name
// (SegmentationNames) with classes classes (0: Pascal VOC's 21), output
// stride and ASPP rates (0 and nil: DeepLabV3MobileOne's defaults); its
// Build makes the graph at any size, the logits at that size.
func SegmentationSpec(name string, classes, outputStride int, rates []int) (*Spec, error) {
	v, ok := strings.CutPrefix(name, segPrefix)
	cfg, err := model.Variant(v)
	if !ok || err != nil {
		return nil, fmt.Errorf("unknown segmentation model %q (known: %s)", name, strings.Join(SegmentationNames(), ", "))
	}
	if classes == 0 {
		classes = 21
	}
	cfg.NumClasses = 0
	return &Spec{Name: name, Source: "DeepLabV3 (Chen et al. 2017) on MobileOne: the fused backbone under backbone. (authors' keys), torchvision 0.14's DeepLabHead under classifier.",
		Preprocess: Preprocess{Mean: imagenetMean, Std: imagenetStd, Interpolation: "bilinear",
			Note: "mobileone segment letterboxes images to the network's size (see its -h)"},
		Classes: classes,
		Build: func(h, w int) (*graph.Graph, error) {
			return DeepLabV3MobileOne(cfg, classes, outputStride, rates, h, w)
		}}, nil
}
