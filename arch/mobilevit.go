package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	register(&Spec{Name: "mobilevit_xs",
		Source: "tools/reference/zoo_ref.py MobileViT (Mehta & Rastegari 2022, arXiv 2110.02178, Table 4 / ml-cvnets x_small; timm mobilevit_xs key names)",
		// ml-cvnets' evaluation: short side 288, centre crop 256, [0, 1] pixels, not normalised
		// (the original weights take BGR channel order, which Preprocess does not express).
		Preprocess: Preprocess{Resize: 288, Crop: 256, Interpolation: "bilinear", Std: [3]float32{1, 1, 1},
			Note: "RGB input is fed; Apple's ml-cvnets weights were trained on BGR, timm's ports of them take RGB"},
		Build: func(h, w int) (*graph.Graph, error) { return mobileViT("mobilevit_xs", h, w, mobileViTXS) }})
}

// mobileViTLayer is an MV2 block (kind "mv2": a = output channels, c =
// stride) or a MobileViT block (kind "vit": a = transformer width, c =
// depth) of a stage.
type mobileViTLayer struct {
	kind string
	a, c int
}

type mobileViTConfig struct {
	stem       int
	stages     [][]mobileViTLayer
	final      int
	heads      int
	patch      int
	mlpRatio   float64
	expansion  float64
	layerNormE float64
}

var mobileViTXS = mobileViTConfig{
	stem: 16,
	stages: [][]mobileViTLayer{
		{{"mv2", 32, 1}},
		{{"mv2", 48, 2}, {"mv2", 48, 1}, {"mv2", 48, 1}},
		{{"mv2", 64, 2}, {"vit", 96, 2}},
		{{"mv2", 80, 2}, {"vit", 120, 4}},
		{{"mv2", 96, 2}, {"vit", 144, 3}},
	},
	final: 384, heads: 4, patch: 2, mlpRatio: 2, expansion: 4, layerNormE: 1e-5,
}

// mobileViT builds MobileViT: a 3×3 stem, stages of MobileNetV2 blocks
// (SiLU) and MobileViT blocks, a 1×1 conv and the classifier "head.fc".
//
// A MobileViT block: conv 3×3 + BN + SiLU, conv 1×1 (no bias, no BN) to the
// transformer width D; the map cut into P×P patches (Unfold: P² groups of
// H·W/P² tokens; a map that is not whole patches is first resized
// bilinearly to the next multiple and resized back after folding); pre-norm
// transformer layers (x + proj(attention(qkv(LN(x)))), x + fc2(SiLU(fc1(
// LN(x))))); a LayerNorm; Fold; conv 1×1 + BN + SiLU back to C channels;
// concatenation with the block's input and a 3×3 fusion conv + BN + SiLU.
func mobileViT(name string, h, w int, cfg mobileViTConfig) (*graph.Graph, error) {
	b := graph.NewBuilder(name, 3, h, w)
	conv := func(x graph.Value, p string, out, k, stride, groups int, act bool) graph.Value {
		a := graph.None
		if act {
			a = graph.SiLU
		}
		return namedConvBN(b, x, p+".conv", p+".bn", out, k, stride, groups, a)
	}
	x := conv(b.Input(), "stem", cfg.stem, 3, 2, 1, true)
	in := cfg.stem
	for s, stage := range cfg.stages {
		for j, l := range stage {
			p := fmt.Sprintf("stages.%d.%d", s, j)
			switch l.kind {
			case "mv2":
				out, stride := l.a, l.c
				mid := makeDivisible(float64(in)*cfg.expansion, 8)
				y := conv(x, p+".conv1_1x1", mid, 1, 1, 1, true)
				y = conv(y, p+".conv2_kxk", mid, 3, stride, mid, true)
				y = conv(y, p+".conv3_1x1", out, 1, 1, 1, false)
				if in == out && stride == 1 {
					y = b.Add(x, y, p+".add", graph.None)
				}
				x, in = y, out
			case "vit":
				x = mobileViTBlock(b, x, p, in, l.a, l.c, cfg)
			default:
				return nil, fmt.Errorf("%s: unknown layer kind %q", name, l.kind)
			}
		}
	}
	x = conv(x, "final_conv", cfg.final, 1, 1, 1, true)
	return b.Graph(poolLinear(b, x, "head.fc", 1000))
}

func mobileViTBlock(b *graph.Builder, x graph.Value, p string, ch, dim, depth int, cfg mobileViTConfig) graph.Value {
	y := namedConvBN(b, x, p+".conv_kxk.conv", p+".conv_kxk.bn", ch, 3, 1, 1, graph.SiLU)
	y = b.Conv(y, p+".conv_1x1", graph.ConvSpec{Out: dim, K: 1})
	s := b.Shape(y)
	pt := cfg.patch
	h, w := s[1], s[2]
	hp, wp := (h+pt-1)/pt*pt, (w+pt-1)/pt*pt
	resized := hp != h || wp != w
	if resized {
		y = b.Upsample(y, p+".resize", hp, wp, false)
	}
	t := b.Unfold(y, p+".unfold", pt)
	hidden := int(float64(dim) * cfg.mlpRatio)
	for i := 0; i < depth; i++ {
		tp := fmt.Sprintf("%s.transformer.%d", p, i)
		a := b.LayerNorm(t, tp+".norm1", cfg.layerNormE)
		a = b.Linear(a, tp+".attn.qkv", 3*dim, true, graph.None)
		a = b.Attention(a, tp+".attn", cfg.heads)
		a = b.Linear(a, tp+".attn.proj", dim, true, graph.None)
		t = b.Add(t, a, tp+".add1", graph.None)
		m := b.LayerNorm(t, tp+".norm2", cfg.layerNormE)
		m = b.Linear(m, tp+".mlp.fc1", hidden, true, graph.SiLU)
		m = b.Linear(m, tp+".mlp.fc2", dim, true, graph.None)
		t = b.Add(t, m, tp+".add2", graph.None)
	}
	t = b.LayerNorm(t, p+".norm", cfg.layerNormE)
	y = b.Fold(t, p+".fold", pt, hp, wp)
	if resized {
		y = b.Upsample(y, p+".resize_back", h, w, false)
	}
	y = namedConvBN(b, y, p+".conv_proj.conv", p+".conv_proj.bn", ch, 1, 1, 1, graph.SiLU)
	y = b.Concat(p+".cat", x, y)
	return namedConvBN(b, y, p+".conv_fusion.conv", p+".conv_fusion.bn", ch, 3, 1, 1, graph.SiLU)
}
