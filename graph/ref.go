package graph

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/tensor"
)

// Ref runs the graph on x: (N, C, H, W) with naive loops that accumulate in
// float64: the obviously correct executor every fast path is tested
// against, forever. It returns the output (N, output shape...) and every
// value of the last image (for per-layer comparisons).
func (g *Graph) Ref(x *tensor.Tensor) (*tensor.Tensor, [][]float32, error) {
	if !g.final {
		if err := g.Finalize(); err != nil {
			return nil, nil, err
		}
	}
	in := g.InputShape()
	if len(x.Shape) != 4 || !tensor.SameShape(x.Shape[1:], in) || len(x.Data) != x.Numel() {
		return nil, nil, fmt.Errorf("%s: input must be (N, %d, %d, %d), got %s", g.Name, in[0], in[1], in[2], tensor.ShapeString(x.Shape))
	}
	n := x.Shape[0]
	per := tensor.NumelOf(in)
	outShape := g.OutputShape()
	outPer := tensor.NumelOf(outShape)
	y := tensor.New(append([]int{n}, outShape...)...)
	var vals [][]float32
	for i := 0; i < n; i++ {
		vals = make([][]float32, len(g.Shapes))
		vals[g.Nodes[0].Out] = x.Data[i*per : (i+1)*per]
		for _, nd := range g.Nodes[1:] {
			vals[nd.Out] = g.refNode(nd, vals)
		}
		copy(y.Data[i*outPer:], vals[g.Output])
	}
	return y, vals, nil
}

func (g *Graph) refNode(n *Node, vals [][]float32) []float32 {
	x := vals[n.In[0]]
	xs, ys := g.Shapes[n.In[0]], g.Shapes[n.Out]
	out := make([]float32, tensor.NumelOf(ys))
	switch n.Kind {
	case Conv:
		refConv(n, x, xs, out, ys)
		actInPlace(out, n.Act)
	case Linear:
		d, o := xs[len(xs)-1], ys[len(ys)-1]
		w, b := n.w, n.b
		for r := 0; r < len(x)/d; r++ {
			for j := 0; j < o; j++ {
				s := 0.0
				if b != nil {
					s = float64(b[j])
				}
				for k := 0; k < d; k++ {
					s += float64(x[r*d+k]) * float64(w[j*d+k])
				}
				out[r*o+j] = float32(s)
			}
		}
		actInPlace(out, n.Act)
	case Act:
		copy(out, x)
		actInPlace(out, n.Act)
	case Add:
		y := vals[n.In[1]]
		for i := range out {
			out[i] = x[i] + y[i]
		}
		actInPlace(out, n.Act)
	case Concat:
		at := 0
		for _, v := range n.In {
			at += copy(out[at:], vals[v])
		}
	case Shuffle:
		c, hw := xs[0], xs[1]*xs[2]
		per := c / n.Groups
		for gi := 0; gi < n.Groups; gi++ {
			for j := 0; j < per; j++ {
				// input channel gi·per + j goes to output channel j·groups + gi
				copy(out[(j*n.Groups+gi)*hw:(j*n.Groups+gi+1)*hw], x[(gi*per+j)*hw:(gi*per+j+1)*hw])
			}
		}
	case Split:
		hw := tensor.NumelOf(xs[1:])
		copy(out, x[n.From*hw:n.To*hw])
	case MaxPool, AvgPool:
		refPool(n, x, xs, out, ys)
	case GlobalAvgPool:
		hw := xs[1] * xs[2]
		for c := 0; c < xs[0]; c++ {
			s := 0.0
			for _, v := range x[c*hw : (c+1)*hw] {
				s += float64(v)
			}
			out[c] = float32(s / float64(hw))
		}
	case SE:
		refSE(n, x, xs, out)
	case Upsample:
		refUpsample(n, x, xs, out, ys)
	case LayerNorm:
		layerNorm(n, x, xs[len(xs)-1], out)
	case Attention:
		refAttention(n, x, xs, out, make([]float64, xs[1]))
	case Unfold:
		unfold(x, xs, out, n.Patch)
	case Fold:
		fold(x, ys, out, n.Patch)
	case DyReLU, DyShiftMax:
		refDynamic(n, x, xs, out, newDynScratch(n, xs[0]))
	default:
		panic(fmt.Sprintf("graph: no reference for %s", n.Kind))
	}
	return out
}

