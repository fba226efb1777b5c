package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"sync"
	"testing"
)

func TestBF16Round(t *testing.T) {
	for _, tc := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // 1 + 2⁻⁸: a tie, to even (down)
		{0x3f818000, 0x3f82}, // a tie, to even (up)
		{0x3f808001, 0x3f81}, // above the tie
		{0xbf80ffff, 0xbf81}, // negative, rounds away in magnitude
		{0x7f7fffff, 0x7f80}, // the largest float32 rounds to +Inf
		{0x7f800000, 0x7f80}, // +Inf
		{0xff800000, 0xff80}, // -Inf
		{0x00000001, 0x0000}, // a denormal rounds to zero
		{0x80000000, 0x8000}, // -0
	} {
		if got := bf16(math.Float32frombits(tc.in)); got != tc.want {
			t.Errorf("bf16(%#08x) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
	for _, nan := range []uint32{0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff} {
		if got := bf16Float(bf16(math.Float32frombits(nan))); !math.IsNaN(float64(got)) {
			t.Errorf("bf16(%#08x) = %v, want NaN", nan, got)
		}
	}
}

// bf16Ref is c (+)= op(a)·op(b) in float64 over bfloat16-rounded operands,
// with the bound of float32 summation error: bound[i] = k·2⁻²³·Σ|a||b|.
func bf16Ref(m, n, k int, a, b, c []float32, aT, bT, acc bool) (ref, bound []float64) {
	ref, bound = make([]float64, m*n), make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			if acc {
				s = float64(c[i*n+j])
				sa = math.Abs(s)
			}
			for p := 0; p < k; p++ {
				av, bv := a[i*k+p], b[p*n+j]
				if aT {
					av = a[p*m+i]
				}
				if bT {
					bv = b[j*k+p]
				}
				x := float64(bf16Float(bf16(av))) * float64(bf16Float(bf16(bv)))
				s += x
				sa += math.Abs(x)
			}
			ref[i*n+j] = s
			bound[i*n+j] = float64(k+2)*0x1p-23*sa + 1e-30
		}
	}
	return ref, bound
}

// bf16Units are the kernels a bfloat16 tile job can run on here: the Go
// twin always, the AVX512-BF16 kernel and the AMX tile kernel where the
// machine has them.
func bf16Units() []string {
	u := []string{"twin"}
	if dpOK {
		u = append(u, "avx512bf16")
	}
	if HaveAMX() {
		u = append(u, "amx")
	}
	return u
}

// useBF16Unit sends the tile jobs to one kernel until the returned func
// is called.
func useBF16Unit(unit string) (restore func()) {
	amxOff, dpOff = unit != "amx", unit != "avx512bf16"
	return func() { amxOff, dpOff = false, false }
}

// TestGemmBF16 checks GemmBF16, GemmBF16TN and GemmBF16NT against float64
// sums of the bfloat16-rounded operands, on the tile kernels the machine
// has (AMX, AVX512-BF16) and on their Go twin, across edge shapes.
func TestGemmBF16(t *testing.T) {
	type path struct {
		unit   string
		goPack bool
	}
	paths := []path{{"twin", true}, {"twin", false}}
	for _, u := range bf16Units()[1:] {
		paths = append(paths, path{u, false})
	}
	if len(paths) == 2 {
		t.Log("no AMX or AVX512-BF16 here: the Go twin only")
	}
	shapes := [][3]int{{1, 1, 1}, {16, 16, 32}, {15, 17, 31}, {17, 33, 33}, {32, 32, 64}, {48, 200, 48},
		{33, 48, 100}, {64, 16, 7}, {3, 50, 129}, {48, 64, 96}, {20, 18, 700}, {48, 48, 1500}}
	if raceEnabled { // the float64 reference and the twin are slow under the race detector
		shapes = [][3]int{{15, 17, 31}, {17, 33, 33}, {48, 48, 300}}
	}
	for _, pa := range paths {
		for _, sh := range shapes {
			for _, acc := range []bool{false, true} {
				for _, v := range []string{"NN", "TN", "NT"} {
					m, n, k := sh[0], sh[1], sh[2]
					name := fmt.Sprintf("%s/gopack=%v/%s/%dx%dx%d/acc=%v", pa.unit, pa.goPack, v, m, n, k, acc)
					t.Run(name, func(t *testing.T) {
						r := rand.New(rand.NewSource(int64(m*1000 + n*10 + k)))
						a, b, c := randSlice(r, m*k), randSlice(r, k*n), randSlice(r, m*n)
						c0 := append([]float32(nil), c...)
						defer useBF16Unit(pa.unit)()
						bf16NoSIMD = pa.goPack
						defer func() { bf16NoSIMD = false }()
						switch v {
						case "NN":
							GemmBF16(m, n, k, a, b, c, acc)
						case "TN":
							GemmBF16TN(m, n, k, a, b, c, acc)
						case "NT":
							GemmBF16NT(m, n, k, a, b, c, acc)
						}
						ref, bound := bf16Ref(m, n, k, a, b, c0, v == "TN", v == "NT", acc)
						for i := range ref {
							if d := math.Abs(float64(c[i]) - ref[i]); !(d <= bound[i]) {
								t.Fatalf("element %d (%d, %d): got %v, want %v ± %.3g", i, i/n, i%n, c[i], ref[i], bound[i])
							}
						}
					})
				}
			}
		}
	}
}

