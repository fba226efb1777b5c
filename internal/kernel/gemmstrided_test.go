package kernel

import (
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// TestGemmStrided checks GemmStrided on column views of wider matrices
// (attention's heads: lda, ldb, ldc larger than a row) against ref.Gemm on
// dense copies, B plain and transposed, at every level, serial and
// parallel, with NaN guards around c and between its rows.
func TestGemmStrided(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	cases := []struct{ m, n, k int }{
		{1, 1, 1}, {3, 5, 7}, {13, 17, 24}, {49, 49, 30}, {49, 30, 49},
		{16, 36, 16}, {100, 24, 100}, {196, 196, 24}, {37, 33, 0},
	}
	for _, l := range levels() {
		withLevel(t, l, func() {
			for _, cs := range cases {
				m, n, k := cs.m, cs.n, cs.k
				for _, bT := range []bool{false, true} {
					// Dense operands, then embedded at an offset in rows
					// of a wider matrix.
					a, b := randSlice(r, m*k), randSlice(r, k*n)
					c0 := randSlice(r, m*n)
					acc := (m+n+k)%2 == 1
					want := append([]float32(nil), c0...)
					ref.Gemm(m, n, k, a, b, want, acc)
					mag := absSlice(c0)
					ref.Gemm(m, n, k, absSlice(a), absSlice(b), mag, acc)
					lda, offA := k+5, 2
					wa := randSlice(r, m*lda+offA)
					for i := 0; i < m; i++ {
						copy(wa[offA+i*lda:], a[i*k:(i+1)*k])
					}
					var wb []float32
					var ldb int
					offB := 3
					if bT {
						ldb = k + 7
						wb = randSlice(r, n*ldb+offB)
						for j := 0; j < n; j++ {
							for p := 0; p < k; p++ {
								wb[offB+j*ldb+p] = b[p*n+j]
							}
						}
					} else {
						ldb = n + 7
						wb = randSlice(r, k*ldb+offB)
						for p := 0; p < k; p++ {
							copy(wb[offB+p*ldb:], b[p*n:(p+1)*n])
						}
					}
					ldc := n + 3
					span := (m-1)*ldc + n
					for _, tc := range []threadConfig{{1, 1 << 16}, {2, 0}, {3, 0}} {
						buf, win := guarded(span)
						for i := 0; i < m; i++ {
							copy(win[i*ldc:i*ldc+n], c0[i*n:])
						}
						withThreads(t, tc, func() {
							GemmStrided(m, n, k, wa[offA:], lda, wb[offB:], ldb, bT, win, ldc, acc, 0)
						})
						checkGuard(t, buf, span)
						got := make([]float32, m*n)
						for i := 0; i < m; i++ {
							for j, v := range win[i*ldc+n : min((i+1)*ldc, span)] {
								if v == v {
									t.Fatalf("%v %v bT=%v: wrote between rows at (%d, %d)", l, cs, bT, i, n+j)
								}
							}
							copy(got[i*n:], win[i*ldc:i*ldc+n])
						}
						compare(t, got, want, mag)
					}
				}
			}
		})
	}
}

// TestGemmStridedSerialNoAllocs: with limit 1 GemmStrided allocates
// nothing, whatever Threads() says.
func TestGemmStridedSerialNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	m, n, k, d3 := 196, 196, 24, 3*96
	r := rand.New(rand.NewSource(1))
	qkv := randSlice(r, m*d3)
	s := make([]float32, m*n)
	withThreads(t, threadConfig{2, 0}, func() {
		if a := testing.AllocsPerRun(10, func() {
			GemmStrided(m, n, k, qkv, d3, qkv[96:], d3, true, s, n, false, 1)
		}); a > 0 {
			t.Errorf("%v allocations per call", a)
		}
	})
	if math.IsNaN(float64(s[0])) {
		t.Fatal("no result")
	}
}
