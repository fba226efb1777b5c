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

// BenchmarkDot3x3 times the fused depthwise weight-gradient dot products of
// one 16×16 channel of a batch of 64 (padded to 18×18).
func BenchmarkDot3x3(b *testing.B) {
	const n = 64 * 18 * 18
	d := make([]float32, n)
	x := make([]float32, n+40)
	for i := range x {
		x[i] = float32(i % 13)
	}
	g := make([]float32, 9)
	for i := 0; i < b.N; i++ {
		dot3x3(d, x, 18, g)
	}
}
