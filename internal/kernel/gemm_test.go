package kernel

import (
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// withLevel runs fn with the kernels forced to level l.
func withLevel(t testing.TB, l cpu.Level, fn func()) {
	t.Helper()
	restore := setLevel(l)
	defer restore()
	fn()
}

// microKernels lists every micro-kernel this build can run, with its twin.
func microKernels() []struct {
	name      string
	mr, nr    int
	f, twin   microKernelFunc
	available bool
} {
	best := cpu.Detected.Best()
	return []struct {
		name      string
		mr, nr    int
		f, twin   microKernelFunc
		available bool
	}{
		{"go4x8", 4, 8, gemmGo4x8, gemmGo4x8, true},
		{"avx2_6x16", 6, 16, gemmAVX2x6x16, gemm6x16Go, !haveAsm || best >= cpu.AVX2},
		{"avx512_12x32", 12, 32, gemmAVX512x12x32, gemm12x32Go, !haveAsm || best >= cpu.AVX512},
		{"avx512_12x16", 12, 16, gemmAVX512x12x16, gemm12x16Go, !haveAsm || best >= cpu.AVX512},
	}
}

// TestMicroKernels checks every micro-kernel (assembly and twin) against the
// reference loop for partial tiles, every epilogue and odd k, with guard
// bands around and between the rows of C.
func TestMicroKernels(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for _, mk := range microKernels() {
		if !mk.available {
			t.Logf("%s: not supported by this CPU", mk.name)
			continue
		}
		for _, kc := range []int{1, 2, 3, 5, 17, 64, 259} {
			ap, bp := randSlice(r, kc*mk.mr), randSlice(r, kc*mk.nr)
			bias := randSlice(r, mk.mr)
			for _, rows := range []int{1, mk.mr / 2, mk.mr - 1, mk.mr} {
				for _, cols := range []int{1, 3, mk.nr/2 + 1, mk.nr - 1, mk.nr} {
					for flags := uint(0); flags < 8; flags++ {
						ldc := cols + 5
						n := (rows-1)*ldc + cols
						c0 := randSlice(r, n)
						want := append([]float32(nil), c0...)
						gemmTileGo(mk.mr, mk.nr, kc, ap, bp, want, ldc, bias, rows, cols, flags)
						mag := make([]float32, n)
						gemmTileGo(mk.mr, mk.nr, kc, absSlice(ap), absSlice(bp), mag, ldc, absSlice(bias), rows, cols, flags&^flagReLU)
						if flags&flagAcc != 0 {
							for i := range mag {
								mag[i] += abs32(c0[i])
							}
						}
						for _, f := range []microKernelFunc{mk.f, mk.twin} {
							buf, got := guarded(n)
							for i := 0; i < rows; i++ {
								copy(got[i*ldc:i*ldc+cols], c0[i*ldc:])
							}
							f(kc, ap, bp, got, ldc, bias, rows, cols, flags)
							checkGuard(t, buf, n)
							for i := 0; i < rows; i++ {
								// The gaps between rows must stay NaN.
								if i+1 < rows {
									for _, v := range got[i*ldc+cols : (i+1)*ldc] {
										if v == v {
											t.Fatalf("%s: wrote between rows", mk.name)
										}
									}
								}
								compare(t, got[i*ldc:i*ldc+cols], want[i*ldc:i*ldc+cols], mag[i*ldc:i*ldc+cols])
							}
						}
					}
				}
			}
		}
	}
}

func abs32(v float32) float32 { return max(v, -v) }

// mobileOneCases are pointwise and dense layers of MobileOne S0 and S4.
func mobileOneCases() []convCase {
	pw := func(ci, co, hw int) Conv { return Conv{ci, hw, hw, co, 1, 1, 0, 1} }
	return []convCase{
		{"s0_pw48x48_56", pw(48, 48, 56), true, true},
		{"s0_pw128x128_28", pw(128, 128, 28), true, true},
		{"s0_pw256x256_14", pw(256, 256, 14), true, false},
		{"s0_pw256x1024_7", pw(256, 1024, 7), true, true},
		{"s0_stem", Conv{3, 224, 224, 48, 3, 2, 1, 1}, true, true},
		{"s4_pw448x896_14", pw(448, 896, 14), true, true},
		{"s4_pw896x896_7", pw(896, 896, 7), false, true},
		{"s4_dense3x3_64_56", Conv{64, 56, 56, 64, 3, 1, 1, 1}, true, true},
		{"s4_stem", Conv{3, 224, 224, 64, 3, 2, 1, 1}, true, true},
		{"s0_pw256x256_14_tail16", pw(256, 256, 14), false, false},
		{"pw_n17", Conv{40, 1, 17, 30, 1, 1, 0, 1}, true, true},
		{"pw_n47", Conv{40, 1, 47, 30, 1, 1, 0, 1}, true, false},
	}
}

// TestLevels runs Gemm, Conv2D and ConvOp at every kernel level the machine
// has against ref, on odd sizes and real layer shapes, at 1 and 2 threads.
func TestLevels(t *testing.T) {
	configs := []threadConfig{{1, 1 << 16}, {2, 0}}
	for _, l := range levels() {
		t.Run(l.String(), func(t *testing.T) {
			withLevel(t, l, func() {
				testGemmOdd(t, configs)
				for i, cc := range smallConvCases() {
					runConvOpCase(t, cc, int64(i), configs)
				}
				if testing.Short() && raceEnabled {
					return
				}
				for i, cc := range mobileOneCases() {
					t.Run(cc.String(), func(t *testing.T) { runConvOpCase(t, cc, int64(500+i), configs) })
				}
			})
		})
	}
}

func testGemmOdd(t *testing.T, configs []threadConfig) {
	dims := []int{1, 3, 5, 13, 17, 31, 33, 100}
	if testing.Short() {
		dims = []int{1, 3, 13, 33, 100}
	}
	r := rand.New(rand.NewSource(11))
	for _, m := range dims {
		for _, n := range dims {
			for _, k := range dims {
				a, b := randSlice(r, m*k), randSlice(r, k*n)
				c0 := randSlice(r, m*n)
				acc := (m+n+k)%2 == 0
				want := append([]float32(nil), c0...)
				ref.Gemm(m, n, k, a, b, want, acc)
				mag := absSlice(c0)
				ref.Gemm(m, n, k, absSlice(a), absSlice(b), mag, acc)
				for _, tc := range configs {
					buf, got := guarded(m * n)
					copy(got, c0)
					withThreads(t, tc, func() { Gemm(m, n, k, a, b, got, acc) })
					checkGuard(t, buf, m*n)
					compare(t, got, want, mag)
				}
			}
		}
	}
}

// runConvOpCase checks Conv2D and ConvOp (created at the current level)
// against ref.
func runConvOpCase(t *testing.T, cc convCase, seed int64, configs []threadConfig) {
	t.Helper()
	c := cc.c
	r := rand.New(rand.NewSource(seed))
	x := randSlice(r, c.InC*c.InH*c.InW)
	w := randSlice(r, c.OutC*(c.InC/c.Groups)*c.K*c.K)
	var bias []float32
	if cc.bias {
		bias = randSlice(r, c.OutC)
	}
	n := c.OutC * c.OutH() * c.OutW()
	want, mag := make([]float32, n), make([]float32, n)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, x, w, bias, want, cc.relu)
	ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, c.K, c.Stride, c.Pad, c.Groups, absSlice(x), absSlice(w), absSlice(bias), mag, false)
	op := NewConvOp(c, w, bias, cc.relu)
	if oc, oh, ow := op.OutShape(); oc*oh*ow != n {
		t.Fatalf("%v: OutShape %d×%d×%d", cc, oc, oh, ow)
	}
	for _, tc := range configs {
		for _, viaOp := range []bool{false, true} {
			buf, got := guarded(n)
			withThreads(t, tc, func() {
				if viaOp {
					op.Run(x, got)
				} else {
					Conv2D(c, x, w, bias, got, cc.relu)
				}
			})
			checkGuard(t, buf, n)
			compare(t, got, want, mag)
		}
	}
}

