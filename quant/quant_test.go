package quant

import "math"

// testImages are deterministic 28×28 grey images normalised like
// Fashion-MNIST (stripes and a dark blob), so tests need no data set.
type testImages struct{ n int }

func (s testImages) Len() int { return s.n }
func (s testImages) Image(i int) ([]float32, error) {
	x := make([]float32, 28*28)
	for y := range 28 {
		for xx := range 28 {
			v := 0.5 + 0.5*math.Sin(float64(xx*(i%5+1))/4+float64(y*(i%3+1))/5)
			if (xx-14)*(xx-14)+(y-14)*(y-14) < 40+i*7 {
				v *= 0.3
			}
			x[y*28+xx] = float32((v - 0.286) / 0.353)
		}
	}
	return x, nil
}
