package graph

// Convolution taps that only ever read padding: a dilated 3×3 convolution
// whose dilation is at least the map's size (DeepLabV3's ASPP at rates 24
// and 36 on a 32×32 map, or any rate on a small image) multiplies zeros
// with all but its centre tap. The planner runs such a convolution with
// its kernel cropped to the taps that can read the map, when the crop is
// square and symmetric (the kinds the kernels run): often a 1×1
// convolution on the centre taps, a pointwise layer instead of a dense
// one that would also zero-pad the map by the dilation on every side.

// conv returns the node the plan runs for Conv node n: n, or its cropped
// copy.
func (p *Plan) conv(n *Node) *Node {
	if c, ok := p.cropped[n]; ok {
		return c
	}
	return n
}

// cropConvs finds the Conv nodes whose kernel can be cropped.
func (p *Plan) cropConvs() {
	p.cropped = map[*Node]*Node{}
	for _, n := range p.g.Nodes {
		if n.Kind != Conv || n.K != n.KW || n.K == 1 {
			continue
		}
		xs, ys := p.g.Shapes[n.In[0]], p.g.Shapes[n.Out]
		y0, y1 := liveTaps(n.K, n.Stride, n.Pad, n.Dilation, xs[1], ys[1])
		x0, x1 := liveTaps(n.KW, n.Stride, n.PadW, n.Dilation, xs[2], ys[2])
		k := y1 - y0
		if k != x1-x0 || k == n.K || k == 0 {
			continue
		}
		pad, padW := n.Pad-y0*n.Dilation, n.PadW-x0*n.Dilation
		if pad != padW || pad < 0 {
			continue
		}
		c := *n
		c.K, c.KW, c.Pad, c.PadW = k, k, pad, pad
		if k == 1 {
			c.Dilation = 1
		}
		// the effective weight (Cout, Cin/groups, K, K) → (…, k, k)
		cin := n.Tensors[0].Shape[1]
		cout := n.Tensors[0].Shape[0]
		c.w = make([]float32, cout*cin*k*k)
		for o := 0; o < cout*cin; o++ {
			for ky := 0; ky < k; ky++ {
				for kx := 0; kx < k; kx++ {
					c.w[(o*k+ky)*k+kx] = n.w[(o*n.K+y0+ky)*n.KW+x0+kx]
				}
			}
		}
		p.cropped[n] = &c
	}
}

// liveTaps returns the range [t0, t1) of a kernel dimension's taps that
// read inside the input (size in) for some output position (of out).
func liveTaps(k, stride, pad, dil, in, out int) (t0, t1 int) {
	live := func(t int) bool {
		// input positions o·stride − pad + t·dil for o in [0, out)
		lo := -pad + t*dil
		hi := (out-1)*stride - pad + t*dil
		if hi < 0 || lo >= in {
			return false
		}
		// some o lands in [0, in): the first o with position ≥ 0
		o := 0
		if lo < 0 {
			o = (-lo + stride - 1) / stride
		}
		return o < out && o*stride+lo < in
	}
	t0, t1 = 0, k
	for t0 < k && !live(t0) {
		t0++
	}
	for t1 > t0 && !live(t1-1) {
		t1--
	}
	return t0, t1
}
