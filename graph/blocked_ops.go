package graph

import "github.com/mobileone-go/mobileone/internal/kernel"

// Data movement and pooling on blocked values (NCHW16c): pooling, concat,
// split and channel shuffle keep the layout, so that ShuffleNet's,
// GhostNet's and ResNet's blocks do not convert between layouts around
// them. Padding channels of every output are written as zeros.

// blockedLayoutOp reports whether node kind k has a blocked implementation
// here (its output is blocked when all its inputs are).
func blockedLayoutOp(k Kind) bool {
	switch k {
	case MaxPool, AvgPool, Concat, Split, Shuffle:
		return true
	}
	return false
}

const bc = kernel.BlockC

// blockedPool is max or average pooling (padding counted, as pool32) of
// blocked x (C, h, w) into blocked out (C, oh, ow), 16 channels at a time.
func blockedPool(n *Node, x []float32, xs []int, out []float32, ys []int) {
	c, h, w, oh, ow := xs[0], xs[1], xs[2], ys[1], ys[2]
	inv := 1 / float32(n.K*n.K)
	maxPool := n.Kind == MaxPool
	for cb := 0; cb < kernel.Blocks(c); cb++ {
		xb := x[cb*h*w*bc : (cb+1)*h*w*bc]
		ob := out[cb*oh*ow*bc : (cb+1)*oh*ow*bc]
		for oy := 0; oy < oh; oy++ {
			y0, y1 := max(oy*n.Stride-n.Pad, 0), min(oy*n.Stride-n.Pad+n.K, h)
			for ox := 0; ox < ow; ox++ {
				x0, x1 := max(ox*n.Stride-n.Pad, 0), min(ox*n.Stride-n.Pad+n.K, w)
				acc := (*[bc]float32)(ob[(oy*ow+ox)*bc:])
				first := true
				for iy := y0; iy < y1; iy++ {
					for ix := x0; ix < x1; ix++ {
						v := (*[bc]float32)(xb[(iy*w+ix)*bc:])
						switch {
						case first:
							*acc = *v
							first = false
						case maxPool:
							for l := range acc {
								acc[l] = max(acc[l], v[l])
							}
						default:
							for l := range acc {
								acc[l] += v[l]
							}
						}
					}
				}
				if !maxPool {
					for l := range acc {
						acc[l] *= inv
					}
				}
			}
		}
	}
}

// poolToBlocked is pool32 reading NCHW x and writing blocked out (ResNet's
// max pooling after its NCHW 7×7 stem, read by blocked convolutions),
// channel by channel through plane (OutH·OutW floats).
func poolToBlocked(n *Node, x []float32, xs []int, out []float32, ys []int, plane []float32) {
	c, hw, ihw := ys[0], ys[1]*ys[2], xs[1]*xs[2]
	one, oneOut := []int{1, xs[1], xs[2]}, []int{1, ys[1], ys[2]}
	for ch := 0; ch < c; ch++ {
		pool32(n, x[ch*ihw:(ch+1)*ihw], one, plane, oneOut)
		o := out[ch/bc*hw*bc+ch%bc:]
		for p, v := range plane[:hw] {
			o[p*bc] = v
		}
	}
	zeroPadding(out, c, hw)
}

// copyChannels copies channels [so, so+n) of blocked src (hw pixels) to
// channels [do, do+n) of blocked dst: whole blocks at once when both
// offsets are block-aligned, else channel by channel.
func copyChannels(dst []float32, do int, src []float32, so, n, hw int) {
	for n > 0 {
		if do%bc == 0 && so%bc == 0 && n >= bc {
			k := n / bc // whole blocks
			copy(dst[do/bc*hw*bc:(do/bc+k)*hw*bc], src[so/bc*hw*bc:(so/bc+k)*hw*bc])
			do, so, n = do+k*bc, so+k*bc, n-k*bc
			continue
		}
		d := dst[do/bc*hw*bc+do%bc : (do/bc+1)*hw*bc]
		s := src[so/bc*hw*bc+so%bc : (so/bc+1)*hw*bc]
		for p := 0; p < hw; p++ {
			d[p*bc] = s[p*bc]
		}
		do, so, n = do+1, so+1, n-1
	}
}

// zeroPadding clears the padding channels of blocked x (c channels).
func zeroPadding(x []float32, c, hw int) {
	if c%bc == 0 {
		return
	}
	cb := c / bc
	blk := x[cb*hw*bc : (cb+1)*hw*bc]
	for p := 0; p < hw; p++ {
		clear(blk[p*bc+c%bc : (p+1)*bc])
	}
}

// lowerBlockedLayout returns the step of a blocked pooling, concat, split
// or shuffle node.
func (p *Plan) lowerBlockedLayout(nd *Node) func() {
	g := p.g
	in, out := nd.In, nd.Out
	xs, ys := g.Shapes[in[0]], g.Shapes[out]
	switch nd.Kind {
	case MaxPool, AvgPool:
		if !p.blk[in[0]] {
			plane := make([]float32, ys[1]*ys[2])
			return func() { poolToBlocked(nd, p.buf(in[0]), xs, p.buf(out), ys, plane) }
		}
		return func() { blockedPool(nd, p.buf(in[0]), xs, p.buf(out), ys) }
	case Concat:
		hw := ys[1] * ys[2]
		return func() {
			y := p.buf(out)
			at := 0
			for _, v := range in {
				c := g.Shapes[v][0]
				copyChannels(y, at, p.buf(v), 0, c, hw)
				at += c
			}
			zeroPadding(y, ys[0], hw)
		}
	case Split:
		hw := ys[1] * ys[2]
		return func() {
			y := p.buf(out)
			copyChannels(y, 0, p.buf(in[0]), nd.From, nd.To-nd.From, hw)
			zeroPadding(y, ys[0], hw)
		}
	case Shuffle:
		c, hw := xs[0], xs[1]*xs[2]
		per := c / nd.Groups
		return func() {
			x, y := p.buf(in[0]), p.buf(out)
			for gi := 0; gi < nd.Groups; gi++ {
				for j := 0; j < per; j++ {
					copyChannels(y, j*nd.Groups+gi, x, gi*per+j, 1, hw)
				}
			}
			zeroPadding(y, c, hw)
		}
	}
	return nil
}
