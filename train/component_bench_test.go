package train

import "testing"

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