func refConv(n *Node, x []float32, xs []int, out []float32, ys []int) {
	cin, h, w := xs[0], xs[1], xs[2]
	cout, oh, ow := ys[0], ys[1], ys[2]
	cg, og := cin/n.Groups, cout/n.Groups
	wt, b := n.w, n.b
	for o := 0; o < cout; o++ {
		g := o / og
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				s := float64(b[o])
				for ci := 0; ci < cg; ci++ {
					c := g*cg + ci
					for ky := 0; ky < n.K; ky++ {
						iy := oy*n.Stride - n.Pad + ky*n.Dilation
						if iy < 0 || iy >= h {
							continue
						}
						for kx := 0; kx < n.KW; kx++ {
							ix := ox*n.Stride - n.PadW + kx*n.Dilation
							if ix < 0 || ix >= w {
								continue
							}
							s += float64(x[(c*h+iy)*w+ix]) * float64(wt[((o*cg+ci)*n.K+ky)*n.KW+kx])
						}
					}
				}
				out[(o*oh+oy)*ow+ox] = float32(s)
			}
		}
	}
}

func refPool(n *Node, x []float32, xs []int, out []float32, ys []int) {
	h, w := xs[1], xs[2]
	oh, ow := ys[1], ys[2]
	for c := 0; c < xs[0]; c++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				m, s := math.Inf(-1), 0.0
				for ky := 0; ky < n.K; ky++ {
					for kx := 0; kx < n.K; kx++ {
						iy, ix := oy*n.Stride-n.Pad+ky, ox*n.Stride-n.Pad+kx
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue // padding: -inf for max, 0 for average
						}
						v := float64(x[(c*h+iy)*w+ix])
						m = math.Max(m, v)
						s += v
					}
				}
				if n.Kind == MaxPool {
					out[(c*oh+oy)*ow+ox] = float32(m)
				} else {
					out[(c*oh+oy)*ow+ox] = float32(s / float64(n.K*n.K))
				}
			}
		}
	}
}

// seGate computes SE's per-channel gate of x (C, HW).
func seGate(n *Node, x []float32, c, hw int) []float64 {
	mean := make([]float64, c)
	for ch := 0; ch < c; ch++ {
		for _, v := range x[ch*hw : (ch+1)*hw] {
			mean[ch] += float64(v)
		}
		mean[ch] /= float64(hw)
	}
	return seGateOfMeans(n, mean, make([]float64, n.Hidden), make([]float64, c))
}

// seGateOfMeans is SE's gate from the channel means, in hid (Hidden) and
// gate (C) as scratch; it returns gate.
func seGateOfMeans(n *Node, mean, hid, gate []float64) []float64 {
	w1, b1, w2, b2 := n.Tensors[0].Data, n.Tensors[1].Data, n.Tensors[2].Data, n.Tensors[3].Data
	c := len(mean)
	for j := range hid {
		s := float64(b1[j])
		for ch := 0; ch < c; ch++ {
			s += float64(w1[j*c+ch]) * mean[ch]
		}
		hid[j] = act64(s, n.Act)
	}
	for ch := range gate {
		s := float64(b2[ch])
		for j, v := range hid {
			s += float64(w2[ch*n.Hidden+j]) * v
		}
		gate[ch] = act64(s, n.Gate)
	}
	return gate
}

func refSE(n *Node, x []float32, xs []int, out []float32) {
	c, hw := xs[0], xs[1]*xs[2]
	gate := seGate(n, x, c, hw)
	for ch := 0; ch < c; ch++ {
		for i := ch * hw; i < (ch+1)*hw; i++ {
			out[i] = float32(float64(x[i]) * gate[ch])
		}
	}
}

