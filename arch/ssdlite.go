package arch

import (
	"fmt"
	"strings"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
)

// SSDLite's constants as torchvision's ssdlite320_mobilenet_v3_large has
// them: BatchNorm eps 0.001 outside the backbone, the four extra blocks'
// widths at width 1, and 6 default boxes per location on every map
// (aspect ratios [2, 3]).
const (
	ssdBNEps = 0.001
	// SSDLiteAnchors is the number of default boxes per location of every
	// map (detect.SSDLiteBoxes: 2 + 2·len([2, 3])).
	SSDLiteAnchors = 6
)

// SSDExtraDepths are the widths of SSDLite's extra blocks at width 1.
var SSDExtraDepths = [4]int{512, 256, 256, 128}

// SSDExtraChannels returns the extra blocks' widths at width w (0 means 1):
// torchvision's get_depth, max(16, int(d·w)).
func SSDExtraChannels(w float64) [4]int {
	if w == 0 {
		w = 1
	}
	var c [4]int
	for i, d := range SSDExtraDepths {
		c[i] = max(16, int(float64(d)*w))
	}
	return c
}

// SSDLiteMobileOne builds the fused SSDLite detector (the network part: no
// default boxes or post-processing) on MobileOne cfg (its classifier
// fields ignored) for a size×size image, with classes classes (background
// included) and extra blocks of width width (0 means 1):
//
//   - the fused backbone under "backbone." (authors' keys); feature map 0
//     is stage3's output (stride 16), map 1 stage4's (stride 32);
//   - torchvision's four SSDLite extra blocks under backbone.extra.{0..3}
//     (1×1 conv-BN-ReLU6 to d/2, 3×3 depthwise stride-2 conv-BN-ReLU6, 1×1
//     conv-BN-ReLU6 to d; BN eps 0.001): maps 2–5;
//   - torchvision's SSDLiteHead under head.{classification,regression}_head.
//     module_list.{0..5} (3×3 depthwise conv-BN-ReLU6 .0.{0,1}, 1×1 conv with
//     bias .1).
//
// The output (A/6, 1, 6·(classes+4)) holds, for every location of every map
// in order (map by map, row-major), the 6 anchors' logits then their 6 box
// codes: SSDLiteSplit turns it into torchvision's (A, classes) logits and
// (A, 4) regressions. (Per map, the two heads' outputs are concatenated
// along channels and put channels-last by an Unfold with one patch the size
// of the map, hence the square input.) train.SSDNet.FusedStateDict gives
// the weights.
func SSDLiteMobileOne(cfg model.Config, classes int, width float64, size int) (*graph.Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if classes < 2 {
		return nil, fmt.Errorf("ssdlite: %d classes, want at least 2 (background included)", classes)
	}
	if width < 0 {
		return nil, fmt.Errorf("ssdlite: width %g", width)
	}
	if size < 1 {
		return nil, fmt.Errorf("ssdlite: size %d", size)
	}
	name := cfg.Name
	if name == "" {
		name = "custom"
	}
	b := graph.NewBuilder("ssdlite_mobileone_"+name, cfg.InChannels, size, size)
	stages, err := model.AddStages(b, b.Input(), cfg, "backbone.", 32)
	if err != nil {
		return nil, fmt.Errorf("ssdlite: %w", err)
	}
	maps := []graph.Value{stages[3], stages[4]}
	x := stages[4]
	for i, d := range SSDExtraChannels(width) {
		p := fmt.Sprintf("backbone.extra.%d.", i)
		x = cna(b, x, p+"0", d/2, 1, 1, 1, ssdBNEps, graph.ReLU6)
		x = cna(b, x, p+"1", d/2, 3, 2, d/2, ssdBNEps, graph.ReLU6)
		x = cna(b, x, p+"2", d, 1, 1, 1, ssdBNEps, graph.ReLU6)
		maps = append(maps, x)
	}
	var rows []graph.Value
	for i, m := range maps {
		s := b.Shape(m)
		if s[1] != s[2] {
			return nil, fmt.Errorf("ssdlite: map %d is %d×%d: the graph needs square maps (a square input)", i, s[1], s[2])
		}
		var outs []graph.Value
		for _, h := range []struct {
			name string
			out  int
		}{{"classification_head", SSDLiteAnchors * classes}, {"regression_head", SSDLiteAnchors * 4}} {
			p := fmt.Sprintf("head.%s.module_list.%d.", h.name, i)
			y := cna(b, m, p+"0", s[0], 3, 1, s[0], ssdBNEps, graph.ReLU6)
			outs = append(outs, b.Conv(y, p+"1", graph.ConvSpec{Out: h.out, K: 1, Bias: true}))
		}
		y := b.Concat(fmt.Sprintf("head.%d.cat", i), outs...)
		rows = append(rows, b.Unfold(y, fmt.Sprintf("head.%d.channels_last", i), s[1]))
	}
	out := b.Concat("head.cat", rows...)
	g, err := b.Graph(out)
	if err != nil {
		return nil, fmt.Errorf("ssdlite: %w", err)
	}
	return g, nil
}

