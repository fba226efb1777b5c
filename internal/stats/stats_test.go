package stats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestRanks(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    []float64
		want []float64
	}{
		{"empty", nil, []float64{}},
		{"one", []float64{7}, []float64{1}},
		{"distinct", []float64{3, 1, 2}, []float64{3, 1, 2}},
		{"ties", []float64{10, 20, 20, 30, 20}, []float64{1, 3, 3, 5, 3}},
		{"all tied", []float64{5, 5, 5, 5}, []float64{2.5, 2.5, 2.5, 2.5}},
		{"negative zero ties zero", []float64{0, math.Copysign(0, -1), -1}, []float64{2.5, 2.5, 1}},
		{"NaN last", []float64{math.NaN(), 2, math.NaN(), 1}, []float64{3.5, 2, 3.5, 1}},
	} {
		x := append([]float64(nil), tc.x...)
		got := Ranks(x)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: len %d, want %d", tc.name, len(got), len(tc.want))
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: Ranks = %v, want %v", tc.name, got, tc.want)
				break
			}
		}
		for i := range x {
			if x[i] != tc.x[i] && !(math.IsNaN(x[i]) && math.IsNaN(tc.x[i])) {
				t.Errorf("%s: input modified", tc.name)
			}
		}
	}
}

func TestSpearman(t *testing.T) {
	for _, tc := range []struct {
		name string
		x, y []float64
		want float64
	}{
		// hand-computed
		{"perfect +1", []float64{1, 2, 3, 4, 5}, []float64{2, 4, 6, 8, 10}, 1},
		{"monotone, not linear", []float64{1, 2, 3, 4, 5}, []float64{1, 8, 27, 64, 1000}, 1},
		{"perfect -1", []float64{1, 2, 3, 4}, []float64{40, 30, 20, 10}, -1},
		// ranks x (1, 2.5, 2.5, 4), y (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
		{"one tie", []float64{1, 2, 2, 3}, []float64{1, 2, 3, 4}, math.Sqrt(0.9)},
		// d = (0, 0, 1, -1, 0): 1 - 6*2/(5*24) = 0.9 (no ties, the textbook formula holds)
		{"no ties textbook", []float64{1, 2, 3, 4, 5}, []float64{1, 2, 4, 3, 5}, 0.9},
		// ranks x (1.5, 1.5, 3), y (1, 2, 3): 1.5 / sqrt(1.5 * 2) = sqrt(0.75)
		{"three points, tie", []float64{0, 0, 1}, []float64{5, 6, 7}, math.Sqrt(0.75)},

		// numpy 1.24: Pearson of average ranks, internal/stats/testdata/spearman_ref.py (scipy is not installed)
		{"numpy ties12",
			[]float64{0.8, -1.3, -0.9, 0.3, 0.6, -1.2, 0.6, -1.6, 0.1, 0.1, 1.3, 0.3},
			[]float64{-0.1, -0.5, -0.2, 0.2, 2.3, -1.6, 0.6, -0.7, -0.0, 0.1, 1.4, 0.3},
			0.80844708917128461},
		{"numpy independent15",
			[]float64{55.557287449945534, 35.838345982616225, 2.684843509671675, 4.013018574057936,
				37.152299722953764, 80.88421297705334, 94.31121284467176, 17.339637746115322, 70.70920861009743,
				35.807981910864065, 69.23543643656068, 7.397946729787441, 35.462745785049535, 19.039294724178934,
				30.64538321388165},
			[]float64{26.628847386554256, 8.439302575511487, 42.73556677400874, 17.713717896110314,
				0.8373559518810914, 12.349685227520958, 22.847590732308753, 8.355754745852707, 37.95807058581209,
				84.7858119339882, 12.698709329677914, 17.785094936557034, 35.718676091515874, 97.95911376272728,
				3.3426702102446026},
			-0.11428571428571425},
		{"numpy manyties20",
			[]float64{3, 2, 4, 0, 4, 0, 4, 4, 4, 3, 2, 2, 4, 0, 4, 4, 3, 4, 3, 0},
			[]float64{-2, 0, -3, 2, -4, 2, -2, -3, -4, -3, 0, -2, -4, 0, -4, -2, -2, -3, -2, 2},
			-0.86798251369462509},
	} {
		got, err := Spearman(tc.x, tc.y)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if math.Abs(got-tc.want) > 1e-14 {
			t.Errorf("%s: Spearman = %.17g, want %.17g", tc.name, got, tc.want)
		}
		// symmetric in its arguments
		if back, _ := Spearman(tc.y, tc.x); math.Abs(back-got) > 1e-15 {
			t.Errorf("%s: Spearman(y, x) = %v, Spearman(x, y) = %v", tc.name, back, got)
		}
	}
}

func TestSpearmanErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		x, y []float64
		want error
	}{
		{"length mismatch", []float64{1, 2, 3}, []float64{1, 2}, ErrLength},
		{"two points", []float64{1, 2}, []float64{1, 2}, ErrTooFew},
		{"empty", nil, nil, ErrTooFew},
		{"x constant", []float64{4, 4, 4, 4}, []float64{1, 2, 3, 4}, ErrZeroVariance},
		{"y constant", []float64{1, 2, 3}, []float64{0, 0, 0}, ErrZeroVariance},
		{"NaN", []float64{1, math.NaN(), 3}, []float64{1, 2, 3}, ErrNotFinite},
		{"Inf", []float64{1, 2, 3}, []float64{1, math.Inf(1), 3}, ErrNotFinite},
	} {
		if _, err := Spearman(tc.x, tc.y); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if _, _, err := BootstrapSpearman(tc.x, tc.y, 100, 0.95, 1); !errors.Is(err, tc.want) {
			t.Errorf("%s: BootstrapSpearman err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// correlated returns n pairs y = x + noise*N(0,1), x ~ N(0,1), from a fixed generator.
func correlated(n int, noise float64, seed uint64) (x, y []float64) {
	r := rand.New(rand.NewPCG(seed, 7))
	x, y = make([]float64, n), make([]float64, n)
	for i := range x {
		x[i] = r.NormFloat64()
		y[i] = x[i] + noise*r.NormFloat64()
	}
	return x, y
}

func TestBootstrapContainsEstimate(t *testing.T) {
	x, y := correlated(40, 0.3, 1)
	rho, err := Spearman(x, y)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, err := BootstrapSpearman(x, y, 2000, 0.95, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !(lo <= rho && rho <= hi) {
		t.Errorf("interval [%v, %v] does not contain the estimate %v", lo, hi, rho)
	}
	if !(lo > 0.7 && hi <= 1 && lo < hi) {
		t.Errorf("interval [%v, %v] for a strong correlation (rho %v) is implausible", lo, hi, rho)
	}
	// a wider level gives a wider interval from the same resamples
	lo99, hi99, err := BootstrapSpearman(x, y, 2000, 0.99, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !(lo99 <= lo && hi99 >= hi) {
		t.Errorf("99%% interval [%v, %v] not wider than 95%% [%v, %v]", lo99, hi99, lo, hi)
	}
}

func TestBootstrapReproducible(t *testing.T) {
	x, y := correlated(25, 1.0, 2)
	lo1, hi1, err1 := BootstrapSpearman(x, y, 500, 0.9, 7)
	lo2, hi2, err2 := BootstrapSpearman(x, y, 500, 0.9, 7)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if lo1 != lo2 || hi1 != hi2 {
		t.Errorf("same seed, different intervals: [%v, %v] and [%v, %v]", lo1, hi1, lo2, hi2)
	}
	lo3, hi3, err := BootstrapSpearman(x, y, 500, 0.9, 8)
	if err != nil {
		t.Fatal(err)
	}
	if lo3 == lo1 && hi3 == hi1 {
		t.Errorf("seeds 7 and 8 gave the identical interval [%v, %v]", lo1, hi1)
	}
}

func TestBootstrapNarrowsWithMorePoints(t *testing.T) {
	width := func(n int) float64 {
		x, y := correlated(n, 1.0, 3)
		lo, hi, err := BootstrapSpearman(x, y, 1000, 0.95, 11)
		if err != nil {
			t.Fatal(err)
		}
		return hi - lo
	}
	w20, w80, w320 := width(20), width(80), width(320)
	if !(w20 > w80 && w80 > w320) {
		t.Errorf("interval widths for 20, 80, 320 points: %v, %v, %v (want decreasing)", w20, w80, w320)
	}
	// the width scales roughly as 1/sqrt(n): 16x the points, about a quarter of the width
	if r := w320 / w20; r < 0.15 || r > 0.4 {
		t.Errorf("width ratio 320 vs 20 points = %v, want about 0.25", r)
	}
}

func TestBootstrapDegenerateResamples(t *testing.T) {
	// Three points: a resample is degenerate when all three draws have x = 0 (8/27) or are the last pair (1/27):
	// a third of them, skipped; the call succeeds from the others.
	x, y := []float64{0, 0, 1}, []float64{5, 6, 7}
	lo, hi, err := BootstrapSpearman(x, y, 1000, 0.95, 5)
	if err != nil {
		t.Fatal(err)
	}
	if lo < -1 || hi > 1 || lo > hi {
		t.Errorf("interval [%v, %v]", lo, hi)
	}
	// x ties all but the last point, y all but the first: a resample misses one of them with probability
	// 2 (3/4)^4 - (1/2)^4 = 0.57, so most resamples are degenerate and the call fails rather than report noise
	x, y = []float64{1, 1, 1, 2}, []float64{1, 2, 2, 2}
	if _, err := Spearman(x, y); err != nil {
		t.Fatal(err)
	}
	if _, _, err := BootstrapSpearman(x, y, 1000, 0.95, 5); err == nil {
		t.Error("no error when most resamples are degenerate")
	}
}

func TestBootstrapBadArguments(t *testing.T) {
	x, y := correlated(10, 0.5, 4)
	for _, tc := range []struct {
		name      string
		resamples int
		conf      float64
	}{
		{"no resamples", 0, 0.95},
		{"too few resamples", 9, 0.95},
		{"conf 0", 100, 0},
		{"conf 1", 100, 1},
		{"conf NaN", 100, math.NaN()},
		{"conf > 1", 100, 95},
	} {
		if _, _, err := BootstrapSpearman(x, y, tc.resamples, tc.conf, 1); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	for _, tc := range []struct{ q, want float64 }{{0, 1}, {1, 5}, {0.5, 3}, {0.25, 2}, {0.1, 1.4}, {0.975, 4.9}} {
		if got := quantile(s, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func ExampleSpearman() {
	macs := []float64{56, 219, 300, 390, 569, 1814} // millions, per network
	latencyMs := []float64{0.9, 1.6, 1.4, 2.3, 2.0, 4.1}
	rho, err := Spearman(macs, latencyMs)
	if err != nil {
		panic(err)
	}
	lo, hi, err := BootstrapSpearman(macs, latencyMs, 1000, 0.95, 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("rho %.4f, 95%% interval within [-1, 1]: %v\n", rho, -1 <= lo && lo <= hi && hi <= 1)
	// Output: rho 0.8857, 95% interval within [-1, 1]: true
}
