package kernel

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
)

// stemKernels lists the direct 3×3 stride-2 kernels this build can run.
func stemKernels() map[string]stemKernel {
	ks := map[string]stemKernel{"go": conv3x3s2Go}
	if !haveAsm || cpu.Detected.Best() >= cpu.AVX512 {
		ks["avx512"] = conv3x3s2AVX512
	}
	return ks
}

// TestStemKernel checks each direct 3×3 stride-2 row kernel on its own
// against a reference on the padded layout: odd widths (every tail of the
// 32- and 16-pixel steps), several blocks and input channels, with NaN in
// every padded column no valid output uses and guard bands around the
// output planes.
func TestStemKernel(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	nan := float32(math.NaN())
	for name, k := range stemKernels() {
		for _, ow := range []int{1, 2, 15, 16, 17, 31, 32, 33, 48, 49, 56, 112} {
			for _, cin := range []int{1, 3, 4} {
				for _, ocb := range []int{1, 2} {
					for _, relu := range []bool{false, true} {
						ldx := 2*roundUp(ow, 16) + 16
						chStride := 3*ldx + 5
						xp := make([]float32, cin*chStride)
						for i := range xp {
							xp[i] = nan
						}
						for ci := 0; ci < cin; ci++ {
							for ky := 0; ky < 3; ky++ {
								for col := 0; col <= 2*ow; col++ {
									xp[ci*chStride+ky*ldx+col] = float32(r.NormFloat64())
								}
							}
						}
						oc := ocb * stemOCB
						w := randSlice(r, oc*cin*9)
						b := randSlice(r, oc)
						ldo := ow + 3
						n := (oc-1)*ldo + ow
						want, mag := make([]float32, n), make([]float32, n)
						for o := 0; o < oc; o++ {
							blk, ob := o/stemOCB, o%stemOCB
							for ox := 0; ox < ow; ox++ {
								s, m := float64(b[o]), math.Abs(float64(b[o]))
								for ci := 0; ci < cin; ci++ {
									for tap := 0; tap < 9; tap++ {
										xv := float64(xp[ci*chStride+(tap/3)*ldx+2*ox+tap%3])
										wv := float64(w[((blk*cin+ci)*9+tap)*stemOCB+ob])
										s += xv * wv
										m += math.Abs(xv * wv)
									}
								}
								if relu {
									s = max(s, 0)
								}
								want[o*ldo+ox], mag[o*ldo+ox] = float32(s), float32(m)
							}
						}
						buf, got := guarded(n)
						k(xp, chStride, ldx, w, b, got, ldo, cin, ocb, ow, relu)
						checkGuard(t, buf, n)
						for o := 0; o < oc; o++ {
							if o+1 < oc {
								for _, v := range got[o*ldo+ow : (o+1)*ldo] {
									if v == v {
										t.Fatalf("%s ow %d: wrote between channel rows", name, ow)
									}
								}
							}
							compareNamed(t, fmt.Sprintf("%s/ow%d_cin%d_ocb%d_relu%v/oc%d", name, ow, cin, ocb, relu, o),
								got[o*ldo:o*ldo+ow], want[o*ldo:o*ldo+ow], mag[o*ldo:o*ldo+ow])
						}
					}
				}
			}
		}
	}
}

// stemCases are dense 3×3 stride-2 pad-1 convolutions: the stems of S0 and
// S1–S4 and odd sizes (odd and even input sides, one-pixel outputs, output
// widths around the 16- and 32-pixel steps, partial row bands).
func stemCases() []convCase {
	cs := []convCase{
		{"s0_stem", Conv{3, 224, 224, 48, 3, 2, 1, 1}, true, true},
		{"s4_stem", Conv{3, 224, 224, 64, 3, 2, 1, 1}, true, true},
		{"stem_nobias_norelu", Conv{3, 64, 64, 16, 3, 2, 1, 1}, false, false},
	}
	for i, s := range [][2]int{{1, 1}, {2, 2}, {3, 5}, {7, 33}, {9, 31}, {10, 32}, {13, 34}, {17, 63}, {5, 65}, {31, 97}, {6, 130}} {
		cin := []int{1, 3, 4, 16}[i%4]
		oc := []int{8, 16, 24}[i%3]
		cs = append(cs, convCase{"stem_odd", Conv{cin, s[0], s[1], oc, 3, 2, 1, 1}, i%2 == 0, i%3 != 1})
	}
	return cs
}