// SSDLiteMapSizes returns the six feature maps' sizes of a graph built by
// SSDLiteMobileOne (the inputs of its per-map channels-last Unfolds): what
// detect.DefaultBoxes.Generate needs for the anchors.
func SSDLiteMapSizes(g *graph.Graph) [][2]int {
	var fs [][2]int
	for _, nd := range g.Nodes {
		if nd.Kind == graph.Unfold && strings.HasSuffix(nd.Name, ".channels_last") {
			s := g.Shapes[nd.In[0]]
			fs = append(fs, [2]int{s[1], s[2]})
		}
	}
	return fs
}

// SSDLiteSplit splits the output of SSDLiteMobileOne for one image,
// (A/6, 1, 6·(classes+4)), into logits (A, classes) and box regressions
// (A, 4) (torchvision's head outputs), writing them to logits and regs
// (allocated when nil or too short) and returning them.
func SSDLiteSplit(out []float32, classes int, logits, regs []float32) ([]float32, []float32, error) {
	row := SSDLiteAnchors * (classes + 4)
	if classes < 2 || len(out)%row != 0 {
		return nil, nil, fmt.Errorf("ssdlite: %d output values are not whole locations of %d", len(out), row)
	}
	locs := len(out) / row
	a := locs * SSDLiteAnchors
	if cap(logits) < a*classes {
		logits = make([]float32, a*classes)
	}
	if cap(regs) < a*4 {
		regs = make([]float32, a*4)
	}
	logits, regs = logits[:a*classes], regs[:a*4]
	lc := SSDLiteAnchors * classes
	for l := range locs {
		r := out[l*row : (l+1)*row]
		copy(logits[l*lc:(l+1)*lc], r[:lc])
		copy(regs[l*SSDLiteAnchors*4:(l+1)*SSDLiteAnchors*4], r[lc:])
	}
	return logits, regs, nil
}

// detPrefix names the detection models: ssdlite_mobileone_s0 … _s4.
const detPrefix = "ssdlite_mobileone_"

// DetectionNames lists the detection models DetectionSpec builds (not in
// the zoo's registry, like the segmentation models).
func DetectionNames() []string {
	var n []string
	for _, c := range model.Zoo {
		n = append(n, detPrefix+c.Name)
	}
	return n
}

// DetectionSpec returns the spec of detection model name (DetectionNames)
// with classes classes, background included (0: COCO's 91, as
// torchvision's), and extra blocks of width width (0: 1); its Build makes
// the network part (SSDLiteMobileOne) for a square input.
func DetectionSpec(name string, classes int, width float64) (*Spec, error) {
	v, ok := strings.CutPrefix(name, detPrefix)
	cfg, err := model.Variant(v)
	if !ok || err != nil {
		return nil, fmt.Errorf("unknown detection model %q (known: %s)", name, strings.Join(DetectionNames(), ", "))
	}
	if classes == 0 {
		classes = 91
	}
	cfg.NumClasses = 0
	return &Spec{Name: name, Source: "SSDLite (torchvision's ssdlite320 layout) on MobileOne: the fused backbone under backbone. (authors' keys), torchvision's extra blocks under backbone.extra., SSDLiteHead under head.",
		Preprocess: Preprocess{Mean: imagenetMean, Std: imagenetStd, Interpolation: "bilinear",
			Note: "mobileone detect resizes images to the network's square size (see its -h)"},
		Classes: classes,
		Build: func(h, w int) (*graph.Graph, error) {
			if h != w {
				return nil, fmt.Errorf("%s: the detector's graph takes a square input, not %dx%d", name, h, w)
			}
			return SSDLiteMobileOne(cfg, classes, width, h)
		}}, nil
}
