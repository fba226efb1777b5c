package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

func randomize(r *rand.Rand, b *Block) {
	fill := func(t *tensor.Tensor, lo, hi float64) {
		for i := range t.Data {
			t.Data[i] = float32(lo + (hi-lo)*r.Float64())
		}
	}
	bn := func(n *BatchNorm) {
		fill(n.Weight, 0.5, 1.5)
		fill(n.Bias, -0.3, 0.3)
		fill(n.RunningMean, -0.5, 0.5)
		fill(n.RunningVar, 0.3, 2)
	}
	for _, cb := range b.Convs {
		fill(cb.Conv.Weight, -0.5, 0.5)
		bn(cb.BN)
	}
	if b.Scale != nil {
		fill(b.Scale.Conv.Weight, -0.5, 0.5)
		bn(b.Scale.BN)
	}
	if b.Skip != nil {
		bn(b.Skip)
	}
	if b.SE != nil {
		for _, c := range []*Conv2d{b.SE.Reduce, b.SE.Expand} {
			fill(c.Weight, -0.5, 0.5)
			fill(c.Bias, -0.2, 0.2)
		}
	}
}

// Each block kind re-parameterises exactly: the fused conv equals the sum of
// the branches (BatchNorm in evaluation mode).
func TestReparameterize(t *testing.T) {
	tests := []struct {
		name  string
		spec  BlockSpec
		scale bool
		skip  bool
		h, w  int
	}{
		{"stem", BlockSpec{InC: 3, OutC: 8, K: 3, Stride: 2, Groups: 1, Branches: 1}, true, false, 17, 12},
		{"dw k=4 stride 1", BlockSpec{InC: 6, OutC: 6, K: 3, Stride: 1, Groups: 6, Branches: 4}, true, true, 9, 7},
		{"dw stride 2", BlockSpec{InC: 6, OutC: 6, K: 3, Stride: 2, Groups: 6, Branches: 2}, true, false, 9, 8},
		{"pw same width", BlockSpec{InC: 6, OutC: 6, K: 1, Stride: 1, Groups: 1, Branches: 3}, false, true, 5, 5},
		{"pw widen", BlockSpec{InC: 6, OutC: 10, K: 1, Stride: 1, Groups: 1, Branches: 1}, false, false, 5, 4},
		{"grouped", BlockSpec{InC: 8, OutC: 8, K: 3, Stride: 1, Groups: 2, Branches: 2}, true, true, 6, 6},
		{"dw with SE", BlockSpec{InC: 32, OutC: 32, K: 3, Stride: 1, Groups: 32, Branches: 1, SE: true}, true, true, 6, 5},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBlock(tc.spec, false)
			if (b.Scale != nil) != tc.scale || (b.Skip != nil) != tc.skip || len(b.Convs) != tc.spec.Branches {
				t.Fatalf("branches: scale=%v skip=%v convs=%d", b.Scale != nil, b.Skip != nil, len(b.Convs))
			}
			randomize(r, b)
			x := tensor.New(2, tc.spec.InC, tc.h, tc.w)
			for i := range x.Data {
				x.Data[i] = float32(r.NormFloat64())
			}
			want := b.Forward(x)
			f := b.Fuse()
			if !f.IsFused() || f.Convs != nil || f.Skip != nil || f.Scale != nil {
				t.Fatal("Fuse must leave a single conv")
			}
			got := f.Forward(x)
			var d, s float64
			for i := range got.Data {
				d = math.Max(d, math.Abs(float64(got.Data[i]-want.Data[i])))
				s = math.Max(s, math.Abs(float64(want.Data[i])))
			}
			if d/s > 1e-5 {
				t.Errorf("fused vs branches: max rel diff %.3g", d/s)
			}
			if f.Params() >= b.Params() && tc.spec.Branches > 1 {
				t.Errorf("fused params %d not below train-time %d", f.Params(), b.Params())
			}
		})
	}
}
