package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

// trainPass is what tests compare between two ways of training the same
// net: the loss of the last pass, every gradient and every state_dict
// entry (weights and running statistics), and the net.
type trainPass struct {
	loss         float64
	grads, stats map[string][]float32
	net          *Net
}

// runPasses builds tinyNet(cfg, seed) and runs passes forward and backward
// passes in training mode on x (no optimiser step: later passes start from
// updated running statistics).
func runPasses(t *testing.T, cfg model.Config, seed uint64, x *tensor.Tensor, labels []int, passes int) trainPass {
	t.Helper()
	m, net := tinyNet(t, cfg, seed)
	r := trainPass{grads: map[string][]float32{}, stats: map[string][]float32{}, net: net}
	for i := 0; i < passes; i++ {
		net.ZeroGrad()
		var dl *tensor.Tensor
		r.loss, dl = CrossEntropy(net.Forward(x, true), labels, 0.1)
		net.Backward(dl)
	}
	for _, p := range net.Params() {
		r.grads[p.Name] = append([]float32(nil), p.G.Data...)
	}
	keys, sd := m.StateDict()
	for _, k := range keys {
		r.stats[k] = append([]float32(nil), sd[k].Data...)
	}
	return r
}

// comparePasses checks got against want: the loss within 1e-5 relative
// (two float32 summation orders; their rounding passes through every
// later layer: up to 1.1e-6 measured), each gradient within gradTol(name)
// of its largest value, each state_dict entry within 1e-5.
func comparePasses(t *testing.T, what string, got, want trainPass, gradTol func(name string) float64) {
	t.Helper()
	if d := math.Abs(got.loss-want.loss) / want.loss; d > 1e-5 {
		t.Errorf("%s: loss %v, want %v", what, got.loss, want.loss)
	}
	for k, g := range want.grads {
		if e := maxRel(got.grads[k], toF64(g)); e > gradTol(k) {
			t.Errorf("%s: gradient of %s differs by %.2g", what, k, e)
		}
	}
	for k, v := range want.stats {
		if e := maxRel(got.stats[k], toF64(v)); e > 1e-5 {
			t.Errorf("%s: %s differs by %.2g", what, k, e)
		}
	}
}

// TestFoldedEqualsBranches trains the same net one step with every
// multi-branch 1×1 block folded and with none folded: the loss, every
// gradient and every running statistic must agree.
func TestFoldedEqualsBranches(t *testing.T) {
	cfg := tinyConfig
	cfg.K, cfg.StemStride = 3, 1
	x := randInput(5, 4, 3, 16, 16)
	labels := []int{1, 0, 4, 2}
	run := func(factor float64) (trainPass, int) {
		old := foldFactor
		foldFactor = factor
		defer func() { foldFactor = old }()
		r := runPasses(t, cfg, 7, x, labels, 1)
		folded := 0
		for _, b := range r.net.blocks {
			if b.folded {
				folded++
			}
		}
		return r, folded
	}
	unfolded, f0 := run(0)
	folded, f1 := run(1e9)
	if f0 != 0 || f1 < 3 {
		t.Fatalf("folded blocks: %d with folding off, %d with it forced (want 0 and ≥ 3)", f0, f1)
	}
	comparePasses(t, "folded", folded, unfolded, func(string) float64 { return 2e-4 })
}

func toF64(s []float32) []float64 {
	d := make([]float64, len(s))
	for i, v := range s {
		d[i] = float64(v)
	}
	return d
}

// TestGreyStemPlanesEqualGEMM trains the same grey-input net (stride-1
// stem, k = 2) one step with the stem run channel by channel (Conv3Plane
// and Corr3Plane next to its BatchNorms) and through the im2col GEMM: the
// loss, every gradient and every running statistic must agree.
func TestGreyStemPlanesEqualGEMM(t *testing.T) {
	cfg := tinyConfig
	cfg.K, cfg.StemStride, cfg.InChannels = 2, 1, 1
	x := randInput(6, 4, 1, 12, 12)
	labels := []int{3, 0, 1, 2}
	run := func(off bool) (trainPass, bool) {
		old := planesOff
		planesOff = off
		defer func() { planesOff = old }()
		r := runPasses(t, cfg, 8, x, labels, 1)
		return r, r.net.blocks[0].planed
	}
	gemm, p0 := run(true)
	planes, p1 := run(false)
	if p0 || !p1 {
		t.Fatalf("stem planes: %v with planesOff, %v without (want false, true)", p0, p1)
	}
	comparePasses(t, "stem planes", planes, gemm, func(name string) float64 {
		if name == "stage0.rbr_scale.conv.weight" {
			// One weight per output channel (one input channel, 1×1)
			// followed by a training-mode BatchNorm, nearly invariant to
			// its scale: the gradient is a small difference of large sums
			// (0.04 against 9.5 for the 3×3 weights here), so the two
			// summation orders differ by more, relative to it.
			return 1e-3
		}
		return 2e-4 // as TestFoldedEqualsBranches
	})
}