// TestGemmBF16TrainShapes compares each tile kernel with its twin on the
// trainer's shapes (exact agreement is not expected: see bf16.go).
func TestGemmBF16TrainShapes(t *testing.T) {
	units := bf16Units()[1:]
	if len(units) == 0 {
		t.Skip("no AMX or AVX512-BF16 on this machine")
	}
	shapes := [][2]int{{48, 25088 / 8}, {128, 6272}, {256, 2048}}
	if testing.Short() || raceEnabled {
		shapes = [][2]int{{48, 512}, {128, 256}} // the twin is slow under the race detector
	}
	for _, unit := range units {
		for _, s := range shapes {
			c, m := s[0], s[1]
			r := rand.New(rand.NewSource(int64(c)))
			w, x := randSlice(r, c*c), randSlice(r, c*m)
			got, want := make([]float32, c*m), make([]float32, c*m)
			restore := useBF16Unit(unit)
			GemmBF16(c, m, c, w, x, got, false)
			restore()
			restore = useBF16Unit("twin")
			GemmBF16(c, m, c, w, x, want, false)
			restore()
			var worst float64
			for i := range got {
				worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/(math.Abs(float64(want[i]))+1))
			}
			t.Logf("%s %d×%d×%d: largest difference kernel vs twin %.2g", unit, c, m, c, worst)
			if worst > 1e-5 {
				t.Errorf("%s %d×%d×%d: kernel and twin differ by %.3g", unit, c, m, c, worst)
			}
		}
	}
}

