package train

import (
	"sync/atomic"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// TestParFor checks that parForW hands out every index of [0, n) exactly
// once, in chunks whose index is below kernel.Threads(), serially for small
// work, and also when called from inside another parallel loop (the
// kernels' pool is then busy).
func TestParFor(t *testing.T) {
	defer kernel.SetThreads(kernel.Threads())
	for _, threads := range []int{1, 2, 3} {
		kernel.SetThreads(threads)
		for _, c := range []struct{ n, work int }{
			{0, 1 << 20}, {1, 1 << 20}, {2, 1 << 20}, {7, 1 << 20}, {1000, 1 << 20}, {1000, 10},
		} {
			check := func(t *testing.T) {
				seen := make([]atomic.Int32, c.n)
				var chunks atomic.Int32
				parForW(c.n, c.work, func(wk, lo, hi int) {
					chunks.Add(1)
					if wk < 0 || wk >= max(1, kernel.Threads()) || lo > hi {
						t.Errorf("n %d: chunk %d [%d, %d)", c.n, wk, lo, hi)
					}
					for i := lo; i < hi; i++ {
						seen[i].Add(1)
					}
				})
				for i := range seen {
					if v := seen[i].Load(); v != 1 {
						t.Errorf("n %d, threads %d: index %d run %d times", c.n, threads, i, v)
						return // Errorf, not Fatalf: check also runs on pool goroutines
					}
				}
				if c.work < parMinWork && chunks.Load() != 1 {
					t.Errorf("n %d: small work ran in %d chunks", c.n, chunks.Load())
				}
			}
			check(t)
			// Nested: the outer loop holds the pool.
			parFor(2, 1<<20, func(lo, hi int) {
				for range hi - lo {
					check(t)
				}
			})
		}
	}
}