// refUpsample: PyTorch's interpolate (bilinear, align_corners=False, or
// nearest: source index floor(dst·in/out)).
func refUpsample(n *Node, x []float32, xs []int, out []float32, ys []int) {
	h, w, oh, ow := xs[1], xs[2], ys[1], ys[2]
	sh, sw := float64(h)/float64(oh), float64(w)/float64(ow)
	src := func(d int, scale float64, size int) (i0, i1 int, f float64) {
		s := math.Max((float64(d)+0.5)*scale-0.5, 0)
		i0 = min(int(s), size-1)
		i1 = min(i0+1, size-1)
		return i0, i1, s - float64(i0)
	}
	for c := 0; c < xs[0]; c++ {
		p := x[c*h*w : (c+1)*h*w]
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				var v float64
				if n.Nearest {
					v = float64(p[min(int(float64(oy)*sh), h-1)*w+min(int(float64(ox)*sw), w-1)])
				} else {
					y0, y1, fy := src(oy, sh, h)
					x0, x1, fx := src(ox, sw, w)
					v = (1-fy)*((1-fx)*float64(p[y0*w+x0])+fx*float64(p[y0*w+x1])) + fy*((1-fx)*float64(p[y1*w+x0])+fx*float64(p[y1*w+x1]))
				}
				out[(c*oh+oy)*ow+ox] = float32(v)
			}
		}
	}
}

// refAttention computes attention with att (T) as scratch.
func refAttention(n *Node, x []float32, xs []int, out []float32, att []float64) {
	g, t, d3 := xs[0], xs[1], xs[2]
	d := d3 / 3
	hd := d / n.Heads
	scale := 1 / math.Sqrt(float64(hd))
	for gi := 0; gi < g; gi++ {
		base := x[gi*t*d3 : (gi+1)*t*d3]
		for h := 0; h < n.Heads; h++ {
			for i := 0; i < t; i++ {
				q := base[i*d3+h*hd : i*d3+(h+1)*hd]
				m := math.Inf(-1)
				for j := 0; j < t; j++ {
					k := base[j*d3+d+h*hd : j*d3+d+(h+1)*hd]
					s := 0.0
					for e := range q {
						s += float64(q[e]) * float64(k[e])
					}
					att[j] = s * scale
					m = math.Max(m, att[j])
				}
				sum := 0.0
				for j := range att {
					att[j] = math.Exp(att[j] - m)
					sum += att[j]
				}
				for e := 0; e < hd; e++ {
					s := 0.0
					for j := 0; j < t; j++ {
						s += att[j] * float64(base[j*d3+2*d+h*hd+e])
					}
					out[(gi*t+i)*d+h*hd+e] = float32(s / sum)
				}
			}
		}
	}
}

// refDynamic: DyReLU and DyShiftMax (see the builder for the coefficient
// layout): θ = fc2(relu(fc1(pool(x)))), coefficients 2σ(θ)−1 scaled and
// offset by the papers' constants.
// dynScratch holds a dynamic activation's coefficient computation.
type dynScratch struct{ mean, hid, theta []float64 }

func newDynScratch(n *Node, c int) *dynScratch {
	return &dynScratch{make([]float64, c), make([]float64, n.Hidden), make([]float64, n.Tensors[2].Shape[0])}
}

// dynTheta computes a dynamic activation's coefficients θ into sc.theta:
// fc2(relu(fc1(mean over the pixels of x))), squashed to (−1, 1).
func dynTheta(n *Node, x []float32, c, hw int, sc *dynScratch) {
	w1, b1, w2, b2 := n.Tensors[0].Data, n.Tensors[1].Data, n.Tensors[2].Data, n.Tensors[3].Data
	mean, hid, theta := sc.mean, sc.hid, sc.theta
	for ch := range mean {
		mean[ch] = 0
	}
	for ch := 0; ch < c; ch++ {
		for _, v := range x[ch*hw : (ch+1)*hw] {
			mean[ch] += float64(v)
		}
		mean[ch] /= float64(hw)
	}
	for j := range hid {
		s := float64(b1[j])
		for ch := 0; ch < c; ch++ {
			s += float64(w1[j*c+ch]) * mean[ch]
		}
		hid[j] = math.Max(s, 0)
	}
	for k := range theta {
		s := float64(b2[k])
		for j, v := range hid {
			s += float64(w2[k*n.Hidden+j]) * v
		}
		if n.Kind == DyShiftMax {
			theta[k] = 2*math.Min(math.Max(s/6+0.5, 0), 1) - 1 // 2·hardsigmoid − 1
		} else {
			theta[k] = 2/(1+math.Exp(-s)) - 1 // 2σ − 1
		}
	}
}

