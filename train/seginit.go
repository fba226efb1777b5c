package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/mobileone-go/mobileone/tensor"
)

// Starting a segmentation backbone from a fused (inference) classifier,
// such as the built-in Fashion-MNIST model, which ships without its
// train-time branches.
//
// LoadFusedBackbone puts each block's fused kernel and bias into the
// block's first conv branch (its BatchNorm the identity: γ 1, β the fused
// bias, running mean 0, running variance 1 − eps) and silences every other
// branch (the other conv branches, the 1×1 scale branch and the skip
// BatchNorm get γ = β = 0; their convolutions keep their random weights so
// that they can grow back: with a zero kernel and a zero γ both gradients
// would stay zero). In evaluation mode the backbone then computes the fused
// classifier's features exactly (TestLoadFusedBackboneExact).
//
// In training mode, though, every BatchNorm normalises by the batch's
// statistics, which the identity BatchNorm above does not undo: the
// features would be far from the classifier's. CalibrateFusedBackbone
// fixes that with a batch of real images: block by block, it measures the
// mean μ and variance σ² of the first branch's convolution output on the
// batch (with the blocks before already calibrated, so the input is the
// fused network's) and sets γ = √(σ² + eps), β = b + μ, running mean μ,
// running variance σ²: the training-mode output on that batch is then the
// fused one (z − μ)/√(σ²+eps)·√(σ²+eps) + μ + b = z + b, and the
// evaluation-mode output is still exactly the fused one.

// GreyStemToRGB returns a stem kernel for RGB inputs normalised with
// (mean, std) that computes what w (Cout, 1, K, K) computed on the grey
// image (luma 0.299 R + 0.587 G + 0.114 B, as the image decoder's grey
// conversion) normalised with (greyMean, greyStd), up to a constant per
// output channel (BatchNorm's mean removes it in training, and
// CalibrateFusedBackbone measures it): w'[o][c] = w[o]·λc·std[c]/greyStd.
func GreyStemToRGB(w *tensor.Tensor, mean, std [3]float32, greyStd float32) (*tensor.Tensor, error) {
	if len(w.Shape) != 4 || w.Shape[1] != 1 {
		return nil, fmt.Errorf("train: a grey stem kernel is (Cout, 1, K, K), got %s", tensor.ShapeString(w.Shape))
	}
	if !(greyStd > 0) {
		return nil, fmt.Errorf("train: grey std %g", greyStd)
	}
	co, kk := w.Shape[0], w.Shape[2]*w.Shape[3]
	luma := [3]float32{0.299, 0.587, 0.114}
	out := tensor.New(co, 3, w.Shape[2], w.Shape[3])
	for o := 0; o < co; o++ {
		for c := 0; c < 3; c++ {
			f := luma[c] * std[c] / greyStd
			for t := 0; t < kk; t++ {
				out.Data[(o*3+c)*kk+t] = w.Data[o*kk+t] * f
			}
		}
	}
	return out, nil
}

