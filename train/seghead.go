package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

// The layers of the DeepLabV3 head (torchvision's DeepLabHead and ASPP) in
// the trainer's layout (C, H, W, N): a concatenation along channels is
// writing each part into its rows of one buffer, so it costs nothing and
// its backward pass is reading the rows back.

// convBNReLU is torchvision's Conv2d(bias=False) → BatchNorm2d → ReLU, the
// unit of every ASPP branch, the projection and the head's 3×3 layer.
type convBNReLU struct {
	convKey, bnKey string // state_dict prefixes, e.g. classifier.0.convs.1.0 and classifier.0.convs.1.1
	op             convOp
	w, gw          *tensor.Tensor // (Cout, Cin, K, K); depthwise (Cout, 1, K, K)
	bn             *bnT
	relu6          bool // ReLU6 instead of ReLU (torchvision's SSDLite)

	x      *act
	z      []float32 // the conv's output; x̂ after a training forward, dZ after backward
	y      []float32 // the output rows the last forward wrote (the caller's)
	dw     []float32
	ws     convWork
	m      int
	trainD bool
}

func newConvBNReLU(convKey, bnKey string, cin, cout, k, dil int) *convBNReLU {
	return &convBNReLU{convKey: convKey, bnKey: bnKey,
		op: convOp{Cin: cin, Cout: cout, K: k, S: 1, P: k / 2 * dil, D: dil},
		w:  tensor.New(cout, cin, k, k), gw: tensor.New(cout, cin, k, k), bn: newBN(nn.NewBatchNorm(cout))}
}

// newConvBNAct is a unit of any convolution op (depthwise, strided),
// BatchNorm eps and momentum, with ReLU6 if relu6 (SSDLite's
// Conv2dNormActivation).
func newConvBNAct(convKey, bnKey string, op convOp, eps, momentum float64, relu6 bool) *convBNReLU {
	cin := op.Cin
	if op.DW {
		cin = 1
	}
	bn := nn.NewBatchNorm(op.Cout)
	bn.Eps = eps
	u := &convBNReLU{convKey: convKey, bnKey: bnKey, op: op, relu6: relu6,
		w: tensor.New(op.Cout, cin, op.K, op.K), gw: tensor.New(op.Cout, cin, op.K, op.K), bn: newBN(bn)}
	u.bn.momentum = momentum
	return u
}

// forward writes ReLU(BN(conv(x))) to out (Cout rows of the output's M
// values). In training mode the BatchNorm uses the batch statistics and
// updates its running ones, as PyTorch does.
func (u *convBNReLU) forward(x *act, out []float32, training bool) {
	oh, ow := u.op.outSize(x.H, x.W)
	m := oh * ow * x.N
	if training && m < 2 {
		panic(fmt.Sprintf("train: %s: BatchNorm in training mode needs more than one value per channel (batch %d, %dx%d)",
			u.bnKey, x.N, oh, ow))
	}
	u.x, u.m, u.y, u.trainD = x, m, out[:u.op.Cout*m], training
	u.z = grow(u.z, u.op.Cout*m)
	u.op.forward(x, u.w.Data, u.z, &u.ws)
	clear(u.y)
	if training {
		bnTrainForward(u.bn.params(), u.z, m, u.y, u.bn.invstd, true)
		u.bn.bn.NumBatchesTracked++
	} else {
		bnEvalForward(u.bn.params(), u.z, m, u.y)
	}
	if u.relu6 {
		relu6InPlace(u.y)
	} else {
		reluInPlace(u.y)
	}
}

// backward takes the gradient d of the last forward's output (overwritten),
// accumulates the weights' gradients and, if dx is not nil, adds the
// input's gradient to dx (laid out like x).
func (u *convBNReLU) backward(d, dx []float32) {
	if !u.trainD {
		panic("train: backward after an evaluation-mode forward")
	}
	if u.relu6 {
		relu6Backward(u.y, d)
	} else {
		reluBackward(u.y, d)
	}
	bnBackward(u.bn.bn.Weight.Data, u.bn.invstd, u.z, d, u.m, u.bn.gW.Data, u.bn.gB.Data, u.z)
	u.dw = grow(u.dw, u.w.Numel())
	u.op.backward(u.x, u.w.Data, u.z, u.dw, dx, &u.ws)
	kernel.Add(u.dw, u.gw.Data)
}

