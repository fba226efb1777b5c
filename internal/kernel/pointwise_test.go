package kernel

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"unsafe"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// pwShape is a pointwise layer: cin → cout channels on an h×w map.
type pwShape struct {
	name      string
	cin, cout int
	h, w      int
}

func (s pwShape) pixels() int { return s.h * s.w }

func pwSq(name string, cin, cout, hw int) pwShape { return pwShape{name, cin, cout, hw, hw} }

// pwRealShapes are the pointwise layers of MobileOne S0, S1 and S4 at
// 224×224.
var pwRealShapes = []pwShape{
	pwSq("s0_pw48x48_56", 48, 48, 56),
	pwSq("s0_pw48x128_28", 48, 128, 28),
	pwSq("s0_pw128x128_28", 128, 128, 28),
	pwSq("s0_pw128x256_14", 128, 256, 14),
	pwSq("s0_pw256x256_14", 256, 256, 14),
	pwSq("s0_pw256x1024_7", 256, 1024, 7),
	pwSq("s1_pw96x96_56", 96, 96, 56),
	pwSq("s4_pw192x192_56", 192, 192, 56),
	pwSq("s4_pw448x448_14", 448, 448, 14),
	pwSq("s4_pw1024x2048_7", 1024, 2048, 7),
}

// withPWLevel runs fn with new PointwiseOps built for level l.
func withPWLevel(l cpu.Level, fn func()) {
	restore := pwKernels.set(l)
	defer restore()
	fn()
}

// pwCase is the data of one test case: a blocked input in a NaN-guarded
// buffer (padding channels zero) and the reference output.
type pwCase struct {
	s         pwShape
	xb        []float32 // blocked input
	w, b      []float32
	want, mag []float32 // NCHW
	relu      bool
}

func newPWCase(s pwShape, bias, relu bool, seed int64) *pwCase {
	r := rand.New(rand.NewSource(seed))
	hw := s.pixels()
	x := randSlice(r, s.cin*hw)
	c := &pwCase{s: s, relu: relu}
	_, c.xb = guarded(BlockedLen(s.cin, hw))
	ToBlocked(s.cin, hw, x, c.xb)
	c.w = guardedRand(r, s.cin*s.cout)
	if bias {
		c.b = guardedRand(r, s.cout)
	}
	c.want, c.mag = make([]float32, s.cout*hw), make([]float32, s.cout*hw)
	ref.Conv2D(s.cin, s.h, s.w, s.cout, 1, 1, 0, 1, x, c.w, c.b, c.want, relu)
	ref.Conv2D(s.cin, s.h, s.w, s.cout, 1, 1, 0, 1, absSlice(x), absSlice(c.w), absSlice(c.b), c.mag, false)
	return c
}

// check runs the case on op with the given threads and compares: out
// starts as NaN garbage, padding channels must come out as exact zeros and
// nothing outside out may be written.
func (c *pwCase) check(t *testing.T, name string, op *PointwiseOp, tc threadConfig) {
	t.Helper()
	s, hw := c.s, c.s.pixels()
	n := BlockedLen(s.cout, hw)
	buf, out := guarded(n)
	withThreads(t, tc, func() { op.Run(c.xb, hw, out) })
	checkGuard(t, buf, n)
	for ch := s.cout; ch < Blocks(s.cout)*BlockC; ch++ {
		cb, j := ch/BlockC, ch%BlockC
		for p := 0; p < hw; p++ {
			if v := out[(cb*hw+p)*BlockC+j]; v != 0 {
				t.Fatalf("%s: padding channel %d pixel %d = %v, want 0", name, ch, p, v)
			}
		}
	}
	got := make([]float32, s.cout*hw)
	FromBlocked(s.cout, hw, out, got)
	compareNamed(t, name, got, c.want, c.mag)
}

// pwConfigs are the thread configurations of the pointwise tests: serial,
// and two threads with the parallel path forced even on tiny problems.
var pwConfigs = []threadConfig{{1, 1 << 16}, {2, 0}}

// runPWCase checks the case at every level and thread configuration.
func runPWCase(t *testing.T, s pwShape, bias, relu bool, seed int64) {
	t.Helper()
	c := newPWCase(s, bias, relu, seed)
	for _, l := range pwKernels.levels() {
		var op *PointwiseOp
		withPWLevel(l, func() { op = NewPointwiseOp(s.cin, s.cout, c.w, c.b, relu) })
		if op.im.level != l {
			t.Fatalf("op built at %v has level %v", l, op.im.level)
		}
		for _, tc := range pwConfigs {
			c.check(t, fmt.Sprintf("%v/t%d", l, tc.threads), op, tc)
			if t.Failed() {
				return
			}
		}
	}
}

