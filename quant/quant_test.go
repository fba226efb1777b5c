package quant

import (
	"math"
	"testing"
)

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

func TestObserverQParams(t *testing.T) {
	// 10,000 values uniform in [0, 1) and one outlier at 100.
	o := newObserver()
	x := make([]float32, 10000)
	for i := range x {
		x[i] = float32(i) / 10000
	}
	o.add(x)
	o.add([]float32{100})
	cases := []struct {
		method   string
		pct      float64
		min, max float64 // range the threshold (scale·255) must fall in
	}{
		{MinMax, 0, 100, 100},
		{Percentile, 99.9, 0.99, 1.1}, // the outlier is past the 99.9th percentile
		{Entropy, 0, 0.9, 100},        // within the observed range
	}
	for _, c := range cases {
		q, err := o.qparam(c.method, c.pct)
		if err != nil {
			t.Fatal(err)
		}
		th := float64(q.Scale) * 255
		if q.Zero != 0 || th < c.min*0.999 || th > c.max*1.001 {
			t.Errorf("%s: threshold %.4g zero %d, want [%g, %g] and zero 0", c.method, th, q.Zero, c.min, c.max)
		}
	}
	if _, err := o.qparam("median", 0); err == nil {
		t.Error("unknown method accepted")
	}
	// A signed value gets an asymmetric range with a zero point whatever the method.
	s := newObserver()
	s.add([]float32{-1, 0.5, 3})
	for _, m := range []string{MinMax, Percentile, Entropy} {
		q, _ := s.qparam(m, 99)
		if math.Abs(float64(q.Scale)-4.0/255) > 1e-7 || q.Zero != 64 { // round(1/(4/255)) = round(63.75)
			t.Errorf("%s: signed range gives scale %v zero %d, want %v, 64", m, q.Scale, q.Zero, 4.0/255)
		}
	}
	// Nothing observed: an error, not a zero scale.
	if _, err := newObserver().qparam(MinMax, 0); err == nil {
		t.Error("empty observer gave parameters")
	}
}

// TestObserverMerge: observing in two parts and merging gives the same
// histogram as observing everything at once (the parallel calibration).
func TestObserverMerge(t *testing.T) {
	a, b, all := newObserver(), newObserver(), newObserver()
	x := []float32{0.1, 0.2, 3, 0, 0.05}
	y := []float32{40, 0.3, 7, 1e-3}
	a.add(x)
	b.add(y)
	all.add(x)
	all.add(y)
	a.merge(b)
	if a.top != all.top || a.n != all.n || a.max != all.max {
		t.Fatalf("merged top %v n %v max %v, want %v %v %v", a.top, a.n, a.max, all.top, all.n, all.max)
	}
	for i := range a.hist {
		if a.hist[i] != all.hist[i] {
			t.Fatalf("bin %d: %v, want %v", i, a.hist[i], all.hist[i])
		}
	}
}

func TestQuantizeConvEdges(t *testing.T) {
	// Channel 0 all zero; channel 1 has its max at −2.54 (scale 0.02) and
	// a tie 0.01 = 0.5 steps (rounds to even 0); a bias beyond int32.
	w := []float32{0, 0, 0, -2.54, 0.01, 0.03}
	b := []float32{1, 1e12}
	c := QuantizeConv(w, b, 2, 0.5)
	if c.WScale[0] != 1 || c.W[0] != 0 || c.W[1] != 0 || c.W[2] != 0 {
		t.Errorf("zero channel: scale %v, weights %v", c.WScale[0], c.W[:3])
	}
	if c.W[3] != -127 || c.W[4] != 0 || c.W[5] != 2 {
		t.Errorf("weights %v, want -127 0 2 (0.5 and 1.5 steps tie to even)", c.W[3:])
	}
	if c.Bias[0] != 2 || c.Bias[1] != math.MaxInt32 {
		t.Errorf("biases %v, want 2 and saturated %d", c.Bias, math.MaxInt32)
	}
}

func TestQuantizeConvSevenBits(t *testing.T) {
	w := []float32{1, -0.5, 0.25, -1, 0.01, 0.7}
	c := QuantizeConvBits(w, []float32{0, 0}, 2, 1, 63)
	for i, v := range c.W {
		if v > 63 || v < -63 {
			t.Errorf("weight %d = %d outside ±63", i, v)
		}
	}
	if c.W[0] != 63 || c.W[3] != -63 {
		t.Errorf("channel maxima %d, %d, want ±63", c.W[0], c.W[3])
	}
	if _, err := (&Calibration{}).Quantize(Options{WeightBits: 9}); err == nil {
		t.Error("9-bit weights accepted")
	}
}