// params appends the unit's parameters in PyTorch's order.
func (u *convBNReLU) params(ps []Param) []Param {
	return append(ps, Param{Name: u.convKey + ".weight", W: u.w, G: u.gw},
		Param{Name: u.bnKey + ".weight", W: u.bn.bn.Weight, G: u.bn.gW, NoDecay: true},
		Param{Name: u.bnKey + ".bias", W: u.bn.bn.Bias, G: u.bn.gB, NoDecay: true})
}

// stateDict adds the unit's tensors (the conv weight, then the BatchNorm's
// weight, bias, running_mean, running_var and num_batches_tracked).
func (u *convBNReLU) stateDict(add func(string, *tensor.Tensor)) {
	add(u.convKey+".weight", u.w)
	addBNState(add, u.bnKey, u.bn.bn)
}

func addBNState(add func(string, *tensor.Tensor), p string, bn *nn.BatchNorm) {
	add(p+".weight", bn.Weight)
	add(p+".bias", bn.Bias)
	add(p+".running_mean", bn.RunningMean)
	add(p+".running_var", bn.RunningVar)
	add(p+".num_batches_tracked", &tensor.Tensor{Shape: []int{}, Data: []float32{bn.NumBatchesTracked}})
}

// initTorch sets the conv weight as PyTorch's Conv2d does by default
// (kaiming_uniform with a = √5: U(±1/√fan_in)) and the BatchNorm to its
// initial state.
func (u *convBNReLU) initTorch(r *rand.Rand) {
	uniformInit(u.w.Data, u.op.Cin*u.op.K*u.op.K, r)
	*u.bn.bn = *nn.NewBatchNorm(u.op.Cout)
}

func uniformInit(w []float32, fanIn int, r *rand.Rand) {
	b := 1 / math.Sqrt(float64(fanIn))
	for i := range w {
		w[i] = float32((2*r.Float64() - 1) * b)
	}
}

// ---------------------------------------------------------------------------
// ASPP's image-pooling branch
// ---------------------------------------------------------------------------

// globalPool writes p (C, N) = the mean over the H·W pixels of x.
func globalPool(x *act, p []float32) {
	hw, n := x.H*x.W, x.N
	inv := 1 / float64(hw)
	parFor(x.C, x.C*hw*n, func(lo, hi int) {
		acc := make([]float64, n)
		for c := lo; c < hi; c++ {
			clear(acc)
			plane := x.Data[c*hw*n : (c+1)*hw*n]
			for i := 0; i < hw; i++ {
				for b, v := range plane[i*n : (i+1)*n] {
					acc[b] += float64(v)
				}
			}
			for b, v := range acc {
				p[c*n+b] = float32(v * inv)
			}
		}
	})
}

// globalPoolBackward adds dp (C, N) / (H·W) to every pixel of dx (C, H, W, N).
func globalPoolBackward(dp []float32, c, hw, n int, dx []float32) {
	inv := 1 / float32(hw)
	parFor(c, c*hw*n, func(lo, hi int) {
		g := make([]float32, n)
		for ch := lo; ch < hi; ch++ {
			kernel.Scale(inv, dp[ch*n:(ch+1)*n], g)
			plane := dx[ch*hw*n : (ch+1)*hw*n]
			for i := 0; i < hw; i++ {
				kernel.Add(g, plane[i*n:(i+1)*n])
			}
		}
	})
}

// broadcast writes v (C, N) to every pixel of out (C, HW, N): a bilinear
// resize (align_corners=False) of a 1×1 map, whose every output pixel
// reads the single input pixel with weight 1.
func broadcast(v []float32, c, hw, n int, out []float32) {
	parFor(c, c*hw*n, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			src := v[ch*n : (ch+1)*n]
			plane := out[ch*hw*n : (ch+1)*hw*n]
			for i := 0; i < hw; i++ {
				copy(plane[i*n:(i+1)*n], src)
			}
		}
	})
}

