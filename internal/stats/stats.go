// Package stats holds the statistics of the paper's latency studies: Spearman's rank correlation of latency
// with MACs or parameter counts across many networks, and a bootstrap confidence interval for it.
//
// Pure Go, standard library only.
package stats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Ranks returns the 1-based ranks of x, ties sharing the mean of the positions they occupy ("average" or
// "fractional" ranking): Ranks([]float64{10, 20, 20, 30, 20}) is [1, 3, 3, 5, 3]. NaNs rank after every number
// and tie with each other. x is not modified.
func Ranks(x []float64) []float64 {
	n := len(x)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	less := func(a, b float64) bool {
		if math.IsNaN(a) {
			return false
		}
		return math.IsNaN(b) || a < b
	}
	equal := func(a, b float64) bool {
		return a == b || (math.IsNaN(a) && math.IsNaN(b))
	}
	sort.SliceStable(idx, func(i, j int) bool { return less(x[idx[i]], x[idx[j]]) })
	r := make([]float64, n)
	for i := 0; i < n; {
		j := i
		for j+1 < n && equal(x[idx[j+1]], x[idx[i]]) {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}

// Errors returned by Spearman and BootstrapSpearman (wrapped with details; test with errors.Is).
var (
	ErrLength       = errors.New("stats: x and y differ in length")
	ErrTooFew       = errors.New("stats: fewer than 3 points")
	ErrZeroVariance = errors.New("stats: all values of x (or of y) are tied")
	ErrNotFinite    = errors.New("stats: NaN or infinite value")
)

// Spearman returns Spearman's rank correlation of x and y: the Pearson correlation of their average ranks
// (Ranks), so ties are handled exactly rather than by the 1 - 6 sum d^2 / (n (n^2 - 1)) shortcut, which holds
// only without ties. It fails for slices of different lengths, fewer than 3 points, non-finite values, and
// when every x or every y is tied (the correlation is then undefined).
func Spearman(x, y []float64) (float64, error) {
	if err := check(x, y); err != nil {
		return 0, err
	}
	return spearmanRanks(Ranks(x), Ranks(y))
}

func check(x, y []float64) error {
	if len(x) != len(y) {
		return fmt.Errorf("%w: %d and %d", ErrLength, len(x), len(y))
	}
	if len(x) < 3 {
		return fmt.Errorf("%w: %d", ErrTooFew, len(x))
	}
	for i := range x {
		if math.IsNaN(x[i]) || math.IsInf(x[i], 0) || math.IsNaN(y[i]) || math.IsInf(y[i], 0) {
			return fmt.Errorf("%w at index %d (x %v, y %v)", ErrNotFinite, i, x[i], y[i])
		}
	}
	return nil
}

// spearmanRanks is the Pearson correlation of two rank vectors (two-pass, float64).
func spearmanRanks(rx, ry []float64) (float64, error) {
	n := float64(len(rx))
	var mx, my float64
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0, ErrZeroVariance
	}
	r := sxy / math.Sqrt(sxx*syy)
	return math.Max(-1, math.Min(1, r)), nil
}

// BootstrapSpearman returns a percentile bootstrap confidence interval [lo, hi] at level conf (e.g. 0.95) for
// Spearman(x, y): it draws `resamples` samples of len(x) (x[i], y[i]) pairs with replacement, computes the
// rank correlation of each (ranks recomputed per resample), and returns the (1-conf)/2 and (1+conf)/2
// quantiles of those values (linear interpolation between order statistics, numpy's default).
//
// Degenerate resamples, in which every drawn x or every drawn y is tied (likely for a handful of points, since
// a resample repeats pairs), have no rank correlation: they are skipped, not redrawn, so the quantiles come from
// the remaining ones; if fewer than half of the resamples are usable the call fails.
//
// The result is deterministic for a seed (a PCG generator seeded with seed). It fails for the inputs Spearman
// rejects, resamples < 10, or conf outside (0, 1).
func BootstrapSpearman(x, y []float64, resamples int, conf float64, seed uint64) (lo, hi float64, err error) {
	if _, err := Spearman(x, y); err != nil {
		return 0, 0, err
	}
	if resamples < 10 {
		return 0, 0, fmt.Errorf("stats: %d bootstrap resamples (need at least 10)", resamples)
	}
	if !(conf > 0 && conf < 1) {
		return 0, 0, fmt.Errorf("stats: confidence level %v outside (0, 1)", conf)
	}
	n := len(x)
	rng := rand.New(rand.NewPCG(seed, 0x5be4_7a1c_93d2_0f61))
	bx, by := make([]float64, n), make([]float64, n)
	vals := make([]float64, 0, resamples)
	for b := 0; b < resamples; b++ {
		for i := 0; i < n; i++ {
			k := rng.IntN(n)
			bx[i], by[i] = x[k], y[k]
		}
		r, err := spearmanRanks(Ranks(bx), Ranks(by))
		if err != nil {
			continue // degenerate resample: skipped
		}
		vals = append(vals, r)
	}
	if 2*len(vals) < resamples {
		return 0, 0, fmt.Errorf("stats: only %d of %d bootstrap resamples have a rank correlation (too few distinct points)",
			len(vals), resamples)
	}
	sort.Float64s(vals)
	alpha := 1 - conf
	return quantile(vals, alpha/2), quantile(vals, 1-alpha/2), nil
}

// quantile of sorted s at q in [0, 1], linear interpolation between order statistics (numpy "linear").
func quantile(s []float64, q float64) float64 {
	h := q * float64(len(s)-1)
	i := int(math.Floor(h))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (h-float64(i))*(s[i+1]-s[i])
}