// TestStemLevels runs the stem shapes through ConvOp and Conv2D at every
// level (the direct kernel where the level has one, the GEMM elsewhere)
// against ref, with NaN guards around input and output, at 1 and 2 threads.
func TestStemLevels(t *testing.T) {
	configs := []threadConfig{{1, 1 << 16}, {2, 0}, {2, 1 << 16}}
	for _, l := range levels() {
		withLevel(t, l, func() {
			for i, cc := range stemCases() {
				t.Run(fmt.Sprintf("%v/%v", l, cc), func(t *testing.T) {
					c := cc.c
					r := rand.New(rand.NewSource(int64(700 + i)))
					x := guardedRand(r, c.InC*c.InH*c.InW)
					w := guardedRand(r, c.OutC*c.InC*9)
					var bias []float32
					if cc.bias {
						bias = guardedRand(r, c.OutC)
					}
					n := c.OutC * c.OutH() * c.OutW()
					want, mag := make([]float32, n), make([]float32, n)
					ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, 3, 2, 1, 1, x, w, bias, want, cc.relu)
					ref.Conv2D(c.InC, c.InH, c.InW, c.OutC, 3, 2, 1, 1, absSlice(x), absSlice(w), absSlice(bias), mag, false)
					op := NewConvOp(c, w, bias, cc.relu)
					if direct := op.stem != nil; direct != useStem(active.Load(), c) {
						t.Fatalf("direct path %v", direct)
					}
					for _, tc := range configs {
						buf, got := guarded(n)
						withThreads(t, tc, func() { op.Run(x, got) })
						checkGuard(t, buf, n)
						compareNamed(t, fmt.Sprintf("t%d", tc.threads), got, want, mag)
					}
				})
			}
		})
	}
}

// TestGemv checks each matrix-vector kernel against float64 sums, with
// guard bands around y and NaN after the rows and after x.
func TestGemv(t *testing.T) {
	r := rand.New(rand.NewSource(22))
	ks := map[string]func(w, x, y []float32, in, rows int){"go": gemvGo}
	if !haveAsm || cpu.Detected.Best() >= cpu.AVX512 {
		ks["avx512"] = gemvAVX512
	}
	if !haveAsm || cpu.Detected.Best() >= cpu.AVX2 {
		ks["avx2"] = gemvAVX2
	}
	for name, k := range ks {
		for _, in := range []int{0, 1, 5, 15, 16, 17, 31, 32, 33, 47, 64, 100, 1024} {
			for _, rows := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16} {
				w := guardedRand(r, in*rows)
				x := guardedRand(r, in)
				want, mag := make([]float32, rows), make([]float32, rows)
				for o := 0; o < rows; o++ {
					var s, m float64
					for j := 0; j < in; j++ {
						p := float64(w[o*in+j]) * float64(x[j])
						s += p
						m += math.Abs(p)
					}
					want[o], mag[o] = float32(s), float32(m)
				}
				buf, got := guarded(rows)
				k(w, x, got, in, rows)
				checkGuard(t, buf, rows)
				compareNamed(t, fmt.Sprintf("%s/in%d_rows%d", name, in, rows), got, want, mag)
			}
		}
	}
}

// TestLinearLevels runs Linear at every level on the head and SE shapes.
func TestLinearLevels(t *testing.T) {
	r := rand.New(rand.NewSource(23))
	for _, l := range levels() {
		withLevel(t, l, func() {
			for _, s := range [][2]int{{1024, 1000}, {2048, 1000}, {128, 8}, {8, 128}, {37, 13}} {
				in, out := s[0], s[1]
				x, w, bias := guardedRand(r, in), guardedRand(r, in*out), guardedRand(r, out)
				want, mag := append([]float32(nil), bias...), absSlice(bias)
				ref.Gemm(out, 1, in, w, x, want, true)
				ref.Gemm(out, 1, in, absSlice(w), absSlice(x), mag, true)
				for _, tc := range []threadConfig{{1, 1 << 16}, {2, 0}} {
					buf, got := guarded(out)
					withThreads(t, tc, func() { Linear(in, out, x, w, bias, got) })
					checkGuard(t, buf, out)
					compareNamed(t, fmt.Sprintf("%v/%dx%d/t%d", l, in, out, tc.threads), got, want, mag)
				}
			}
		})
	}
}

