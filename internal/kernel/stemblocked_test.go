package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// withStembLevel runs fn with new StemOps using level l.
func withStembLevel(l cpu.Level, fn func()) {
	restore := stembKernels.set(l)
	defer restore()
	fn()
}

func TestStembLevels(t *testing.T) {
	ls := stembKernels.levels()
	if len(ls) == 0 || ls[0] != cpu.PureGo {
		t.Fatalf("stembKernels.levels() = %v, want purego first", ls)
	}
	for _, l := range ls {
		if got := stembKernels.best(l).level; got != l {
			t.Errorf("stembKernels.best(%v) = %v", l, got)
		}
		im := stembKernels.at(l)
		for s := range im.k {
			for nb := 1; nb <= im.maxNB; nb++ {
				if im.k[s][nb] == nil {
					t.Errorf("%v: no kernel for stride %d nb %d", l, s+1, nb)
				}
			}
		}
	}
	if haveAsm && cpu.Detected.Best() >= cpu.AVX512 && stembKernels.active.level != cpu.AVX512 && cpu.Selected() >= cpu.AVX512 {
		t.Errorf("active level %v on an AVX-512 machine", stembKernels.active.level)
	}
	t.Logf("levels %v, active %v, cpu %v", ls, stembKernels.active.level, cpu.Detected)
}

func TestStembSplit(t *testing.T) {
	for _, maxNB := range []int{1, 4} {
		for cb := 1; cb <= 40; cb++ {
			gs := stembSplit(cb, maxNB)
			sum := 0
			for _, g := range gs {
				if g < 1 || g > maxNB {
					t.Fatalf("split(%d, %d) = %v", cb, maxNB, gs)
				}
				if maxNB == 4 && cb >= 6 && g < 3 {
					t.Errorf("split(%d, %d) = %v: small group", cb, maxNB, gs)
				}
				sum += g
			}
			if sum != cb {
				t.Fatalf("split(%d, %d) = %v", cb, maxNB, gs)
			}
		}
	}
}

