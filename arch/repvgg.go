package arch

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/tensor"
)

func init() {
	for _, v := range []struct {
		name   string
		blocks [4]int
		width  [4]float64
		paper  string
	}{
		{"repvgg_a0", [4]int{2, 4, 14, 1}, [4]float64{0.75, 0.75, 0.75, 2.5}, "a=0.75, b=2.5, layers 1,2,4,14,1"},
		{"repvgg_b0", [4]int{4, 6, 16, 1}, [4]float64{1, 1, 1, 2.5}, "a=1, b=2.5, layers 1,4,6,16,1"},
	} {
		v := v
		register(&Spec{Name: v.name,
			Source: "tools/reference/zoo_ref.py RepVGG (Ding et al. 2021, arXiv 2101.03697, Tables 2-4: " + v.paper +
				"; the deploy form, official RepVGG key names rbr_reparam; train-time checkpoints convert with RepVGGDeploy)",
			Preprocess: imagenet(256, 224, "bilinear"), // the official release's test transform
			Build:      func(h, w int) (*graph.Graph, error) { return repVGG(v.name, h, w, v.blocks, v.width) }})
	}
}

// repVGG builds RepVGG's inference-time (re-parameterised) network: stage0
// and stages 1..4 of 3×3 convolutions with bias and ReLU (the first of each
// stage with stride 2), keys <block>.rbr_reparam.{weight,bias}; global
// pooling and the linear classifier "linear".
func repVGG(name string, h, w int, blocks [4]int, width [4]float64) (*graph.Graph, error) {
	b := graph.NewBuilder(name, 3, h, w)
	block := func(x graph.Value, p string, out, stride int) graph.Value {
		return b.Conv(x, p+".rbr_reparam", graph.ConvSpec{Out: out, K: 3, Stride: stride, Pad: 1, Bias: true, Act: graph.ReLU})
	}
	x := block(b.Input(), "stage0", min(64, int(64*width[0])), 2)
	for s, n := range blocks {
		out := int(float64(int(64)<<s) * width[s])
		for j := 0; j < n; j++ {
			stride := 1
			if j == 0 {
				stride = 2
			}
			x = block(x, fmt.Sprintf("stage%d.%d", s+1, j), out, stride)
		}
	}
	return b.Graph(poolLinear(b, x, "linear", 1000))
}