// TestLinearBatchLevels checks LinearBatchLimit at every level against the
// reference, and that every image's outputs are bit-identical to a Linear
// call on that image alone (a batch's logits must not depend on the batch).
func TestLinearBatchLevels(t *testing.T) {
	r := rand.New(rand.NewSource(29))
	for _, l := range levels() {
		withLevel(t, l, func() {
			for _, s := range [][3]int{{8, 2048, 1000}, {3, 1024, 1000}, {2, 37, 13}, {5, 8, 3}, {1, 128, 8}} {
				n, in, out := s[0], s[1], s[2]
				x, w, bias := guardedRand(r, n*in), guardedRand(r, in*out), guardedRand(r, out)
				for _, tc := range []threadConfig{{1, 1 << 16}, {2, 0}, {3, 0}} {
					for _, b := range [][]float32{bias, nil} {
						buf, got := guarded(n * out)
						withThreads(t, tc, func() { LinearBatchLimit(n, in, out, x, w, b, got, 0) })
						checkGuard(t, buf, n*out)
						for j := 0; j < n; j++ {
							xj := x[j*in : (j+1)*in]
							want, mag := make([]float32, out), make([]float32, out)
							if b != nil {
								copy(want, b)
								copy(mag, absSlice(b))
							}
							ref.Gemm(out, 1, in, w, xj, want, true)
							ref.Gemm(out, 1, in, absSlice(w), absSlice(xj), mag, true)
							name := fmt.Sprintf("%v/n%d/%dx%d/t%d/bias%v/image%d", l, n, in, out, tc.threads, b != nil, j)
							gj := got[j*out : (j+1)*out]
							compareNamed(t, name, gj, want, mag)
							one := make([]float32, out)
							withThreads(t, tc, func() { Linear(in, out, xj, w, b, one) })
							for o := range one {
								if one[o] != gj[o] {
									t.Fatalf("%s: output %d is %v in the batch, %v alone", name, o, gj[o], one[o])
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestStemNoAllocs checks that the direct path allocates nothing per Run.
func TestStemNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	r := rand.New(rand.NewSource(24))
	c := Conv{3, 224, 224, 48, 3, 2, 1, 1}
	x := randSlice(r, c.InC*c.InH*c.InW)
	w := randSlice(r, c.OutC*c.InC*9)
	b := randSlice(r, c.OutC)
	out := make([]float32, c.OutC*c.OutH()*c.OutW())
	for _, l := range levels() {
		withLevel(t, l, func() {
			op := NewConvOp(c, w, b, true)
			for _, tc := range []threadConfig{{1, 1 << 16}, {2, 0}} {
				withThreads(t, tc, func() {
					op.Run(x, out)
					if n := testing.AllocsPerRun(20, func() { op.Run(x, out) }); n > 0 {
						t.Errorf("%v threads %d: %v allocations per Run", l, tc.threads, n)
					}
				})
			}
		})
	}
}

// TestChannelKernels checks GlobalAvgPool and ScaleChannelsReLU at every
// level on pooling and SE shapes (tails of 16 lanes), with guard bands.
func TestChannelKernels(t *testing.T) {
	r := rand.New(rand.NewSource(25))
	for _, l := range levels() {
		withLevel(t, l, func() {
			for _, s := range [][2]int{{1, 1}, {3, 7}, {5, 16}, {4, 17}, {1024, 49}, {896, 196}, {3, 3136}, {2, 33}} {
				c, hw := s[0], s[1]
				x := guardedRand(r, c*hw)
				g := guardedRand(r, c)
				want, mag := make([]float32, c), make([]float32, c)
				for i := 0; i < c; i++ {
					var sum, abs float64
					for _, v := range x[i*hw : (i+1)*hw] {
						sum += float64(v)
						abs += math.Abs(float64(v))
					}
					want[i], mag[i] = float32(sum/float64(hw)), float32(abs/float64(hw))
				}
				buf, got := guarded(c)
				GlobalAvgPool(c, hw, x, got)
				checkGuard(t, buf, c)
				compareNamed(t, fmt.Sprintf("%v/gap%dx%d", l, c, hw), got, want, mag)

				xbuf, xs := guarded(c * hw)
				copy(xs, x)
				ScaleChannelsReLU(c, hw, xs, g)
				checkGuard(t, xbuf, c*hw)
				for i := 0; i < c*hw; i++ {
					if w := max(x[i]*g[i/hw], 0); xs[i] != w {
						t.Fatalf("%v: scale %dx%d: element %d = %v, want %v", l, c, hw, i, xs[i], w)
					}
				}
			}
		})
	}
}
