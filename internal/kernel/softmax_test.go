package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// TestSoftmax runs every softmax kernel the machine has on lengths below,
// at and above the vector widths and unrolls (1 … 70, attention's 16, 49,
// 196, 1000) and on rows from tame to extreme (spreads of e^±80, equal
// entries), against float64, with NaN guards on both sides.
func TestSoftmax(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	var lengths []int
	for n := 1; n <= 70; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 196, 1000)
	for _, l := range softmaxKernels.levels() {
		im := softmaxKernels.at(l)
		for _, n := range lengths {
			for _, std := range []float64{0, 1, 30} {
				for _, scale := range []float32{1, 0.2} {
					x := make([]float32, n)
					for i := range x {
						x[i] = float32(3 + std*r.NormFloat64())
					}
					buf, got := guarded(n)
					copy(got, x)
					im.softmax(got, scale*math.Log2E)
					checkGuard(t, buf, n)
					checkSoftmax(t, fmt.Sprintf("%v n=%d std=%g scale=%g", l, n, std, scale), x, got, scale)
				}
			}
		}
	}
}

// checkSoftmax compares got with softmax(scale·x) in float64: within 1e-6
// relative, plus 1.2e-7·|exponent| (the exponent is rounded to float32),
// or below the smallest normal float32.
func checkSoftmax(t *testing.T, name string, x, got []float32, scale float32) {
	t.Helper()
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	sum := 0.0
	for _, v := range x {
		sum += math.Exp(float64(scale) * (float64(v) - m))
	}
	for i, v := range x {
		e := float64(scale) * (float64(v) - m)
		want := math.Exp(e) / sum
		if d := math.Abs(float64(got[i]) - want); !(d <= (1e-6+1.2e-7*math.Abs(e))*want || d < 1.2e-38) {
			t.Fatalf("%s: [%d] = %g, want %g", name, i, got[i], want)
		}
	}
}

// TestExp2Neg: the twin's 2^t over [−130, 0] against float64.
func TestExp2Neg(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 1300000; i++ {
		x := -float32(i) * 1e-4
		want := math.Exp2(math.Max(float64(x), -126))
		worst = math.Max(worst, math.Abs(float64(exp2Neg(x))-want)/want)
	}
	if t.Logf("worst relative error %.2g", worst); worst > 3e-7 {
		t.Errorf("relative error %.3g over 3e-7", worst)
	}
}

func TestSoftmaxNoAllocs(t *testing.T) {
	x := make([]float32, 196)
	if a := testing.AllocsPerRun(10, func() { Softmax(x, 0.2) }); a > 0 {
		t.Errorf("%v allocations per call", a)
	}
}

// BenchmarkSoftmax: rows of attention's lengths in MobileViT-XS, every
// level.
func BenchmarkSoftmax(b *testing.B) {
	for _, l := range softmaxKernels.levels() {
		im := softmaxKernels.at(l)
		for _, n := range []int{16, 49, 196} {
			b.Run(fmt.Sprintf("%v/%d", l, n), func(b *testing.B) {
				x := randSlice(rand.New(rand.NewSource(1)), n)
				b.SetBytes(int64(4 * n))
				for range b.N {
					im.softmax(x, 0.3)
				}
			})
		}
	}
}