func TestStemBlockedOK(t *testing.T) {
	for _, tc := range []struct {
		c  Conv
		ok bool
	}{
		{Conv{3, 224, 224, 48, 3, 2, 1, 1}, true},
		{Conv{3, 224, 224, 48, 3, 2, 1, 0}, true},
		{Conv{1, 28, 28, 48, 3, 1, 1, 1}, true},
		{Conv{7, 5, 9, 100, 3, 1, 1, 1}, true},
		{Conv{3, 224, 224, 48, 3, 3, 1, 1}, false},
		{Conv{3, 224, 224, 48, 3, 2, 0, 1}, false},
		{Conv{3, 224, 224, 48, 5, 2, 2, 1}, false},
		{Conv{4, 224, 224, 48, 3, 2, 1, 2}, false},
		{Conv{0, 224, 224, 48, 3, 2, 1, 1}, false},
		{Conv{3, 224, 224, 0, 3, 2, 1, 1}, false},
	} {
		if got := StemBlockedOK(tc.c); got != tc.ok {
			t.Errorf("StemBlockedOK(%+v) = %v, want %v", tc.c, got, tc.ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("NewStemOp on an unsupported conv did not panic")
		}
	}()
	NewStemOp(Conv{3, 8, 8, 8, 3, 3, 1, 1}, make([]float32, 8*3*9), nil, false)
}

// stembKernelSet is one kernel and its twin.
type stembKernelSet struct {
	name       string
	stride, nb int
	tile       int // pixels per full tile
	k          stembKernel
}

// stembAllKernels lists every kernel of every level this machine runs.
func stembAllKernels() []stembKernelSet {
	var ks []stembKernelSet
	for _, l := range stembKernels.levels() {
		im := stembKernels.at(l)
		for s := range im.k {
			for nb := 1; nb <= im.maxNB; nb++ {
				ks = append(ks, stembKernelSet{fmt.Sprintf("%v/s%d/nb%d", l, s+1, nb), s + 1, nb, im.tile[nb], im.k[s][nb]})
			}
		}
	}
	// The twin with every nb (the pure-Go level only uses nb = 1).
	for s := 1; s <= 2; s++ {
		for nb := 2; nb <= 4; nb++ {
			ks = append(ks, stembKernelSet{fmt.Sprintf("go/s%d/nb%d", s, nb), s, nb, 1, stembGoKernel(s, nb)})
		}
	}
	return ks
}

// TestStembKernel checks each kernel alone on a padded input with NaN in
// every element no output uses (and guard bands), gaps between the output
// blocks that must stay untouched, against float64 sums; the assembly
// kernels must also match the pure-Go twin closely.
func TestStembKernel(t *testing.T) {
	r := rand.New(rand.NewSource(31))
	nan := float32(math.NaN())
	for _, ks := range stembAllKernels() {
		for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 23, 29, 31, 33, 56, 112} {
			for _, cin := range []int{1, 3, 4} {
				for i, relu := range []bool{false, true} {
					edges := (n + cin + 2*i) % 4
					if edges&stembLeft != 0 && n < ks.tile+1 {
						edges &^= stembLeft
					}
					s, nb := ks.stride, ks.nb
					ldx := s*(n-1) + 3 + r.Intn(3)
					chStride := 3*ldx + r.Intn(4)
					xp := make([]float32, cin*chStride+guard)
					for i := range xp {
						xp[i] = nan
					}
					for ci := 0; ci < cin; ci++ {
						for ky := 0; ky < 3; ky++ {
							for col := 0; col < s*(n-1)+3; col++ {
								if (col == 0 && edges&stembLeft != 0) || (col == s*(n-1)+2 && edges&stembRight != 0) {
									continue // skipped: must not be read
								}
								xp[ci*chStride+ky*ldx+col] = float32(r.NormFloat64())
							}
						}
					}
					w := randSlice(r, cin*9*nb*BlockC)
					b := randSlice(r, nb*BlockC)
					ldo := n*BlockC + 16*r.Intn(3)
					size := (nb-1)*ldo + n*BlockC
					want, mag := make([]float32, size), make([]float32, size)
					for i := range want {
						want[i] = nan
					}
					for p := 0; p < n; p++ {
						for blk := 0; blk < nb; blk++ {
							for j := 0; j < BlockC; j++ {
								sum, m := float64(b[blk*BlockC+j]), math.Abs(float64(b[blk*BlockC+j]))
								for ci := 0; ci < cin; ci++ {
									for tap := 0; tap < 9; tap++ {
										if (p == 0 && tap%3 == 0 && edges&stembLeft != 0) || (p == n-1 && tap%3 == 2 && edges&stembRight != 0) {
											continue
										}
										xv := float64(xp[ci*chStride+(tap/3)*ldx+s*p+tap%3])
										wv := float64(w[((ci*9+tap)*nb+blk)*BlockC+j])
										sum += xv * wv
										m += math.Abs(xv * wv)
									}
								}
								if relu {
									sum = max(sum, 0)
								}
								want[blk*ldo+p*BlockC+j], mag[blk*ldo+p*BlockC+j] = float32(sum), float32(m)
							}
						}
					}
					name := fmt.Sprintf("%s/n%d_cin%d_relu%v_edges%d", ks.name, n, cin, relu, edges)
					buf, got := guarded(size)
					ks.k(xp[:cin*chStride], chStride, ldx, w, b, got, ldo, cin, n, edges, relu)
					checkGuard(t, buf, size)
					twinBuf, twin := guarded(size)
					stembGo(s, nb, xp[:cin*chStride], chStride, ldx, w, b, twin, ldo, cin, n, edges, relu)
					checkGuard(t, twinBuf, size)
					for blk := 0; blk < nb; blk++ {
						lo, hi := blk*ldo, blk*ldo+n*BlockC
						if blk+1 < nb {
							for _, v := range got[hi : (blk+1)*ldo] {
								if v == v {
									t.Fatalf("%s: wrote between blocks", name)
								}
							}
						}
						compareNamed(t, name, got[lo:hi], want[lo:hi], mag[lo:hi])
						compareNamed(t, name+"/twin", twin[lo:hi], want[lo:hi], mag[lo:hi])
						// Same summation order: the assembly (FMA) and the
						// twin agree to within a few ulps of the magnitude.
						for i := lo; i < hi; i++ {
							if d := math.Abs(float64(got[i] - twin[i])); d > 1e-6*(1+float64(mag[i])) {
								t.Fatalf("%s: element %d: asm %v, twin %v", name, i, got[i], twin[i])
							}
						}
					}
				}
			}
		}
	}
}

