package quant

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/graph"
)

// histBins is the resolution of an observer's histogram.
const histBins = 2048

// observer collects a value's range and a histogram of its non-negative
// part over [0, top), top doubling (adjacent bins merged) when a larger
// value arrives, so one pass over the calibration images suffices; top is
// a power of two and at most twice the maximum (at least 1024 bins over
// the values).
type observer struct {
	min, max float64
	top      float64
	hist     []float64
	n        float64 // positive values, in hist
	zeros    float64 // exact zeros (every ReLU output's spike), kept out of hist
	// sq is Σx² per channel (values (C, H, W)); sqN the values per channel summed.
	sq  []float64
	sqN float64
	// chMin, chMax: each channel's range.
	chMin, chMax []float64
}

// addChannels records Σx² per channel of x: (c, ...).
func (o *observer) addChannels(x []float32, c int) {
	if o.sq == nil {
		o.sq = make([]float64, c)
		o.chMin, o.chMax = make([]float64, c), make([]float64, c)
		for i := range c {
			o.chMin[i], o.chMax[i] = math.Inf(1), math.Inf(-1)
		}
	}
	if len(o.sq) != c || c == 0 {
		return
	}
	per := len(x) / c
	for ch := range c {
		var s float64
		lo, hi := o.chMin[ch], o.chMax[ch]
		for _, v := range x[ch*per : (ch+1)*per] {
			s += float64(v) * float64(v)
			lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
		}
		o.sq[ch] += s
		o.chMin[ch], o.chMax[ch] = lo, hi
	}
	o.sqN += float64(per)
}

func newObserver() *observer {
	return &observer{min: math.Inf(1), max: math.Inf(-1), hist: make([]float64, histBins)}
}

func (o *observer) add(x []float32) {
	for _, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		o.min = math.Min(o.min, f)
		o.max = math.Max(o.max, f)
		if f < 0 {
			continue
		}
		if f == 0 {
			o.zeros++
			continue
		}
		if f >= o.top {
			o.grow(f)
		}
		o.hist[int(f/o.top*histBins)]++
		o.n++
	}
}

func (o *observer) grow(f float64) {
	if o.top == 0 {
		// Ranges are powers of two, so that two observers' histograms
		// merge exactly (one is the other's with bins merged).
		o.top = math.Ldexp(1, -40)
		if f > 0 {
			_, e := math.Frexp(f) // f < 2^e
			o.top = math.Ldexp(1, max(e, -40))
		}
		if f < o.top {
			return
		}
	}
	for f >= o.top {
		for i := 0; i < histBins/2; i++ {
			o.hist[i] = o.hist[2*i] + o.hist[2*i+1]
		}
		clear(o.hist[histBins/2:])
		o.top *= 2
	}
}

func (o *observer) merge(p *observer) {
	if p.n == 0 && math.IsInf(p.max, -1) {
		return
	}
	o.min, o.max = math.Min(o.min, p.min), math.Max(o.max, p.max)
	if p.sq != nil {
		if o.sq == nil {
			o.sq = make([]float64, len(p.sq))
			o.chMin, o.chMax = append([]float64(nil), p.chMin...), append([]float64(nil), p.chMax...)
		}
		for i, v := range p.sq {
			o.sq[i] += v
			o.chMin[i], o.chMax[i] = math.Min(o.chMin[i], p.chMin[i]), math.Max(o.chMax[i], p.chMax[i])
		}
		o.sqN += p.sqN
	}
	if p.top == 0 {
		return
	}
	if o.top == 0 {
		o.top = p.top
	}
	// Bring both to the larger range (both are powers of two).
	for o.top < p.top {
		o.grow(o.top)
	}
	q := append([]float64(nil), p.hist...)
	for t := p.top; t < o.top; t *= 2 {
		for i := 0; i < histBins/2; i++ {
			q[i] = q[2*i] + q[2*i+1]
		}
		clear(q[histBins/2:])
	}
	for i := range q {
		o.hist[i] += q[i]
	}
	o.n += p.n
	o.zeros += p.zeros
}

// Methods of choosing an activation's range.
const (
	MinMax     = "minmax"
	Percentile = "percentile"
	Entropy    = "entropy"
)