// TestConvOpNoAllocs checks that ConvOp.Run does not allocate in steady
// state, serial and parallel, at every level.
func TestConvOpNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewSource(3))
	for _, l := range levels() {
		withLevel(t, l, func() {
			for _, c := range []Conv{
				{64, 28, 28, 64, 1, 1, 0, 1},
				{256, 7, 7, 1024, 1, 1, 0, 1},
				{3, 32, 32, 16, 3, 2, 1, 1},
				{8, 10, 10, 8, 3, 1, 1, 2},
				{32, 14, 14, 32, 3, 1, 1, 32},
			} {
				x := randSlice(r, c.InC*c.InH*c.InW)
				w := randSlice(r, c.OutC*(c.InC/c.Groups)*c.K*c.K)
				b := randSlice(r, c.OutC)
				out := make([]float32, c.OutC*c.OutH()*c.OutW())
				op := NewConvOp(c, w, b, true)
				for _, tc := range []threadConfig{{1, 1 << 16}, {2, 0}} {
					withThreads(t, tc, func() {
						op.Run(x, out)
						n := testing.AllocsPerRun(20, func() { op.Run(x, out) })
						if n > 0 && op.depthwise && tc.threads > 1 {
							// The closure of depthwise's parallel split
							// escapes (depthwise.go is not ours to change).
							t.Logf("%v %+v threads %d: %v allocations per Run (depthwise)", l, c, tc.threads, n)
						} else if n > 0 {
							t.Errorf("%v %+v threads %d: %v allocations per Run", l, c, tc.threads, n)
						}
					})
				}
			}
		})
	}
}

func TestKernels(t *testing.T) {
	for _, l := range levels() {
		withLevel(t, l, func() {
			s := Kernels()
			t.Log(s)
			if want := l.String(); len(s) < len(want) || s[:len(want)] != want {
				t.Errorf("Kernels() = %q at level %v", s, l)
			}
		})
	}
}