// TestGemmBF16Preempted runs the tile kernel on several goroutines while
// the garbage collector keeps preempting them with signals: the tile state
// must survive the signal frames.
func TestGemmBF16Preempted(t *testing.T) {
	if !HaveBF16() {
		t.Skip("no AMX or AVX512-BF16 on this machine")
	}
	r := rand.New(rand.NewSource(7))
	const m, n, k = 64, 4096, 256
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	want := make([]float32, m*n)
	GemmBF16(m, n, k, a, b, want, false)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float32, m*n)
			for it := 0; it < 20; it++ {
				GemmBF16(m, n, k, a, b, c, false)
				for i := range c {
					if c[i] != want[i] {
						errs <- fmt.Sprintf("iteration %d: element %d %v, want %v", it, i, c[i], want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestBF16PackersAgree checks the AVX-512 packers against their Go loops,
// bit for bit, across edge shapes (k odd, partial strips, short rows) and
// special values (NaNs stay NaNs).
func TestBF16PackersAgree(t *testing.T) {
	if !useBF16SIMD() {
		t.Skip("no AVX-512 packers in this build or on this machine")
	}
	defer func() { bf16NoSIMD = false }()
	for _, sh := range [][2]int{{1, 1}, {31, 17}, {32, 16}, {33, 48}, {64, 100}, {95, 130}, {200, 33}} {
		k, n := sh[0], sh[1]
		r := rand.New(rand.NewSource(int64(k*n + 3)))
		b := randSlice(r, k*n)
		// Special values: NaNs (one whose payload is in the low half only),
		// infinities, the largest float32 (rounds to +Inf), a tie, -0.
		special := []uint32{0x7fc00000, 0x7f800001, 0xff800001, 0x7f800000, 0xff800000, 0x7f7fffff, 0x3f808000, 0x80000000}
		for i, v := range special {
			if j := (i * 37) % len(b); j < len(b) {
				b[j] = math.Float32frombits(v)
			}
		}
		kt := ceilDiv(k, 32)
		strips := ceilDiv(n, 16)
		pack := func(simd bool) (rows, cols []uint32, a []uint16) {
			bf16NoSIMD = !simd
			rows = make([]uint32, strips*256*kt)
			cols = make([]uint32, ceilDiv(k, 16)*256*ceilDiv(n, 32))
			a = make([]uint16, 16*ceilDiv(k, 16)*32*ceilDiv(n, 32))
			for i := range rows {
				rows[i] = 0xdeadbeef
			}
			for i := range cols {
				cols[i] = 0xdeadbeef
			}
			packBF16Rows(k, n, b, n, kt, 0, strips, rows)
			// b read as k rows of n for the column packer (B = bᵀ is n×k).
			packBF16Cols(n, k, b, n, ceilDiv(n, 32), 0, ceilDiv(k, 16), cols)
			packBF16A(k, n, b, n, false, a, 32*ceilDiv(n, 32), 0, 16*ceilDiv(k, 16))
			return
		}
		r1, c1, a1 := pack(true)
		r2, c2, a2 := pack(false)
		for i := range r1 {
			if r1[i] != r2[i] {
				t.Fatalf("k=%d n=%d: packBF16Rows word %d: %#x, Go %#x", k, n, i, r1[i], r2[i])
			}
		}
		for i := range c1 {
			if c1[i] != c2[i] {
				t.Fatalf("k=%d n=%d: packBF16Cols word %d: %#x, Go %#x", k, n, i, c1[i], c2[i])
			}
		}
		for i := range a1 {
			if a1[i] != a2[i] {
				t.Fatalf("k=%d n=%d: packBF16A element %d: %#x, Go %#x", k, n, i, a1[i], a2[i])
			}
		}
	}
}

// TestGemmBF16ThreadsAgree: the bfloat16 products are the same bits at any
// number of threads (the reduction parts and row groups do not change any
// element's sums).
func TestGemmBF16ThreadsAgree(t *testing.T) {
	defer SetThreads(0)
	for _, sh := range [][3]int{{256, 64, 1024}, {1024, 256, 64}, {48, 3136, 48}, {100, 70, 900}} {
		m, n, k := sh[0], sh[1], sh[2]
		r := rand.New(rand.NewSource(int64(m + n + k)))
		a, b := randSlice(r, m*k), randSlice(r, k*n)
		bt, at := randSlice(r, n*k), randSlice(r, k*m)
		var ref [3][]float32
		for i, th := range []int{1, 2, 3, 5} {
			SetThreads(th)
			out := [3][]float32{make([]float32, m*n), make([]float32, m*n), make([]float32, m*n)}
			GemmBF16(m, n, k, a, b, out[0], false)
			GemmBF16TN(m, n, k, at, b, out[1], false)
			GemmBF16NT(m, n, k, a, bt, out[2], false)
			if i == 0 {
				ref = out
				continue
			}
			for v := range out {
				for j := range out[v] {
					if out[v][j] != ref[v][j] {
						t.Fatalf("%dx%dx%d variant %d, %d threads: element %d is %v, %v on one thread", m, n, k, v, th, j, out[v][j], ref[v][j])
					}
				}
			}
		}
	}
}

// BenchmarkAMXTiles is each tile kernel alone on one thread, operands in
// L1: a 32×32 block of C over k = 256 (two A strips, two B strips;
// 524,288 multiply-adds per call).
func BenchmarkAMXTiles(b *testing.B) {
	units := map[string]bool{} // name: amx
	if HaveAMX() {
		units["amx"] = true
	}
	if dpOK {
		units["avx512bf16"] = false
	}
	if len(units) == 0 {
		b.Skip("no AMX or AVX512-BF16 on this machine")
	}
	for name, amx := range units {
		b.Run(name, func(b *testing.B) {
			const kt = 8
			a := make([]uint16, 32*32*kt)
			bb := make([]uint32, 2*256*kt)
			c := make([]float32, 32*32)
			for i := range a {
				a[i] = bf16(float32(i%7) - 3)
			}
			for i := range bb {
				bb[i] = uint32(bf16(float32(i%5)-2)) * 0x10001
			}
			j := &tileJob{a: a, lda: 32 * kt, b: bb, bstride: 256 * kt, c: c, ldc: 32, mStrips: 2, nStrips: 2, kt: kt}
			for b.Loop() {
				j.runAsm(amx)
			}
			gflops(b, 2*32*32*32*kt)
		})
	}
}
