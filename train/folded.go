package train

import (
	"math"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Folded training of a 1×1 block with k conv branches.
//
// The branches Z_i = W_i·X (X: Cin×M, the M = H·W·N values of the batch)
// are linear in the same input, so their BatchNorm batch statistics follow
// from the input's mean m and covariance C = Xc·Xcᵀ/M (Xc = X − m):
//
//	μ_i = W_i·m,   var_i[c] = w_icᵀ·C·w_ic   (w_ic: row c of W_i)
//
// and the sum of the normalised branches is one convolution:
//
//	Σ_i γ_i·(Z_i − μ_i)/σ_i + β_i = W_eff·X + b_eff,   W_eff = Σ_i diag(a_i)·W_i, a_i = γ_i/σ_i.
//
// The backward pass needs no branch output either. With g the gradient of
// the block's sum (after the ReLU mask), ḡ its row means, Q = g·Xcᵀ and
// t_i[c] = (w_ic·Q[c])/(M·σ_ic) (the mean of g·x̂_i):
//
//	dγ_i = M·t_i,  dβ_i = M·ḡ,
//	dW_i = diag(a_i)·(Q − M·diag(t_i/σ_i)·W_i·C),
//	dX   = W_effᵀ·(g − ḡ) − B·Xc,   B = Σ_i W_iᵀ·diag(a_i·t_i/σ_i)·W_i.
//
// This is PyTorch's BatchNorm-per-branch training, exactly (up to rounding):
// the same running statistics, the same gradients. It costs about
// 2·Cin²·M + 3·Cout·Cin·M + 2k·Cout·Cin² multiply-adds instead of
// 3k·Cout·Cin·M, and the k branch outputs are never written, so it pays
// where the batch's pixels outnumber the channels (foldPays).
//
// With the block's convolution in bfloat16 (convOp.BF16, over at least
// bf16MinCols columns) the five products over the batch's M values (C,
// W_eff·X, Q, W_effᵀ·g and B·Xc) run in bfloat16 with float32 sums, as the
// unfolded block's do; the small Cin×Cin products and the statistics stay
// float32.

// foldFactor is how much cheaper (in multiply-adds) the folded form must be
// for a block to use it; tests set it to 0 (never) or a huge value
// (always) to run both forms.
var foldFactor = 0.8

// foldPays reports whether the folded form is used for a block with nb
// branches of cin → cout channels over m values per channel.
func foldPays(nb, cin, cout, m int) bool {
	if foldFactor <= 0 || nb < 2 {
		return false
	}
	ci, co, mm, k := float64(cin), float64(cout), float64(m), float64(nb)
	folded := 2*ci*ci*mm + 3*co*ci*mm + 2*k*co*ci*ci
	return folded < foldFactor*3*k*co*ci*mm
}

// foldWork holds the folded form's buffers of a block.
type foldWork struct {
	mean []float32 // (Cin) row means of X
	xc   []float32 // (Cin, M) X − mean
	cov  []float32 // (Cin, Cin) Xc·Xcᵀ/M
	t    []float32 // (k·Cout, Cin) W_stack·C
	weff []float32 // (Cout, Cin)
	beff []float32 // (Cout)
	gbar []float32 // (Cout) row means of g
	q    []float32 // (Cout, Cin) g·Xcᵀ
	u    []float32 // (k·Cout, Cin) diag(a·t/σ)·W_stack
	bm   []float32 // (Cin, Cin) −B
	r    []float32 // (Cin) W_effᵀ·ḡ
}

// foldable reports whether the block can be trained in the folded form:
// a dense 1×1 stride-1 convolution with several branches and no SE.
func (b *block) foldable() bool {
	return b.op.pointwise() && !b.op.DW && len(b.branches) > 1 && b.se == nil
}

// forwardFolded is the training forward pass of a foldable block.
func (b *block) forwardFolded(x *act) *act {
	cin, cout, nbr := b.op.Cin, b.outC, len(b.branches)
	m := x.M()
	fw := &b.fold
	b.stackWeights()
	fw.mean = grow(fw.mean, cin)
	fw.xc = grow(fw.xc, cin*m)
	parFor(cin, 2*cin*m, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := x.Data[r*m : (r+1)*m]
			shift := row[0]
			s, _ := kernel.SumSq(row, shift)
			mean := float32(float64(shift) + s/float64(m))
			fw.mean[r] = mean
			kernel.BNNorm(row, fw.xc[r*m:(r+1)*m], nil, mean, 1, 0, 0, false)
		}
	})
	gm := b.op.gemms(m)
	fw.cov = grow(fw.cov, cin*cin)
	gm.nt(cin, cin, m, fw.xc, fw.xc, fw.cov, false)
	kernel.Scale(1/float32(m), fw.cov, fw.cov)
	fw.t = grow(fw.t, nbr*cout*cin)
	kernel.Gemm(nbr*cout, cin, cin, b.wst, fw.cov, fw.t, false)

	fw.weff = growZero(fw.weff, cout*cin)
	fw.beff = growZero(fw.beff, cout)
	parFor(cout, 4*nbr*cout*cin, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			for i, br := range b.branches {
				bn := br.bn.bn
				row := (i*cout + c) * cin
				w := b.wst[row : row+cin]
				v := max(0, kernel.Dot64(fw.t[row:row+cin], w))
				mu := kernel.Dot64(w, fw.mean)
				is := 1 / math.Sqrt(v+bn.Eps)
				br.bn.invstd[c] = float32(is)
				a := float32(float64(bn.Weight.Data[c]) * is)
				kernel.Axpy(a, w, fw.weff[c*cin:(c+1)*cin])
				fw.beff[c] += float32(float64(bn.Bias.Data[c]) - float64(a)*mu)
				unbiased := v
				if m > 1 {
					unbiased = v * float64(m) / float64(m-1)
				}
				rm, rv := bn.RunningMean.Data, bn.RunningVar.Data
				rm[c] = float32((1-bnMomentum)*float64(rm[c]) + bnMomentum*mu)
				rv[c] = float32((1-bnMomentum)*float64(rv[c]) + bnMomentum*unbiased)
			}
		}
	})
	for _, br := range b.branches {
		br.bn.bn.NumBatchesTracked++
	}

	per := cout * m
	b.sum = grow(b.sum, per)
	gm.nn(cout, m, cin, fw.weff, x.Data, b.sum, false)
	if b.skip != nil {
		b.xhatSkip = grow(b.xhatSkip, len(x.Data))
		bnTrainForwardTo(b.skip.params(), x.Data, b.xhatSkip, m, b.sum, b.skip.invstd, true)
		b.skip.bn.NumBatchesTracked++
	}
	parFor(cout, 2*per, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			row := b.sum[c*m : (c+1)*m]
			kernel.BNNorm(row, row, nil, -fw.beff[c], 1, 0, 0, false) // row += beff[c]
			kernel.ReLU(row)
		}
	})
	b.out = act{C: cout, N: x.N, H: x.H, W: x.W, Data: b.sum}
	return &b.out
}

