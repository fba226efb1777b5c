package kernel

import (
	"sync"
	"time"
)

// Peak rates: how many multiply-accumulates per second one instruction
// family reaches on this CPU when nothing else limits it (independent
// chains on registers, no memory traffic; the loops are generated in
// _gen/peak). They are the ceilings of the kernels built on each family,
// so that a kernel's rate can be stated as a share of what the CPU can do
// with the instructions it uses, and so that precisions compare on what
// the hardware offers rather than on one implementation.

// PeakFamily is one measured instruction family.
type PeakFamily struct {
	// Name names the family and what it computes.
	Name string
	// Use says which kernels are built on it.
	Use string
	// MACsPerIter are the multiply-accumulates of one loop iteration.
	MACsPerIter int
	// GMACs is the rate: 10⁹ multiply-accumulates per second, on all the
	// threads together.
	GMACs float64
	run   func(n int)
}

// peakFamilies lists the families this build can run (peak_amd64.go).
var peakFamilies []PeakFamily

// PeakRates measures every family this CPU and build can run, each on
// threads goroutines at once (one per core; at least 1), for about d
// each; nil without assembly kernels (pure Go has no instruction to
// measure). The best of five timings is kept.
func PeakRates(threads int, d time.Duration) []PeakFamily {
	threads = max(1, threads)
	var out []PeakFamily
	for _, f := range peakFamilies {
		// Size n so that one timing takes about d/5.
		n := 1 << 10
		for {
			t := timePeak(f.run, n, 1)
			if t >= d/50 || n >= 1<<30 {
				n = int(float64(n) * float64(d/5) / float64(max(t, time.Microsecond)))
				break
			}
			n *= 4
		}
		n = max(n, 1)
		best := time.Duration(1<<63 - 1)
		for range 5 {
			best = min(best, timePeak(f.run, n, threads))
		}
		f.GMACs = float64(f.MACsPerIter) * float64(n) * float64(threads) / best.Seconds() / 1e9
		f.run = nil
		out = append(out, f)
	}
	return out
}

// timePeak runs run(n) on threads goroutines at once and returns the wall
// time of the slowest.
func timePeak(run func(int), n, threads int) time.Duration {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			run(n)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return time.Since(t0)
}
