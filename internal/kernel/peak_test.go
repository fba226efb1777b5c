package kernel

import (
	"math"
	"testing"
	"time"
)

// TestPeakRates runs every peak loop briefly: each family reports a
// finite positive rate, and the list is there wherever its assembly is
// (no timing is asserted: machines are noisy).
func TestPeakRates(t *testing.T) {
	got := PeakRates(1, 5*time.Millisecond)
	if len(got) != len(peakFamilies) {
		t.Fatalf("%d families measured, %d listed", len(got), len(peakFamilies))
	}
	if haveAsm && len(got) == 0 {
		t.Error("no peak loop on a build with assembly kernels")
	}
	for _, f := range got {
		if !(f.GMACs > 0) || math.IsInf(f.GMACs, 0) || f.MACsPerIter <= 0 || f.Name == "" {
			t.Errorf("%+v", f)
		}
		t.Logf("%-70s %8.1f GMAC/s", f.Name, f.GMACs)
	}
	for _, f := range PeakRates(2, time.Millisecond) {
		if !(f.GMACs > 0) {
			t.Errorf("2 threads: %+v", f)
		}
	}
}