// backwardFolded is backward for a block whose forward was folded.
func (b *block) backwardFolded(d []float32) []float32 {
	x := b.x
	cin, cout, nbr := b.op.Cin, b.outC, len(b.branches)
	m := x.M()
	fw := &b.fold
	reluBackward(b.out.Data, d)
	var gx []float32
	if !b.first {
		b.gx = grow(b.gx, len(x.Data))
		gx = b.gx
		if b.skip != nil {
			sk := b.skip
			bnBackward(sk.bn.Weight.Data, sk.invstd, b.xhatSkip, d, m, sk.gW.Data, sk.gB.Data, gx)
		} else {
			clear(gx)
		}
	}
	fw.gbar = grow(fw.gbar, cout)
	parFor(cout, cout*m, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			s, _ := kernel.SumSq(d[c*m:(c+1)*m], 0)
			fw.gbar[c] = float32(s / float64(m))
		}
	})
	gm := b.op.gemms(m)
	fw.q = grow(fw.q, cout*cin)
	gm.nt(cout, cin, m, d, fw.xc, fw.q, false)
	fw.u = grow(fw.u, nbr*cout*cin)
	parFor(cout, 6*nbr*cout*cin, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			q := fw.q[c*cin : (c+1)*cin]
			for i, br := range b.branches {
				row := (i*cout + c) * cin
				w := b.wst[row : row+cin]
				is := float64(br.bn.invstd[c])
				wq := kernel.Dot64(w, q)
				t := wq * is / float64(m) // mean of g·x̂_i
				a := float64(br.bn.bn.Weight.Data[c]) * is
				br.bn.gW.Data[c] += float32(wq * is)
				br.bn.gB.Data[c] += float32(float64(fw.gbar[c]) * float64(m))
				g := br.gW.Data[c*cin : (c+1)*cin]
				kernel.Axpy(float32(a), q, g)
				kernel.Axpy(float32(-a*float64(m)*t*is), fw.t[row:row+cin], g)
				kernel.Scale(float32(a*t*is), w, fw.u[row:row+cin])
			}
		}
	})
	if gx == nil {
		return nil
	}
	// dX += W_effᵀ·g − B·Xc − W_effᵀ·ḡ
	fw.bm = grow(fw.bm, cin*cin)
	kernel.GemmTN(cin, cin, nbr*cout, b.wst, fw.u, fw.bm, false)
	kernel.Scale(-1, fw.bm, fw.bm)
	gm.tn(cin, m, cout, fw.weff, d, gx, true)
	gm.nn(cin, m, cin, fw.bm, fw.xc, gx, true)
	fw.r = growZero(fw.r, cin)
	for c := 0; c < cout; c++ {
		kernel.Axpy(fw.gbar[c], fw.weff[c*cin:(c+1)*cin], fw.r)
	}
	parFor(cin, cin*m, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			row := gx[j*m : (j+1)*m]
			kernel.BNNorm(row, row, nil, fw.r[j], 1, 0, 0, false) // row −= r[j]
		}
	})
	return gx
}