// TestScaleFoldEqualsBranches runs the same net through two training
// passes (forward and backward) with the 1×1 scale branch of its stride-1
// depthwise blocks folded into their skip BatchNorm (block.planeBranches)
// and as a branch of its own: the loss, every gradient (the scale weight's
// and its BatchNorm's included) and every running statistic must agree,
// for k = 1 and k = 3.
func TestScaleFoldEqualsBranches(t *testing.T) {
	for _, k := range []int{1, 3} {
		cfg := tinyConfig
		cfg.K, cfg.StemStride, cfg.Blocks = k, 1, [4]int{2, 2, 2, 1} // stage3's second pair has SE
		x := randInput(9, 4, 3, 12, 12)
		labels := []int{2, 0, 4, 1}
		run := func(off bool) (trainPass, int) {
			old := scaleFoldOff
			scaleFoldOff = off
			defer func() { scaleFoldOff = old }()
			r := runPasses(t, cfg, 11, x, labels, 2)
			folds := 0
			for _, b := range r.net.blocks {
				if _, sf := b.planeBranches(); sf != nil && b.planed {
					folds++
				}
			}
			return r, folds
		}
		unfolded, f0 := run(true)
		folded, f1 := run(false)
		if f0 != 0 || f1 < 3 {
			t.Fatalf("k=%d: blocks with a folded scale branch: %d with folding off, %d on (want 0 and ≥ 3)", k, f0, f1)
		}
		comparePasses(t, fmt.Sprintf("k=%d, scale folded", k), folded, unfolded, func(name string) float64 {
			// The scale weight's gradient is O(ε) where w²·v ≫ ε: the
			// unfolded form gets it from a sum that nearly cancels, so
			// in float32 it is the less exact one (TestScaleFoldAlgebra
			// checks the folded form in float64).
			if strings.HasSuffix(name, "rbr_scale.conv.weight") {
				return 1e-3
			}
			return 2e-4
		})
	}
}

