package train

import (
	"testing"

	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

// BenchmarkBNParts times the per-branch BatchNorm passes on a 48×16384 block.
func BenchmarkBNParts(b *testing.B) {
	const c, m = 48, 64 * 256
	z := make([]float32, c*m)
	for i := range z {
		z[i] = float32(i%97) * 0.01
	}
	sum := make([]float32, c*m)
	dy := make([]float32, c*m)
	g := make([]float32, c)
	for i := range g {
		g[i] = 1
	}
	bn := bnParams{gamma: g, beta: make([]float32, c), rmean: make([]float32, c), rvar: make([]float32, c), eps: 1e-5}
	is := make([]float32, c)
	dg, db := make([]float32, c), make([]float32, c)
	b.Run("fwd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			bnTrainForward(bn, z, m, sum, is, true)
		}
	})
	b.Run("bwd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			bnBackward(g, is, z, dy, m, dg, db, sum)
		}
	})
}

// BenchmarkDWBackward times the depthwise backward (weight and input
// gradients, k = 4 branches and the 1×1 scale) of a 128-channel 8×8 layer on
// a batch of 64.
func BenchmarkDWBackward(b *testing.B) {
	op := convOp{Cin: 128, Cout: 5 * 128, K: 3, S: 1, P: 1, DW: true, CenterOnly: []bool{false, false, false, false, true}}
	x := &act{C: 128, N: 64, H: 8, W: 8, Data: make([]float32, 128*64*64)}
	for i := range x.Data {
		x.Data[i] = float32(i%13) * 0.1
	}
	w := make([]float32, op.Cout*9)
	dz := make([]float32, op.Cout*64*64)
	dw := make([]float32, len(w))
	dx := make([]float32, len(x.Data))
	var ws convWork
	b.SetBytes(int64(4 * (len(dz) + 2*len(x.Data))))
	for i := 0; i < b.N; i++ {
		op.backward(x, w, dz, dw, dx, &ws)
	}
}

// BenchmarkDWPasses times the depthwise forward and backward passes (k = 1:
// one 3×3 branch and the 1×1 scale) of a 48-channel 14×14 layer on a batch
// of 128, the first stage of the Fashion-MNIST configuration.
func BenchmarkDWPasses(b *testing.B) {
	op := convOp{Cin: 48, Cout: 2 * 48, K: 3, S: 1, P: 1, DW: true, CenterOnly: []bool{false, true}}
	x := &act{C: 48, N: 128, H: 14, W: 14, Data: make([]float32, 48*128*196)}
	for i := range x.Data {
		x.Data[i] = float32(i%13) * 0.1
	}
	w := make([]float32, op.Cout*9)
	z := make([]float32, op.Cout*128*196)
	dw := make([]float32, len(w))
	dx := make([]float32, len(x.Data))
	var ws convWork
	b.Run("forward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			op.forward(x, w, z, &ws)
		}
	})
	b.Run("backward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			op.backward(x, w, z, dw, dx, &ws)
		}
	})
}

// BenchmarkBNColdWarm times the fused BatchNorm passes of a stage-2 1×1
// block of the Fashion-MNIST configuration (128 channels, batch 128 at
// 7×7; a branch and the skip) on one set of tensors, in cache from the
// previous call ("warm", 16 MB), and rotating over 16 sets (256 MB, so
// every call reads from memory: "cold", as in a training step, where a
// block's saved activations are read back long after they were written).
func BenchmarkBNColdWarm(b *testing.B) {
	const c, m = 128, 128 * 49
	for _, copies := range []int{1, 16} {
		type set struct{ z, x, out, d, gx []float32 }
		sets := make([]set, copies)
		for i := range sets {
			s := set{make([]float32, c*m), make([]float32, c*m), make([]float32, c*m), make([]float32, c*m), make([]float32, c*m)}
			for j := range s.z {
				s.z[j] = float32(j%97)*0.01 - 0.3
				s.x[j] = float32(j%89) * 0.01
				s.d[j] = float32(j%83)*0.001 - 0.04
			}
			sets[i] = s
		}
		newBNT := func() *bnT {
			bn := &nn.BatchNorm{Weight: tensor.New(c), Bias: tensor.New(c), RunningMean: tensor.New(c), RunningVar: tensor.New(c), Eps: 1e-5}
			for i := range bn.Weight.Data {
				bn.Weight.Data[i], bn.RunningVar.Data[i] = 1, 1
			}
			t := newBN(bn)
			t.mean, t.invstd = make([]float32, c), make([]float32, c)
			t.gW, t.gB = tensor.New(c), tensor.New(c)
			return t
		}
		b1, b2 := newBNT(), newBNT()
		scratch := bnScratch(nil)
		name := map[int]string{1: "warm", 16: "cold"}[copies]
		b.Run("forward-"+name, func(b *testing.B) {
			b.SetBytes(3 * 4 * c * m) // z and x read, the output written
			for i := 0; i < b.N; i++ {
				s := sets[i%copies]
				bnTrainForwardSum([]bnSrc{{bn: b1, src: s.z}, {bn: b2, src: s.x}}, c, m, s.out, true, scratch)
			}
		})
		b.Run("backward-"+name, func(b *testing.B) {
			b.SetBytes(6 * 4 * c * m) // d, the ReLU output, z and x read; dz and gx written
			for i := 0; i < b.N; i++ {
				s := sets[i%copies]
				bnBackwardSum([]bnGrad{{bn: b1, src: s.z, dz: s.z}, {bn: b2, src: s.x, dz: s.gx}}, c, m, s.d, s.out, scratch)
			}
		})
	}
}