// LoadFusedBackbone initialises the backbone from the fused weights of a
// classifier of the same architecture (the authors' fused keys:
// stage0.reparam_conv.{weight,bias}, stageN.j.reparam_conv.*, SE's
// se.{reduce,expand}.*; linear.* is dropped), as described above. A missing
// or unused key, or a kernel whose shape is not the first branch's, is an
// error naming it; nothing is changed then.
func (s *SegNet) LoadFusedBackbone(fused map[string]*tensor.Tensor) error {
	m := s.Backbone.Model()
	keys, own := m.StateDict()
	used := map[string]bool{"linear.weight": true, "linear.bias": true}
	src := map[string]*tensor.Tensor{}
	get := func(k string, want []int) (*tensor.Tensor, error) {
		t, ok := fused[k]
		if !ok {
			return nil, fmt.Errorf("train: the fused backbone has no %q (model %s)", k, m.Config.Describe())
		}
		if !tensor.SameShape(t.Shape, want) {
			return nil, fmt.Errorf("train: fused key %q has shape %s, the backbone (%s) expects %s",
				k, tensor.ShapeString(t.Shape), m.Config.Describe(), tensor.ShapeString(want))
		}
		used[k] = true
		return t, nil
	}
	for _, k := range keys {
		w := own[k]
		switch {
		case strings.Contains(k, ".se."):
			t, err := get(k, w.Shape)
			if err != nil {
				return err
			}
			src[k] = t
		case strings.HasSuffix(k, ".rbr_conv.0.conv.weight"):
			p := strings.TrimSuffix(k, ".rbr_conv.0.conv.weight")
			t, err := get(p+".reparam_conv.weight", w.Shape)
			if err != nil {
				return err
			}
			src[k] = t
			b, err := get(p+".reparam_conv.bias", []int{w.Shape[0]})
			if err != nil {
				return err
			}
			q := p + ".rbr_conv.0.bn."
			src[q+"weight"] = filled(w.Shape[0], 1)
			src[q+"bias"] = b
			src[q+"running_mean"] = filled(w.Shape[0], 0)
			src[q+"running_var"] = filled(w.Shape[0], float32(1-1e-5))
		case strings.HasSuffix(k, ".bn.weight") || strings.HasSuffix(k, ".bn.bias") || strings.HasSuffix(k, "rbr_skip.weight") || strings.HasSuffix(k, "rbr_skip.bias"):
			if _, done := src[k]; !done {
				src[k] = filled(w.Numel(), 0) // a silenced branch (γ = β = 0)
			}
		}
	}
	for k := range fused {
		if !used[k] {
			return fmt.Errorf("train: the fused checkpoint's key %q has no place in the backbone (%s)", k, m.Config.Describe())
		}
	}
	for k, t := range src {
		copy(own[k].Data, t.Data)
	}
	return nil
}

func filled(n int, v float32) *tensor.Tensor {
	t := tensor.New(n)
	for i := range t.Data {
		t.Data[i] = v
	}
	return t
}

// CalibrateFusedBackbone adapts the BatchNorms LoadFusedBackbone set to the
// images x (N, 3, H, W; normalised as in training), as described above: one
// training-mode forward pass per block. Only the first conv branch's
// BatchNorm of each block changes (γ, β, running statistics); the
// evaluation-mode function stays the fused classifier's.
func (s *SegNet) CalibrateFusedBackbone(x *tensor.Tensor) error {
	net := s.Backbone
	m := net.Model()
	blocks := m.Blocks()
	type stat struct{ mean, v []float64 }
	for _, nb := range blocks {
		if nb.Block.Fused != nil || len(nb.Block.Convs) == 0 {
			return fmt.Errorf("train: %s is not a train-time block", nb.Name)
		}
	}
	for _, nb := range blocks {
		bn := nb.Block.Convs[0].BN
		c := bn.C
		beta := append([]float32(nil), bn.Bias.Data...) // the fused bias (LoadFusedBackbone), until calibrated
		// running statistics, from 0, after one batch: PyTorch's momentum
		// update (0.1·batch) read back, whatever path the forward took.
		clear(bn.RunningMean.Data)
		clear(bn.RunningVar.Data)
		net.features(x, true)
		mean, vr := make([]float64, c), make([]float64, c)
		for ch := 0; ch < c; ch++ {
			mean[ch] = float64(bn.RunningMean.Data[ch]) / bnMomentum
			vr[ch] = math.Max(float64(bn.RunningVar.Data[ch])/bnMomentum, 0)
		}
		for ch := 0; ch < c; ch++ {
			g := math.Sqrt(vr[ch] + bn.Eps)
			bn.Weight.Data[ch] = float32(g)
			bn.Bias.Data[ch] = float32(float64(beta[ch]) + mean[ch])
			bn.RunningMean.Data[ch] = float32(mean[ch])
			bn.RunningVar.Data[ch] = float32(vr[ch])
		}
	}
	// The passes above updated the other BatchNorms' running statistics
	// (silenced branches, the head is not run): reset the silenced ones to
	// PyTorch's initial values.
	for _, nb := range blocks {
		b := nb.Block
		for i, cb := range b.Convs {
			if i > 0 {
				resetRunning(cb.BN.RunningMean.Data, cb.BN.RunningVar.Data)
			}
		}
		if b.Scale != nil {
			resetRunning(b.Scale.BN.RunningMean.Data, b.Scale.BN.RunningVar.Data)
		}
		if b.Skip != nil {
			resetRunning(b.Skip.RunningMean.Data, b.Skip.RunningVar.Data)
		}
	}
	return nil
}

func resetRunning(mean, v []float32) {
	clear(mean)
	for i := range v {
		v[i] = 1
	}
}
