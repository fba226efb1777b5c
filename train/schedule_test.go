package train

import (
	"math"
	"testing"
)

// TestSchedulePoly: DeepLab's poly decay after the warm-up, by hand
// ((1 − t)^0.9 with t from the warm-up's end), and the cosine unchanged
// without it.
func TestSchedulePoly(t *testing.T) {
	poly := Schedule{PeakLR: 0.02, WarmupSteps: 10, TotalSteps: 110, PolyPower: 0.9}
	cos := poly
	cos.PolyPower = 0
	for _, c := range []struct {
		s     Schedule
		step  int
		want  float64
		label string
	}{
		{poly, 0, 0.002, "warm-up start"},
		{poly, 9, 0.02, "warm-up end"},
		{poly, 10, 0.02, "poly start"},
		{poly, 60, 0.02 * 0.535886731268146, "poly middle: 0.5^0.9"},
		{poly, 109, 0.02 * 0.0158489319246111, "poly last step: 0.01^0.9"},
		{poly, 110, 0, "poly end"},
		{cos, 60, 0.01, "cosine middle"},
		{cos, 35, 0.02 * 0.5 * (1 + math.Cos(math.Pi/4)), "cosine quarter"},
	} {
		if got := c.s.LR(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: LR(%d) = %.10g, want %.10g", c.label, c.step, got, c.want)
		}
	}
}
