package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// TestPointwiseRunImages checks RunImages against Run image by image, at
// every level, all images in one chunk and one image per chunk:
// bit-identical outputs, nothing written outside the outputs. The shapes
// cover tile and group tails and S0/S4's last layers.
func TestPointwiseRunImages(t *testing.T) {
	defer func(v int) { imgChunkOverride = v }(imgChunkOverride)
	for _, chunk := range []int{1 << 30, 1} {
		imgChunkOverride = chunk
		testPointwiseRunImages(t)
	}
}

func testPointwiseRunImages(t *testing.T) {
	shapes := []struct{ cin, cout, hw, n int }{
		{17, 40, 13, 3},
		{100, 3, 7, 2},
		{40, 100, 1, 4},
		{256, 1024, 49, 4},
		{1024, 2048, 49, 2},
		{3, 17, 5, 1},
	}
	for i, s := range shapes {
		for _, l := range pwKernels.levels() {
			t.Run(fmt.Sprintf("%v/%dx%d_%d_n%d_chunk%d", l, s.cin, s.cout, s.hw, s.n, imgChunkOverride), func(t *testing.T) {
				r := rand.New(rand.NewSource(int64(700 + i)))
				w := randSlice(r, s.cin*s.cout)
				var b []float32
				if i%2 == 0 {
					b = randSlice(r, s.cout)
				}
				var op *PointwiseOp
				withPWLevel(l, func() { op = NewPointwiseOp(s.cin, s.cout, w, b, i%3 != 1) })
				op.Workers = 1
				nIn, nOut := BlockedLen(s.cin, s.hw), BlockedLen(s.cout, s.hw)
				xs := make([][]float32, s.n)
				outs := make([][]float32, s.n)
				bufs := make([][]float32, s.n)
				for k := range xs {
					xs[k] = make([]float32, nIn)
					ToBlocked(s.cin, s.hw, randSlice(r, s.cin*s.hw), xs[k])
					bufs[k], outs[k] = guarded(nOut)
				}
				op.RunImages(xs, s.hw, outs)
				for k := range xs {
					checkGuard(t, bufs[k], nOut)
					want := make([]float32, nOut)
					for j := range want {
						want[j] = float32(math.NaN())
					}
					op.Run(xs[k], s.hw, want)
					for j := range want {
						if math.Float32bits(outs[k][j]) != math.Float32bits(want[j]) {
							t.Fatalf("image %d value %d: RunImages %v, Run %v", k, j, outs[k][j], want[j])
						}
					}
				}
			})
		}
	}
}

// TestPointwiseRunImagesMismatch checks the length check.
func TestPointwiseRunImagesMismatch(t *testing.T) {
	op := NewPointwiseOp(2, 2, make([]float32, 4), nil, false)
	defer func() {
		if recover() == nil {
			t.Fatal("RunImages with 1 input and 2 outputs did not panic")
		}
	}()
	op.RunImages(make([][]float32, 1), 1, make([][]float32, 2))
}
