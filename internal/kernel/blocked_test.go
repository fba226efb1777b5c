package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// The blocked layout round-trips, pads with zeros, and its pooling and SE
// scaling equal the NCHW definitions.
func TestBlockedLayout(t *testing.T) {
	r := rand.New(rand.NewSource(31))
	for _, l := range levels() {
		for _, s := range [][2]int{{1, 1}, {3, 5}, {16, 7}, {17, 49}, {40, 13}, {48, 196}, {100, 2}, {2048, 49}, {20, 3}} {
			c, hw := s[0], s[1]
			t.Run(fmt.Sprintf("%v/c%d_hw%d", l, c, hw), func(t *testing.T) {
				defer setLevel(l)()
				x := randSlice(r, c*hw)
				n := BlockedLen(c, hw)
				if n != roundUp(c, 16)*hw {
					t.Fatalf("BlockedLen = %d", n)
				}
				bbuf, b := guarded(n)
				ToBlocked(c, hw, x, b)
				checkGuard(t, bbuf, n)
				for cb := 0; cb < Blocks(c); cb++ {
					for p := 0; p < hw; p++ {
						for j := 0; j < BlockC; j++ {
							got := b[(cb*hw+p)*BlockC+j]
							want := float32(0)
							if ch := cb*BlockC + j; ch < c {
								want = x[ch*hw+p]
							}
							if got != want {
								t.Fatalf("block %d pixel %d lane %d = %v, want %v", cb, p, j, got, want)
							}
						}
					}
				}
				obuf, back := guarded(c * hw)
				FromBlocked(c, hw, b, back)
				checkGuard(t, obuf, c*hw)
				for i := range x {
					if back[i] != x[i] {
						t.Fatalf("round trip: %d = %v, want %v", i, back[i], x[i])
					}
				}

				pbuf, pooled := guarded(c)
				BlockedAvgPool(c, hw, b, pooled)
				checkGuard(t, pbuf, c)
				want, mag := make([]float32, c), make([]float32, c)
				for ch := 0; ch < c; ch++ {
					var sum, abs float64
					for _, v := range x[ch*hw : (ch+1)*hw] {
						sum += float64(v)
						abs += math.Abs(float64(v))
					}
					want[ch], mag[ch] = float32(sum/float64(hw)), float32(abs/float64(hw))
				}
				compareNamed(t, "pool", pooled, want, mag)

				g := randSlice(r, c)
				BlockedScaleReLU(c, hw, b, g)
				FromBlocked(c, hw, b, back)
				for i := range x {
					if w := max(x[i]*g[i/hw], 0); back[i] != w {
						t.Fatalf("scale: %d = %v, want %v", i, back[i], w)
					}
				}
				for i := c; i < roundUp(c, 16); i++ { // padding stays zero
					for p := 0; p < hw; p++ {
						if v := b[((i/16)*hw+p)*16+i%16]; v != 0 {
							t.Fatalf("padding channel %d pixel %d = %v after scaling", i, p, v)
						}
					}
				}
			})
		}
	}
}