func TestPWLevels(t *testing.T) {
	ls := pwKernels.levels()
	if len(ls) == 0 || ls[0] != cpu.PureGo {
		t.Fatalf("pwKernels.levels() = %v, want purego first", ls)
	}
	for _, l := range ls {
		im := pwKernels.best(l)
		if im.level != l {
			t.Errorf("pwKernels.best(%v) = %v", l, im.level)
		}
		if im.r < 1 || im.r > pwMaxR || im.nb < 1 || im.nb > pwMaxNB || im.kcb < 1 {
			t.Errorf("%v: bad tile %d×%d kcb %d", l, im.r, im.nb, im.kcb)
		}
		for r := 1; r <= im.r; r++ {
			for nb := 1; nb <= im.nb; nb++ {
				if im.kern[r][nb] == nil {
					t.Errorf("%v: no kernel for %d×%d", l, r, nb)
				}
			}
		}
	}
	t.Logf("levels %v, active %v, cpu %v", ls, pwKernels.active.level, cpu.Detected)
}

// TestPointwiseReal runs the real MobileOne layer shapes.
func TestPointwiseReal(t *testing.T) {
	if testing.Short() {
		t.Skip("real shapes are slow against the reference")
	}
	for i, s := range pwRealShapes {
		t.Run(s.name, func(t *testing.T) {
			runPWCase(t, s, i%3 != 2, i%4 != 3, int64(300+i))
		})
	}
}

// TestPointwiseOdd covers channel counts with every block and group tail
// and pixel counts with every tile tail.
func TestPointwiseOdd(t *testing.T) {
	chans := []int{1, 3, 17, 40, 100}
	pix := []int{1, 2, 5, 7, 13, 49}
	i := 0
	for _, cin := range chans {
		for _, cout := range chans {
			for _, hw := range pix {
				if testing.Short() && i%3 != 0 {
					i++
					continue
				}
				bias, relu := i%2 == 0, i%3 != 1
				s := pwShape{"", cin, cout, hw, 1}
				t.Run(fmt.Sprintf("%dx%d_%d_b%v_r%v", cin, cout, hw, bias, relu), func(t *testing.T) {
					runPWCase(t, s, bias, relu, int64(i))
				})
				i++
			}
		}
	}
}

// TestPointwiseFlags covers bias × ReLU, with several input-channel chunks
// (a partial last one) and every output-block group tail.
func TestPointwiseFlags(t *testing.T) {
	shapes := []pwShape{
		{"", 300, 100, 13, 1},
		{"", 33, 80, 5, 5},
		{"", 260, 20, 3, 3},
		{"", 520, 130, 4, 2},
	}
	for i, s := range shapes {
		for _, bias := range []bool{false, true} {
			for _, relu := range []bool{false, true} {
				t.Run(fmt.Sprintf("%dx%d_%d_b%v_r%v", s.cin, s.cout, s.pixels(), bias, relu), func(t *testing.T) {
					runPWCase(t, s, bias, relu, int64(500+i))
				})
			}
		}
	}
}

// TestPointwiseKernels checks every assembly kernel against its pure-Go
// twin on a tile in the middle of larger blocked buffers: the input is
// guarded (a read past the tile turns the output into NaN) and nothing
// outside the tile's rows of out may be written.
func TestPointwiseKernels(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	const kb, xstride, ostride = 3, 7 * BlockC, 9 * BlockC
	for _, l := range pwKernels.levels() {
		if l == cpu.PureGo {
			continue
		}
		im := pwKernels.at(l)
		for rows := 1; rows <= im.r; rows++ {
			for nb := 1; nb <= im.nb; nb++ {
				for _, flags := range []uint{0, pwAcc, pwBias | pwReLU, pwAcc | pwBias | pwReLU} {
					name := fmt.Sprintf("%v/%dx%d/f%d", l, rows, nb, flags)
					x := guardedRand(r, (kb-1)*xstride+rows*BlockC)
					w := guardedRand(r, kb*BlockC*nb*BlockC)
					b := guardedRand(r, nb*BlockC)
					n := (nb-1)*ostride + rows*BlockC
					init := randSlice(r, n)
					for i := range init {
						if i%ostride >= rows*BlockC {
							init[i] = 12345 // outside the tile
						}
					}
					bufA, outA := guarded(n)
					copy(outA, init)
					outG := append([]float32(nil), init...)
					im.kern[rows][nb](x, w, outA, b, kb, xstride, ostride, flags)
					pwTileGo(rows, nb, x, w, outG, b, kb, xstride, ostride, flags)
					checkGuard(t, bufA, n)
					mag := make([]float32, n)
					pwTileGo(rows, nb, absSlice(x), absSlice(w), mag, absSlice(b), kb, xstride, ostride, flags&^pwReLU)
					for i := range mag {
						mag[i] += pwAbs(init[i])
					}
					for i := range outA {
						if i%ostride >= rows*BlockC && outA[i] != 12345 {
							t.Fatalf("%s: wrote outside the tile at %d", name, i)
						}
					}
					compareNamed(t, name, outA, outG, mag)
				}
			}
		}
	}
}