func refDynamic(n *Node, x []float32, xs []int, out []float32, sc *dynScratch) {
	c, hw := xs[0], xs[1]*xs[2]
	dynTheta(n, x, c, hw, sc)
	theta := sc.theta
	coef := func(ch, k int) (a, b float64) { // piece k of channel ch
		// residual form: a_k = α_k + λ_a·θ, b_k = β_k + λ_b·θ with
		// α = (1, 0), β = (0, 0), λ_a = 1, λ_b = 0.5.
		alpha := [2]float64{1, 0}
		var ta, tb float64
		if n.PerChannel || n.Kind == DyShiftMax {
			ta, tb = theta[ch*4+k], theta[ch*4+2+k]
		} else {
			ta, tb = theta[k], theta[2+k]
		}
		return alpha[k] + ta, 0.5 * tb
	}
	if n.Kind == DyReLU {
		for ch := 0; ch < c; ch++ {
			a0, b0 := coef(ch, 0)
			a1, b1 := coef(ch, 1)
			for i := ch * hw; i < (ch+1)*hw; i++ {
				v := float64(x[i])
				out[i] = float32(math.Max(a0*v+b0, a1*v+b1))
			}
		}
		return
	}
	// DyShiftMax (MicroNet), G = Groups, J = K = 2: y_c = max_k Σ_j
	// a_{k,j,c}·x_{(c + j·C/G) mod C}, a_{k,j,c} = θ[(k·J + j)·C + c] plus
	// 1 for k = j = 0 (so that a zero θ gives ReLU).
	step := c / n.Groups
	for ch := 0; ch < c; ch++ {
		for i := 0; i < hw; i++ {
			best := math.Inf(-1)
			for k := 0; k < 2; k++ {
				s := 0.0
				for j := 0; j < 2; j++ {
					a := theta[(k*2+j)*c+ch]
					if j == 0 && k == 0 {
						a += 1
					}
					s += a * float64(x[((ch+j*step)%c)*hw+i])
				}
				best = math.Max(best, s)
			}
			out[ch*hw+i] = float32(best)
		}
	}
}

func act64(v float64, a Activation) float64 {
	if a&BF16 != 0 {
		return float64(kernel.RoundBF16(float32(act64(v, a.Base()))))
	}
	switch a {
	case ReLU:
		return math.Max(v, 0)
	case ReLU6:
		return math.Min(math.Max(v, 0), 6)
	case HardSwish:
		return v * math.Min(math.Max(v+3, 0), 6) / 6
	case HardSigmoid:
		return math.Min(math.Max(v+3, 0), 6) / 6
	case SiLU:
		return v / (1 + math.Exp(-v))
	case GELU:
		return 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
	case Sigmoid:
		return 1 / (1 + math.Exp(-v))
	}
	return v
}

func actInPlace(x []float32, a Activation) {
	if a == None {
		return
	}
	for i, v := range x {
		x[i] = float32(act64(float64(v), a))
	}
}

// layerNorm normalises each row of d values of x over the row.
func layerNorm(n *Node, x []float32, d int, out []float32) {
	gamma, beta := n.Tensors[0].Data, n.Tensors[1].Data
	for r := 0; r < len(x)/d; r++ {
		row := x[r*d : (r+1)*d]
		mean, sq := 0.0, 0.0
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(d)
		for _, v := range row {
			sq += (float64(v) - mean) * (float64(v) - mean)
		}
		inv := 1 / math.Sqrt(sq/float64(d)+n.Eps)
		for k, v := range row {
			out[r*d+k] = float32((float64(v)-mean)*inv*float64(gamma[k]) + float64(beta[k]))
		}
	}
}

// unfold: (C, H, W) → (P·P, N, C); patch pixel (py, px) of patch (i, j)
// is row py·P+px, column i·(W/P)+j.
func unfold(x []float32, xs []int, out []float32, p int) {
	c, h, w := xs[0], xs[1], xs[2]
	np := h * w / (p * p)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			for xx := 0; xx < w; xx++ {
				out[(((y%p)*p+xx%p)*np+(y/p)*(w/p)+xx/p)*c+ch] = x[(ch*h+y)*w+xx]
			}
		}
	}
}

// fold is unfold's inverse, to ys = (C, H, W).
func fold(x []float32, ys []int, out []float32, p int) {
	c, h, w := ys[0], ys[1], ys[2]
	np := h * w / (p * p)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			for xx := 0; xx < w; xx++ {
				out[(ch*h+y)*w+xx] = x[(((y%p)*p+xx%p)*np+(y/p)*(w/p)+xx/p)*c+ch]
			}
		}
	}
}