// stemBlockedCases are the real stems (S0, S1–S4, the Fashion-MNIST and a
// CIFAR-sized model) and odd shapes: InC 1..4, OutC with every block tail
// and group split, sizes 1×1 to 57×45, odd and even, both strides.
func stemBlockedCases() []convCase {
	cs := []convCase{
		{"s0_stem", Conv{3, 224, 224, 48, 3, 2, 1, 1}, true, true},
		{"s1_stem", Conv{3, 224, 224, 64, 3, 2, 1, 1}, true, true},
		{"mnist_stem", Conv{1, 28, 28, 48, 3, 1, 1, 1}, true, true},
		{"cifar_stem", Conv{3, 32, 32, 48, 3, 1, 1, 1}, true, false},
		{"s0_nobias_norelu", Conv{3, 224, 224, 48, 3, 2, 1, 1}, false, false},
	}
	sizes := [][2]int{{1, 1}, {2, 2}, {5, 5}, {57, 45}, {13, 224}, {4, 7}, {9, 16}, {3, 30}}
	ocs := []int{1, 8, 17, 40, 100, 64, 48, 72, 16, 33, 130}
	r := rand.New(rand.NewSource(7))
	i := 0
	for _, sz := range sizes {
		for _, s := range []int{1, 2} {
			for k := 0; k < 2; k++ {
				cin := 1 + r.Intn(4)
				oc := ocs[i%len(ocs)]
				cs = append(cs, convCase{"odd", Conv{cin, sz[0], sz[1], oc, 3, s, 1, 1}, i%2 == 0, i%3 != 1})
				i++
			}
		}
	}
	return cs
}

// TestStemOp runs every case at every level and 1 and 2 threads through
// StemOp against ref.Conv2D converted with ToBlocked, with NaN guards
// around the input and a NaN-filled (garbage) output whose padding
// channels must come out zero.
func TestStemOp(t *testing.T) {
	configs := []threadConfig{{1, 1 << 16}, {2, 0}}
	for _, l := range stembKernels.levels() {
		withStembLevel(l, func() {
			for i, cc := range stemBlockedCases() {
				c := cc.c
				big := c.InH*c.InW >= 224*224
				if testing.Short() && big && l != stembKernels.active.level && l != cpu.PureGo {
					continue
				}
				t.Run(fmt.Sprintf("%v/%v", l, cc), func(t *testing.T) {
					r := rand.New(rand.NewSource(int64(900 + i)))
					x := guardedRand(r, c.InC*c.InH*c.InW)
					w := guardedRand(r, c.OutC*c.InC*9)
					var bias []float32
					if cc.bias {
						bias = guardedRand(r, c.OutC)
					}
					oh, ow := c.OutH(), c.OutW()
					hw := oh * ow
					n := c.OutC * hw
					want, mag := make([]float32, n), make([]float32, n)
					ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, 3, c.Stride, 1, 1, x, w, bias, want, cc.relu)
					ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, 3, c.Stride, 1, 1, absSlice(x), absSlice(w), absSlice(bias), mag, false)
					nb := BlockedLen(c.OutC, hw)
					wantB, magB := make([]float32, nb), make([]float32, nb)
					ToBlocked(c.OutC, hw, want, wantB)
					ToBlocked(c.OutC, hw, mag, magB)
					op := NewStemOp(c, w, bias, cc.relu)
					if op.level != l {
						t.Fatalf("op level %v", op.level)
					}
					if oc, h, wd := op.OutShape(); oc != c.OutC || h != oh || wd != ow {
						t.Fatalf("OutShape %d %d %d", oc, h, wd)
					}
					for _, tc := range configs {
						if raceEnabled && big && tc.threads == 1 {
							continue
						}
						buf, got := guarded(nb)
						withThreads(t, tc, func() { op.Run(x, got) })
						checkGuard(t, buf, nb)
						compareNamed(t, fmt.Sprintf("t%d", tc.threads), got, wantB, magB)
						for p := 0; c.OutC%BlockC != 0 && p < hw; p++ {
							for j := c.OutC % BlockC; j < BlockC; j++ {
								if v := got[((Blocks(c.OutC)-1)*hw+p)*BlockC+j]; v != 0 {
									t.Fatalf("t%d: padding channel %d at pixel %d = %v", tc.threads, j, p, v)
								}
							}
						}
					}
				})
			}
		})
	}
}

