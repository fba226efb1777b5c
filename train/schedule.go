package train

import "math"

// Schedule gives the learning rate and weight decay at a step: a linear
// warm-up from 0 to the peak learning rate over WarmupSteps, then a cosine
// decay to MinLR at TotalSteps; the weight decay follows the same cosine
// from WDStart to WDEnd (annealed from the first step, as in the paper).
type Schedule struct {
	PeakLR, MinLR  float64
	WDStart, WDEnd float64
	WarmupSteps    int
	TotalSteps     int
	ConstantLR     bool // no cosine: the peak rate after warm-up
	ConstantWD     bool // no annealing: WDStart throughout
	// PolyPower > 0 replaces the cosine by DeepLab's "poly" decay:
	// MinLR + (PeakLR − MinLR)·(1 − t)^PolyPower, t going 0 → 1 from the
	// warm-up's end to TotalSteps (torchvision's segmentation reference:
	// power 0.9).
	PolyPower float64
}

// cosine returns 1 → 0 over [from, to].
func cosine(step, from, to int) float64 {
	if to <= from {
		return 0
	}
	t := math.Min(math.Max(float64(step-from)/float64(to-from), 0), 1)
	return 0.5 * (1 + math.Cos(math.Pi*t))
}

// LR returns the learning rate for step (0-based).
func (s Schedule) LR(step int) float64 {
	if step < s.WarmupSteps {
		return s.PeakLR * float64(step+1) / float64(s.WarmupSteps)
	}
	if s.ConstantLR {
		return s.PeakLR
	}
	if s.PolyPower > 0 {
		return s.MinLR + (s.PeakLR-s.MinLR)*poly(step, s.WarmupSteps, s.TotalSteps, s.PolyPower)
	}
	return s.MinLR + (s.PeakLR-s.MinLR)*cosine(step, s.WarmupSteps, s.TotalSteps)
}

// poly returns (1 − t)^power, t going 0 → 1 over [from, to].
func poly(step, from, to int, power float64) float64 {
	if to <= from {
		return 0
	}
	t := math.Min(math.Max(float64(step-from)/float64(to-from), 0), 1)
	return math.Pow(1-t, power)
}

// WeightDecay returns the weight decay for step (0-based).
func (s Schedule) WeightDecay(step int) float64 {
	if s.ConstantWD {
		return s.WDStart
	}
	return s.WDEnd + (s.WDStart-s.WDEnd)*cosine(step, 0, s.TotalSteps)
}