// broadcastBackward writes dv (C, N) = the sum over the pixels of d (C, HW, N).
func broadcastBackward(d []float32, c, hw, n int, dv []float32) {
	parFor(c, c*hw*n, func(lo, hi int) {
		acc := make([]float64, n)
		for ch := lo; ch < hi; ch++ {
			clear(acc)
			plane := d[ch*hw*n : (ch+1)*hw*n]
			for i := 0; i < hw; i++ {
				for b, v := range plane[i*n : (i+1)*n] {
					acc[b] += float64(v)
				}
			}
			for b, v := range acc {
				dv[ch*n+b] = float32(v)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Bilinear resize (align_corners=False)
// ---------------------------------------------------------------------------

// lerpAxis is one axis of a bilinear resize from in to out samples, as
// PyTorch's upsample_bilinear2d with align_corners=False and an output
// size computes it: output o reads src = (o + ½)·in/out − ½ (clamped at 0),
// i0 = ⌊src⌋, i1 = min(i0+1, in−1), with weights 1−λ and λ, λ = src − i0.
type lerpAxis struct {
	i0, i1 []int
	l0, l1 []float32
}

func newLerpAxis(in, out int) lerpAxis {
	a := lerpAxis{i0: make([]int, out), i1: make([]int, out), l0: make([]float32, out), l1: make([]float32, out)}
	scale := float64(in) / float64(out)
	for o := 0; o < out; o++ {
		src := max(0, scale*(float64(o)+0.5)-0.5)
		i0 := min(int(src), in-1)
		i1 := min(i0+1, in-1)
		l := src - float64(i0)
		a.i0[o], a.i1[o], a.l0[o], a.l1[o] = i0, i1, float32(1-l), float32(l)
	}
	return a
}

// bilinear is a resize of (C, h, w, N) maps to (C, H, W, N).
type bilinear struct {
	h, w, oh, ow int
	y, x         lerpAxis
}

func newBilinear(h, w, oh, ow int) *bilinear {
	return &bilinear{h: h, w: w, oh: oh, ow: ow, y: newLerpAxis(h, oh), x: newLerpAxis(w, ow)}
}

// forward writes out (C, OH, OW, N) = resize(in (C, h, w, N)).
func (r *bilinear) forward(in []float32, c, n int, out []float32) {
	pin, pout := r.h*r.w*n, r.oh*r.ow*n
	parFor(c, 4*c*pout, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			src, dst := in[ch*pin:(ch+1)*pin], out[ch*pout:(ch+1)*pout]
			for oy := 0; oy < r.oh; oy++ {
				r0, r1 := r.y.i0[oy]*r.w, r.y.i1[oy]*r.w
				wy0, wy1 := r.y.l0[oy], r.y.l1[oy]
				for ox := 0; ox < r.ow; ox++ {
					x0, x1 := r.x.i0[ox], r.x.i1[ox]
					w00, w01 := wy0*r.x.l0[ox], wy0*r.x.l1[ox]
					w10, w11 := wy1*r.x.l0[ox], wy1*r.x.l1[ox]
					a, b := src[(r0+x0)*n:][:n], src[(r0+x1)*n:][:n]
					cc, d := src[(r1+x0)*n:][:n], src[(r1+x1)*n:][:n]
					o := dst[(oy*r.ow+ox)*n:][:n]
					for i := range o {
						o[i] = w00*a[i] + w01*b[i] + w10*cc[i] + w11*d[i]
					}
				}
			}
		}
	})
}

// backward writes din (C, h, w, N), the adjoint of forward applied to
// dout (C, OH, OW, N).
func (r *bilinear) backward(dout []float32, c, n int, din []float32) {
	pin, pout := r.h*r.w*n, r.oh*r.ow*n
	parFor(c, 4*c*pout, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			dst, src := din[ch*pin:(ch+1)*pin], dout[ch*pout:(ch+1)*pout]
			clear(dst)
			for oy := 0; oy < r.oh; oy++ {
				r0, r1 := r.y.i0[oy]*r.w, r.y.i1[oy]*r.w
				wy0, wy1 := r.y.l0[oy], r.y.l1[oy]
				for ox := 0; ox < r.ow; ox++ {
					x0, x1 := r.x.i0[ox], r.x.i1[ox]
					g := src[(oy*r.ow+ox)*n:][:n]
					kernel.Axpy(wy0*r.x.l0[ox], g, dst[(r0+x0)*n:][:n])
					kernel.Axpy(wy0*r.x.l1[ox], g, dst[(r0+x1)*n:][:n])
					kernel.Axpy(wy1*r.x.l0[ox], g, dst[(r1+x0)*n:][:n])
					kernel.Axpy(wy1*r.x.l1[ox], g, dst[(r1+x1)*n:][:n])
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Per-pixel cross-entropy
// ---------------------------------------------------------------------------

// IgnoreIndex marks mask pixels that count for neither the loss nor its
// gradient (Pascal VOC's border label; dense.Ignore).
const IgnoreIndex = 255

// pixelCrossEntropy is PyTorch's nn.CrossEntropyLoss(ignore_index=255)
// (mean reduction) over logits (K, H, W, N) in the trainer's layout and
// mask (N, H, W): the mean over the pixels whose label is not 255 of
// −log softmax(logits)[label]. It writes the gradient of that mean to
// dlogits (K, H, W, N) (0 at ignored pixels) and returns the loss and the
// number of pixels counted. With every pixel ignored it returns 0 and a
// zero gradient (PyTorch returns NaN). It panics on a label ≥ K other
// than 255.
func pixelCrossEntropy(logits []float32, k, h, w, n int, mask []uint8, dlogits []float32) (float64, int) {
	p := h * w * n
	if len(mask) != p || len(logits) < k*p || len(dlogits) < k*p {
		panic(fmt.Sprintf("train: pixel cross-entropy: %d mask values for %d images of %dx%d", len(mask), n, h, w))
	}
	// label of pixel (y, x, n) in the trainer's order
	count := 0
	for i, v := range mask {
		if v == IgnoreIndex {
			continue
		}
		if int(v) >= k {
			img, pix := i/(h*w), i%(h*w)
			panic(fmt.Sprintf("train: pixel cross-entropy: label %d at image %d, pixel (%d, %d) is outside [0, %d) and not %d",
				v, img, pix/w, pix%w, k, IgnoreIndex))
		}
		count++
	}
	if count == 0 {
		clear(dlogits[:k*p])
		return 0, 0
	}
	inv := 1 / float64(count)
	const chunk = 256
	nch := (p + chunk - 1) / chunk
	parts := make([]float64, nch)
	parFor(nch, 4*k*p, func(lo, hi int) {
		var mx, s [chunk]float64
		var lab [chunk]int
		for c := lo; c < hi; c++ {
			p0, p1 := c*chunk, min(p, (c+1)*chunk)
			for j := p0; j < p1; j++ {
				pix, img := j/n, j%n
				lab[j-p0] = int(mask[img*h*w+pix])
				mx[j-p0] = math.Inf(-1)
			}
			for cl := 0; cl < k; cl++ {
				row := logits[cl*p+p0 : cl*p+p1]
				for j, v := range row {
					mx[j] = math.Max(mx[j], float64(v))
				}
			}
			clear(s[:])
			for cl := 0; cl < k; cl++ {
				for j, v := range logits[cl*p+p0 : cl*p+p1] {
					s[j] += math.Exp(float64(v) - mx[j])
				}
			}
			var loss float64
			for j := 0; j < p1-p0; j++ {
				if lab[j] != IgnoreIndex {
					loss += mx[j] + math.Log(s[j]) - float64(logits[lab[j]*p+p0+j])
				}
			}
			parts[c] = loss
			for cl := 0; cl < k; cl++ {
				row := logits[cl*p+p0 : cl*p+p1]
				d := dlogits[cl*p+p0 : cl*p+p1]
				for j, v := range row {
					if lab[j] == IgnoreIndex {
						d[j] = 0
						continue
					}
					g := math.Exp(float64(v)-mx[j]) / s[j]
					if lab[j] == cl {
						g--
					}
					d[j] = float32(g * inv)
				}
			}
		}
	})
	var loss float64
	for _, v := range parts {
		loss += v
	}
	return loss * inv, count
}

// ---------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------

// dropout is nn.Dropout(p) in training mode: each value is kept with
// probability 1−p and scaled by 1/(1−p). The mask of training forward
// number t is drawn from a PCG seeded with (seed, t), so a run is
// reproducible and resumable from t.
type dropout struct {
	p    float64
	seed uint64
	mask []float32 // 0 or 1/(1−p) per value of the last training forward
}

// forward applies a fresh mask to y in place (training) and records it.
func (d *dropout) forward(y []float32, step uint64) {
	d.mask = grow(d.mask, len(y))
	keep := float32(1 / (1 - d.p))
	r := rand.New(rand.NewPCG(d.seed, step))
	for i := range d.mask {
		if r.Float64() < d.p {
			d.mask[i] = 0
		} else {
			d.mask[i] = keep
		}
	}
	mulInPlace(d.mask, y)
}

// mulInPlace sets y[i] *= m[i].
func mulInPlace(m, y []float32) {
	parFor(len(y)/4096+1, len(y), func(lo, hi int) {
		i1 := min(len(y), hi*4096)
		ys, ms := y[lo*4096:i1], m[lo*4096:i1]
		for i := range ys {
			ys[i] *= ms[i]
		}
	})
}

// backward multiplies the gradient by the last mask.
func (d *dropout) backward(g []float32) { mulInPlace(d.mask, g) }