// qparam chooses the uint8 quantisation of an observed value. A value
// that is never negative (every ReLU output) gets zero point 0 and a
// scale of threshold/255, the threshold chosen by the method: the
// maximum (minmax), the given percentile of the values (percentile) or
// the threshold minimising the KL divergence between the value's
// histogram and its 256-level quantisation (entropy, as TensorRT's
// calibrator). A value with negative parts (the normalised input image,
// a convolution without ReLU) gets an asymmetric range [min, max] with a
// zero point, whatever the method.
func (o *observer) qparam(method string, pct float64) (graph.QParam, error) {
	if math.IsInf(o.max, -1) {
		return graph.QParam{}, fmt.Errorf("no finite values observed")
	}
	if o.min < 0 {
		lo, hi := math.Min(o.min, 0), math.Max(o.max, 0)
		if hi-lo == 0 {
			return graph.QParam{Scale: 1}, nil
		}
		s := float32((hi - lo) / 255)
		z := int32(math.RoundToEven(-lo / float64(s)))
		return graph.QParam{Scale: s, Zero: max(0, min(255, z))}, nil
	}
	t := o.max
	switch method {
	case MinMax:
	case Percentile:
		t = o.percentile(pct)
	case Entropy:
		t = o.entropy()
	default:
		return graph.QParam{}, fmt.Errorf("unknown calibration method %q (want minmax, percentile or entropy)", method)
	}
	t = math.Min(t, o.max)
	if !(t > 0) {
		t = math.Max(o.max, 1e-8)
	}
	return graph.QParam{Scale: float32(t / 255)}, nil
}

func (o *observer) percentile(p float64) float64 {
	if o.n == 0 {
		return o.max
	}
	want := (o.n + o.zeros) * p / 100
	c := o.zeros
	for i, h := range o.hist {
		c += h
		if c >= want {
			return float64(i+1) * o.top / histBins
		}
	}
	return o.max
}

// entropy: exact zeros are left out (every threshold represents them
// exactly; kept in, ReLU's spike at zero smeared over the first level's
// bins dominates the divergence and drives the threshold far too low:
// 74 % top-1 on the built-in model). For each threshold of i bins
// (i ≥ 256), P is the histogram
// clipped to i bins (outliers added to the last), Q the quantisation of
// the clipped histogram without the outliers to 256 levels, spread back
// uniformly over the non-empty bins of each level;
// the threshold with the least KL(P‖Q) wins.
func (o *observer) entropy() float64 {
	last := 0
	for i, h := range o.hist {
		if h > 0 {
			last = i
		}
	}
	const levels = 256
	if last < levels {
		return float64(last+1) * o.top / histBins
	}
	best, bestKL := last+1, math.Inf(1)
	p := make([]float64, histBins)
	q := make([]float64, histBins)
	for i := levels; i <= last+1; i++ {
		copy(p, o.hist[:i])
		var out float64
		for _, h := range o.hist[i:] {
			out += h
		}
		p[i-1] += out
		// Quantise the clipped histogram, without the outliers, to 256
		// levels (the outliers are in P only: that is what penalises
		// clipping).
		clear(q[:i])
		for l := 0; l < levels; l++ {
			a, b := l*i/levels, (l+1)*i/levels
			var sum, nz float64
			for j := a; j < b; j++ {
				sum += o.hist[j]
				if o.hist[j] > 0 {
					nz++
				}
			}
			for j := a; j < b; j++ {
				if p[j] > 0 && nz > 0 {
					q[j] = sum / nz
				}
			}
		}
		var ps, qs float64
		for j := 0; j < i; j++ {
			ps += p[j]
			qs += q[j]
		}
		var kl float64
		for j := 0; j < i; j++ {
			if p[j] == 0 {
				continue
			}
			pj := p[j] / ps
			qj := q[j] / qs
			if qj == 0 {
				kl = math.Inf(1)
				break
			}
			kl += pj * math.Log(pj/qj)
		}
		if kl < bestKL {
			best, bestKL = i, kl
		}
	}
	return float64(best) * o.top / histBins
}

// constants returns, per channel, whether the channel was constant over
// calibration (range ≤ 1e-4 of the value's largest magnitude), and its value.
func (o *observer) constants() ([]bool, []float64) {
	if o.sq == nil {
		return nil, nil
	}
	big := math.Max(math.Abs(o.min), math.Abs(o.max))
	is := make([]bool, len(o.sq))
	val := make([]float64, len(o.sq))
	for c := range o.sq {
		if o.chMax[c]-o.chMin[c] <= 1e-4*big {
			is[c], val[c] = true, (o.chMax[c]+o.chMin[c])/2
		}
	}
	return is, val
}
