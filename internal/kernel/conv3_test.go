package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// conv3Ref is the reference of Conv3Plane: output pixel by output pixel,
// the padding decided per tap, in float64. With abs it sums |w|·|x|
// instead (the scale of the rounding error).
func conv3Ref(w *[9]float32, x []float32, h, width, s int, abs bool) []float64 {
	out := make([]float64, h*width*s)
	for y := range h {
		for px := range width {
			for j := range s {
				var v float64
				for r := range 3 {
					for c := range 3 {
						yy, xx := y+r-1, px+c-1
						if yy < 0 || yy >= h || xx < 0 || xx >= width {
							continue
						}
						p := float64(w[3*r+c]) * float64(x[(yy*width+xx)*s+j])
						if abs {
							p = math.Abs(p)
						}
						v += p
					}
				}
				out[(y*width+px)*s+j] = v
			}
		}
	}
	return out
}

// TestConv3Plane checks Conv3Plane (set and add) and Corr3Plane at every
// level against the reference, on planes of 1–9 and 28 rows and columns
// and pixel sizes that are and are not multiples of the vector length.
// Corr3Plane is checked through the identity that makes it Conv3Plane's
// weight gradient: g[t] = Σ d·Conv3Plane(e_t, x) for the unit weight e_t.
func TestConv3Plane(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	sizes := []int{1, 2, 3, 4, 5, 8, 9, 28}
	for _, l := range vecKernels.levels() {
		restore := vecKernels.set(l)
		for k, h := range sizes {
			for _, width := range sizes[max(0, k-2) : k+1] {
				for _, s := range []int{1, 3, 16, 17, 64, 130} {
					name := fmt.Sprintf("%v/h%d/w%d/s%d", l, h, width, s)
					n := h * width * s
					var w [9]float32
					for i := range w {
						w[i] = float32(r.NormFloat64())
					}
					x := randSlice(r, n)
					want := conv3Ref(&w, x, h, width, s, false)
					mag := conv3Ref(&w, x, h, width, s, true)
					dst := make([]float32, n+1)
					for i := range n {
						dst[i] = float32(i) // overwritten
					}
					dst[n] = 42 // untouched
					Conv3Plane(&w, x, dst[:n], h, width, s, false)
					start := randSlice(r, n)
					acc := append([]float32(nil), start...)
					Conv3Plane(&w, x, acc, h, width, s, true)
					for i := range n {
						tol := 1e-6*mag[i] + 1e-30
						if d := math.Abs(float64(dst[i]) - want[i]); !(d <= tol) {
							t.Fatalf("%s: Conv3Plane dst[%d] = %v, want %v", name, i, dst[i], want[i])
						}
						wa := want[i] + float64(start[i])
						if d := math.Abs(float64(acc[i]) - wa); !(d <= tol+1e-6*math.Abs(float64(start[i]))) {
							t.Fatalf("%s: Conv3Plane add dst[%d] = %v, want %v", name, i, acc[i], wa)
						}
					}
					if dst[n] != 42 {
						t.Fatalf("%s: Conv3Plane wrote past the plane", name)
					}
					d := randSlice(r, n)
					g := [9]float64{100, 100, 100, 100, 100, 100, 100, 100, 100}
					Corr3Plane(d, x, h, width, s, &g)
					for k := range 9 {
						var e [9]float32
						e[k] = 1
						var want, mag float64
						for i, v := range conv3Ref(&e, x, h, width, s, false) {
							want += float64(d[i]) * v
							mag += math.Abs(float64(d[i]) * v)
						}
						want += 100
						if diff := math.Abs(g[k] - want); !(diff <= 1e-6*mag+1e-12) {
							t.Fatalf("%s: Corr3Plane g[%d] = %v, want %v", name, k, g[k], want)
						}
					}
				}
			}
		}
		restore()
	}
}

// TestConv3PlaneBadArgs checks that short slices and negative sizes panic
// before anything is written.
func TestConv3PlaneBadArgs(t *testing.T) {
	x := make([]float32, 12)
	dst := make([]float32, 12)
	var g [9]float64
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"Conv3Plane/short x", func() { Conv3Plane(&[9]float32{1}, x[:11], dst, 2, 2, 3, false) }},
		{"Conv3Plane/short dst", func() { Conv3Plane(&[9]float32{1}, x, dst[:11], 2, 2, 3, false) }},
		{"Conv3Plane/negative", func() { Conv3Plane(&[9]float32{1}, x, dst, -2, -2, 3, false) }},
		{"Corr3Plane/short", func() { Corr3Plane(dst[:11], x, 2, 2, 3, &g) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", c.name)
				}
				for i, v := range dst {
					if v != 0 {
						t.Fatalf("dst[%d] = %v written", i, v)
					}
				}
			}()
			c.fn()
		})
	}
	if g != [9]float64{} {
		t.Errorf("g = %v written", g)
	}
}