// TestScaleFoldAlgebra checks the folded scale branch (bnSumChannel and
// bnBackChannel with a scaleFold) on one channel against the two
// BatchNorms computed apart in float64: y = γ1·BN(w·x) + β1 + γ2·BN(x) + β2,
// then dx, dw, dγ and dβ of both, and the running statistics; with a
// normal variance, one near ε, a negative w, a w so small that the branch
// is all ε, and a γ2 that cancels dx's coefficient of g − ḡ (the scalar
// fallback of backScaleFold).
func TestScaleFoldAlgebra(t *testing.T) {
	const m = 300
	for ci, c := range []struct {
		name      string
		xs, w, g2 float64
	}{{"normal", 1, 0.7, 1.1}, {"variance near eps", 0.004, 0.9, 1}, {"negative w", 0.5, -1.3, 0.8}, {"tiny w", 1, 1e-4, 1},
		{"cancelling dx", 0.003, -2, 0}} {
		r := rand.New(rand.NewPCG(uint64(ci), 77))
		x := make([]float32, m)
		g := make([]float32, m)
		for i := range x {
			x[i] = float32(0.3 + c.xs*r.NormFloat64())
			g[i] = float32(r.NormFloat64())
		}
		g1, b1, b2 := 0.9, 0.2, -0.1
		if c.g2 == 0 {
			// γ2 such that dx's coefficient of g − ḡ vanishes,
			// γ2·s2 + w·γ1·s1 = 0, while that of x̂ does not
			// (w² ≠ 1 and v near ε).
			var mu, v float64
			for _, q := range x {
				mu += float64(q)
			}
			mu /= m
			for _, q := range x {
				v += (float64(q) - mu) * (float64(q) - mu)
			}
			v /= m
			c.g2 = -c.w * g1 * math.Sqrt(v+nn.BNEps) / math.Sqrt(c.w*c.w*v+nn.BNEps)
		}
		skip, sc := newBN(nn.NewBatchNorm(1)), newBN(nn.NewBatchNorm(1))
		skip.bn.Weight.Data[0], skip.bn.Bias.Data[0] = float32(c.g2), float32(b2)
		sc.bn.Weight.Data[0], sc.bn.Bias.Data[0] = float32(g1), float32(b1)
		wrow := make([]float32, 9)
		wrow[4] = float32(c.w)
		sf := &scaleFold{bn: sc, w: wrow, dw: make([]float32, 9), kk: 9, ctr: 4}
		out := make([]float32, m)
		scratch := make([]float32, fuseChunk)
		bnSumChannel([]bnSrc{{bn: skip, src: x, scale: sf}}, 0, m, out[:m], false, scratch)
		dx := make([]float32, m)
		bnBackChannel([]bnGrad{{bn: skip, src: x, dz: dx, scale: sf}}, 0, m, g, nil, scratch)

		// float64 reference: the two BatchNorms apart.
		w := float64(wrow[4])
		bn := func(z []float64, gamma float64) (zh []float64, s float64) {
			var mu, v float64
			for _, q := range z {
				mu += q
			}
			mu /= m
			for _, q := range z {
				v += (q - mu) * (q - mu)
			}
			v /= m
			s = 1 / math.Sqrt(v+nn.BNEps)
			zh = make([]float64, m)
			for i, q := range z {
				zh[i] = (q - mu) * s
			}
			return zh, s
		}
		xf, z1 := make([]float64, m), make([]float64, m)
		for i := range x {
			xf[i], z1[i] = float64(x[i]), w*float64(x[i])
		}
		h1, s1 := bn(z1, g1)
		h2, s2 := bn(xf, c.g2)
		back := func(h []float64, gamma, s float64) (dz []float64, dgam, dbet float64) {
			var gm, ghm float64
			for i := range h {
				gm += float64(g[i])
				ghm += float64(g[i]) * h[i]
			}
			dgam, dbet = ghm, gm
			gm, ghm = gm/m, ghm/m
			dz = make([]float64, m)
			for i := range h {
				dz[i] = gamma * s * (float64(g[i]) - gm - h[i]*ghm)
			}
			return
		}
		dz1, dg1, db1 := back(h1, g1, s1)
		dz2, dg2, db2 := back(h2, c.g2, s2)
		wantY, wantDx := make([]float64, m), make([]float64, m)
		var wantDw float64
		for i := range x {
			wantY[i] = g1*h1[i] + b1 + c.g2*h2[i] + b2
			wantDx[i] = w*dz1[i] + dz2[i]
			wantDw += dz1[i] * xf[i]
		}
		for _, chk := range []struct {
			what string
			got  []float32
			want []float64
			tol  float64
		}{
			{"output", out, wantY, 1e-5},
			{"input gradient", dx, wantDx, 1e-4},
			{"scale weight gradient", sf.dw[4:5], []float64{wantDw}, 1e-4},
			{"scale γ, β gradients", []float32{sc.gW.Data[0], sc.gB.Data[0]}, []float64{dg1, db1}, 1e-5},
			{"skip γ, β gradients", []float32{skip.gW.Data[0], skip.gB.Data[0]}, []float64{dg2, db2}, 1e-5},
		} {
			if e := maxRel(chk.got, chk.want); e > chk.tol || math.IsNaN(e) {
				t.Errorf("%s: %s differs by %.2g (got %v, want %v)", c.name, chk.what, e, chk.got[:min(3, len(chk.got))], chk.want[:min(3, len(chk.want))])
			}
		}
		// Running statistics: PyTorch's update with the branch's own
		// batch mean w·μ and unbiased variance w²·v·m/(m−1).
		var mu, v float64
		for _, q := range z1 {
			mu += q
		}
		mu /= m
		for _, q := range z1 {
			v += (q - mu) * (q - mu)
		}
		v /= m - 1
		if e := maxRel([]float32{sc.bn.RunningMean.Data[0], sc.bn.RunningVar.Data[0]}, []float64{0.1 * mu, 0.9 + 0.1*v}); e > 1e-5 {
			t.Errorf("%s: scale running statistics %v, want %v %v", c.name, []float32{sc.bn.RunningMean.Data[0], sc.bn.RunningVar.Data[0]}, 0.1*mu, 0.9+0.1*v)
		}
	}
}

// TestChainEqualsBlocks runs the same grey-input net (stride-1 stem) through
// two training passes with its stem and first depthwise block as a chain
// (chain.go: channel by channel, the stem's output never written) and as
// two blocks: the loss, every gradient and every running statistic must
// agree, for k = 1 and 3 and an odd and an even input width.
func TestChainEqualsBlocks(t *testing.T) {
	for _, tc := range []struct{ k, n, h, w int }{{1, 4, 12, 12}, {3, 3, 11, 13}, {1, 5, 28, 28}} {
		t.Run(fmt.Sprintf("k%d_%dx%dx%d", tc.k, tc.n, tc.h, tc.w), func(t *testing.T) {
			cfg := tinyConfig
			cfg.K, cfg.StemStride, cfg.InChannels = tc.k, 1, 1
			x := randInput(9, tc.n, 1, tc.h, tc.w)
			labels := make([]int, tc.n)
			for i := range labels {
				labels[i] = (3 * i) % cfg.NumClasses
			}
			run := func(off bool) (trainPass, bool) {
				old := chainOff
				chainOff = off
				defer func() { chainOff = old }()
				r := runPasses(t, cfg, 10, x, labels, 2)
				return r, r.net.chained
			}
			blocks, c0 := run(true)
			chained, c1 := run(false)
			if c0 || !c1 {
				t.Fatalf("chained: %v with chainOff, %v without (want false, true)", c0, c1)
			}
			comparePasses(t, "chain", chained, blocks, func(name string) float64 {
				if strings.HasSuffix(name, "rbr_scale.conv.weight") {
					return 1e-3 // see TestGreyStemPlanesEqualGEMM
				}
				return 2e-4
			})
		})
	}
}