func pwAbs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// TestPointwiseNoAllocs checks that steady-state calls do not allocate at
// any level, serial and parallel.
func TestPointwiseNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewSource(10))
	for _, l := range pwKernels.levels() {
		for _, s := range []pwShape{{"", 64, 64, 7, 7}, {"", 40, 100, 13, 1}, {"", 300, 40, 5, 5}} {
			hw := s.pixels()
			x := randSlice(r, BlockedLen(s.cin, hw))
			out := make([]float32, BlockedLen(s.cout, hw))
			w, b := randSlice(r, s.cin*s.cout), randSlice(r, s.cout)
			var op, opNB *PointwiseOp
			withPWLevel(l, func() {
				op = NewPointwiseOp(s.cin, s.cout, w, b, true)
				opNB = NewPointwiseOp(s.cin, s.cout, w, nil, false)
			})
			for _, tc := range pwConfigs {
				withThreads(t, tc, func() {
					op.Run(x, hw, out)
					opNB.Run(x, hw, out)
					if n := testing.AllocsPerRun(20, func() { op.Run(x, hw, out) }); n > 0 {
						t.Errorf("%v %+v t%d: %v allocations per call", l, s, tc.threads, n)
					}
					if n := testing.AllocsPerRun(20, func() { opNB.Run(x, hw, out) }); n > 0 {
						t.Errorf("%v %+v t%d no bias: %v allocations per call", l, s, tc.threads, n)
					}
				})
			}
		}
	}
}

// TestPointwiseConcurrent runs one op from several goroutines on different
// buffers (meaningful under -race).
func TestPointwiseConcurrent(t *testing.T) {
	s := pwShape{"", 40, 70, 6, 5}
	c := newPWCase(s, true, true, 11)
	op := NewPointwiseOp(s.cin, s.cout, c.w, c.b, true)
	hw := s.pixels()
	outs := make([][]float32, 4)
	var wg sync.WaitGroup
	withThreads(t, threadConfig{2, 0}, func() {
		for i := range outs {
			outs[i] = make([]float32, BlockedLen(s.cout, hw))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					op.Run(c.xb, hw, outs[i])
				}
			}()
		}
		wg.Wait()
	})
	for i, out := range outs {
		got := make([]float32, s.cout*hw)
		FromBlocked(s.cout, hw, out, got)
		compareNamed(t, fmt.Sprintf("goroutine %d", i), got, c.want, c.mag)
	}
}

// TestPointwiseNoInput covers cin = 0 (bias only) and empty maps.
func TestPointwiseNoInput(t *testing.T) {
	for _, l := range pwKernels.levels() {
		var op *PointwiseOp
		withPWLevel(l, func() {
			op = NewPointwiseOp(0, 20, nil, []float32{-1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, -20}, true)
		})
		out := make([]float32, BlockedLen(20, 3))
		for i := range out {
			out[i] = 99
		}
		op.Run(nil, 3, out)
		for ch := 0; ch < 32; ch++ {
			want := float32(0)
			if ch < 20 {
				want = max(float32(ch+1), 0)
				if ch == 0 || ch == 19 {
					want = 0
				}
			}
			for p := 0; p < 3; p++ {
				if got := out[((ch/BlockC)*3+p)*BlockC+ch%BlockC]; got != want {
					t.Fatalf("%v: channel %d pixel %d = %v, want %v", l, ch, p, got, want)
				}
			}
		}
		op.Run(nil, 0, nil)
	}
}

// TestPointwiseWorkers checks results with the per-op worker cap set.
func TestPointwiseWorkers(t *testing.T) {
	s := pwShape{"", 72, 90, 9, 7}
	c := newPWCase(s, true, false, 12)
	op := NewPointwiseOp(s.cin, s.cout, c.w, c.b, false)
	for _, n := range []int{1, 2, 3} {
		op.Workers = n
		c.check(t, fmt.Sprintf("workers %d", n), op, threadConfig{2, 0})
	}
}

// TestPWAligned checks that packed weights and bias start on a cache line.
func TestPWAligned(t *testing.T) {
	for _, n := range []int{1, 15, 16, 100, 4096} {
		for range 10 {
			s := pwAligned(n)
			if len(s) != n || uintptr(unsafe.Pointer(&s[0]))%64 != 0 {
				t.Fatalf("pwAligned(%d): len %d, address %p", n, len(s), &s[0])
			}
		}
	}
}

func TestPwChunkFor(t *testing.T) {
	for _, c := range []struct{ def, l2, want int }{
		{640 << 10, 0, 640 << 10},         // L2 unknown: the default
		{640 << 10, 1 << 20, 640 << 10},   // 1 MiB L2 (Zen 5): the measured default
		{640 << 10, 2 << 20, 1 << 20},     // 2 MiB L2 (Sapphire Rapids class): half of it
		{640 << 10, 32 << 20, pwChunkMax}, // capped
	} {
		if got := pwChunkFor(c.def, c.l2); got != c.want {
			t.Errorf("pwChunkFor(%d, %d) = %d, want %d", c.def, c.l2, got, c.want)
		}
	}
}
