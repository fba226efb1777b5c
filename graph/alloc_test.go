package graph

import "testing"

// steadyAllocs is the fewest allocations per run of f over three
// measurements of runs runs each. A run that allocates does so in every
// measurement; one that does not can still be charged a rare allocation
// when a garbage collection empties the kernels' scratch pool (a
// sync.Pool) during a measurement, as seen on a heavily loaded machine.
func steadyAllocs(runs int, f func()) float64 {
	best := testing.AllocsPerRun(runs, f)
	for i := 0; i < 2 && best > 0; i++ {
		best = min(best, testing.AllocsPerRun(runs, f))
	}
	return best
}