// RepVGGDeploy converts a train-time RepVGG state dict (the official
// release's keys: per block rbr_dense.{conv,bn}, rbr_1x1.{conv,bn} and, where
// the block has it, the identity BatchNorm rbr_identity) into the deploy one
// the graph loads (per block rbr_reparam.{weight,bias}), as the release's
// re-parameterisation (and MobileOne's, nn.Reparameterize) does, in
// float64 on the stored float32 values:
//
//   - each conv+BN branch folds to W·t and β − mean·t, t = γ/√(var + eps),
//     eps = 1e-5 (nn.BatchNorm2d's default, which RepVGG uses);
//   - the folded 1×1 kernel is zero-padded to 3×3 (at the centre);
//   - the identity BatchNorm folds the identity kernel
//     I[o, o mod (Cin/groups), 1, 1] = 1;
//   - kernel and bias are the sums.
//
// Other keys (the classifier, blocks already in deploy form) are copied;
// num_batches_tracked of the folded BatchNorms are dropped. The input is not
// modified.
func RepVGGDeploy(sd map[string]*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	const eps = 1e-5
	const dense = ".rbr_dense.conv.weight"
	var prefixes []string
	for k := range sd {
		if strings.HasSuffix(k, dense) {
			prefixes = append(prefixes, strings.TrimSuffix(k, dense))
		}
	}
	sort.Strings(prefixes)
	out := make(map[string]*tensor.Tensor, len(sd))
	used := map[string]bool{}
	get := func(key string, shape ...int) ([]float32, error) {
		t, ok := sd[key]
		if !ok {
			return nil, fmt.Errorf("repvgg: key %q is missing", key)
		}
		if shape != nil && !tensor.SameShape(t.Shape, shape) {
			return nil, fmt.Errorf("repvgg: key %q has shape %s, want %s", key, tensor.ShapeString(t.Shape), tensor.ShapeString(shape))
		}
		if len(t.Data) != tensor.NumelOf(t.Shape) {
			return nil, fmt.Errorf("repvgg: key %q holds %d values for shape %s", key, len(t.Data), tensor.ShapeString(t.Shape))
		}
		used[key] = true
		return t.Data, nil
	}
	// bn returns the BatchNorm at p as a per-channel scale t and shift β − mean·t.
	bn := func(p string, c int) (scale, shift []float64, err error) {
		var v [4][]float32
		used[p+".num_batches_tracked"] = true
		for i, s := range []string{"weight", "bias", "running_mean", "running_var"} {
			if v[i], err = get(p+"."+s, c); err != nil {
				return nil, nil, err
			}
		}
		scale, shift = make([]float64, c), make([]float64, c)
		for o := 0; o < c; o++ {
			scale[o] = float64(v[0][o]) / math.Sqrt(float64(v[3][o])+eps)
			shift[o] = float64(v[1][o]) - float64(v[2][o])*scale[o]
		}
		return scale, shift, nil
	}
	for _, p := range prefixes {
		ws := sd[p+dense].Shape
		if len(ws) != 4 || ws[2] != 3 || ws[3] != 3 {
			return nil, fmt.Errorf("repvgg: %s%s has shape %s, want (Cout, Cin/groups, 3, 3)", p, dense, tensor.ShapeString(ws))
		}
		cout, cinG := ws[0], ws[1]
		w3, err := get(p+dense, ws...)
		if err != nil {
			return nil, err
		}
		t3, b3, err := bn(p+".rbr_dense.bn", cout)
		if err != nil {
			return nil, err
		}
		w1, err := get(p+".rbr_1x1.conv.weight", cout, cinG, 1, 1)
		if err != nil {
			return nil, err
		}
		t1, b1, err := bn(p+".rbr_1x1.bn", cout)
		if err != nil {
			return nil, err
		}
		w := make([]float64, len(w3))
		bias := make([]float64, cout)
		for o := 0; o < cout; o++ {
			for j := o * cinG * 9; j < (o+1)*cinG*9; j++ {
				w[j] = float64(w3[j]) * t3[o]
			}
			for ci := 0; ci < cinG; ci++ {
				w[(o*cinG+ci)*9+4] += float64(w1[o*cinG+ci]) * t1[o]
			}
			bias[o] = b3[o] + b1[o]
		}
		if _, ok := sd[p+".rbr_identity.weight"]; ok {
			ti, bi, err := bn(p+".rbr_identity", cout)
			if err != nil {
				return nil, err
			}
			for o := 0; o < cout; o++ {
				w[(o*cinG+o%cinG)*9+4] += ti[o]
				bias[o] += bi[o]
			}
		}
		fw, fb := tensor.New(ws...), tensor.New(cout)
		for i, v := range w {
			fw.Data[i] = float32(v)
		}
		for i, v := range bias {
			fb.Data[i] = float32(v)
		}
		for _, k := range []string{".rbr_reparam.weight", ".rbr_reparam.bias"} {
			if _, dup := sd[p+k]; dup {
				return nil, fmt.Errorf("repvgg: block %s has both train-time branches and %s", p, p+k)
			}
		}
		out[p+".rbr_reparam.weight"], out[p+".rbr_reparam.bias"] = fw, fb
	}
	for k, v := range sd {
		if used[k] {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(k, p+".rbr_") {
				return nil, fmt.Errorf("repvgg: key %q of block %s is not a train-time branch's", k, p)
			}
		}
		out[k] = v.Clone()
	}
	return out, nil
}