// TestStemOpTwin checks that the selected level's StemOp matches the
// pure-Go level's on the real stems.
func TestStemOpTwin(t *testing.T) {
	if stembKernels.active.level == cpu.PureGo {
		t.Skip("no assembly level")
	}
	r := rand.New(rand.NewSource(41))
	for _, c := range []Conv{{3, 224, 224, 48, 3, 2, 1, 1}, {3, 224, 224, 64, 3, 2, 1, 1}, {1, 28, 28, 48, 3, 1, 1, 1}} {
		x := randSlice(r, c.InC*c.InH*c.InW)
		w := randSlice(r, c.OutC*c.InC*9)
		b := randSlice(r, c.OutC)
		n := BlockedLen(c.OutC, c.OutH()*c.OutW())
		got, twin := make([]float32, n), make([]float32, n)
		NewStemOp(c, w, b, true).Run(x, got)
		withStembLevel(cpu.PureGo, func() { NewStemOp(c, w, b, true).Run(x, twin) })
		for i := range got {
			if d := math.Abs(float64(got[i] - twin[i])); d > 1e-5*(1+math.Abs(float64(twin[i]))) {
				t.Fatalf("%+v: element %d: %v, twin %v", c, i, got[i], twin[i])
			}
		}
	}
}

// TestStemOpAllocs checks that Run allocates nothing in steady state.
func TestStemOpAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewSource(42))
	for _, l := range stembKernels.levels() {
		withStembLevel(l, func() {
			for _, c := range []Conv{{3, 224, 224, 48, 3, 2, 1, 1}, {1, 28, 28, 48, 3, 1, 1, 1}} {
				x := randSlice(r, c.InC*c.InH*c.InW)
				w := randSlice(r, c.OutC*c.InC*9)
				out := make([]float32, BlockedLen(c.OutC, c.OutH()*c.OutW()))
				op := NewStemOp(c, w, nil, true)
				for _, tc := range []threadConfig{{1, 1 << 16}, {2, 0}} {
					withThreads(t, tc, func() {
						op.Run(x, out)
						if n := testing.AllocsPerRun(5, func() { op.Run(x, out) }); n > 0 {
							t.Errorf("%v %+v threads %d: %v allocations per Run", l, c, tc.threads, n)
						}
					})
				}
			}
		})
	}
}

// TestStemOpWorkers checks results with the per-op worker cap set.
func TestStemOpWorkers(t *testing.T) {
	r := rand.New(rand.NewSource(44))
	c := Conv{3, 96, 80, 48, 3, 2, 1, 1}
	w := randSlice(r, c.OutC*c.InC*9)
	b := randSlice(r, c.OutC)
	x := randSlice(r, c.InC*c.InH*c.InW)
	op := NewStemOp(c, w, b, false)
	n := BlockedLen(c.OutC, c.OutH()*c.OutW())
	want := make([]float32, n)
	withThreads(t, threadConfig{1, 1 << 16}, func() { op.Run(x, want) })
	for _, workers := range []int{1, 2, 3} {
		op.Workers = workers
		got := make([]float32, n)
		withThreads(t, threadConfig{2, 0}, func() { op.Run(x, got) })
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("Workers %d: element %d: %v, want %v", workers, i, got[i], want[i])
			}
		}
	}
}

// TestStemOpConcurrent runs one StemOp from several goroutines on
// different buffers.
func TestStemOpConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(43))
	c := Conv{3, 64, 64, 40, 3, 2, 1, 1}
	w := randSlice(r, c.OutC*c.InC*9)
	b := randSlice(r, c.OutC)
	op := NewStemOp(c, w, b, true)
	n := BlockedLen(c.OutC, c.OutH()*c.OutW())
	const g = 4
	xs, wants, gots := make([][]float32, g), make([][]float32, g), make([][]float32, g)
	for i := range xs {
		xs[i] = randSlice(r, c.InC*c.InH*c.InW)
		wants[i] = make([]float32, n)
		gots[i] = make([]float32, n)
		op.Run(xs[i], wants[i])
	}
	withThreads(t, threadConfig{2, 0}, func() {
		var wg sync.WaitGroup
		for i := 0; i < g; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < 5; k++ {
					op.Run(xs[i], gots[i])
				}
			}()
		}
		wg.Wait()
	})
	for i := range gots {
		for j := range gots[i] {
			if gots[i][j] != wants[i][j] {
				t.Fatalf("goroutine %d: element %d: %v, want %v", i, j, gots[i][j], wants[i][j])
			}
		}
	}
}
