package graph

import (
	"os"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Fusions the planner applies on the blocked layout, found by pattern in
// any graph (they are what MobileOne's fused network needs to run as fast
// as it did on its own engine, and they apply wherever the same shapes
// occur in other networks):
//
//   - stem: a dense 3×3 convolution (pad 1, stride 1 or 2) reading few
//     channels in NCHW, usually the image, writes blocked activations
//     directly (kernel.StemOp), with no layout conversion after it;
//   - stem + depthwise: such a stem whose only reader is the next node, a
//     3×3 stride-2 depthwise convolution, runs as one op
//     (kernel.StemDWOp): the stem's output, often the largest activation
//     of the network, stays in L2 band by band;
//   - in place: an Act or SE node whose input has no other reader writes
//     over its input's buffer;
//   - SE + ReLU: an SE node whose only reader is the next node, a ReLU Act
//     node, scales and applies ReLU in one pass (the Act node does nothing);
//   - SE prefetch: the weights of the SE nodes up to the next 1×1
//     convolution are packed into one buffer that the 1×1 convolution
//     before them prefetches into L2 while its last output channels run
//     (kernel.PointwiseOp.After).
//
// MOBILEONE_STEMDW=0 and MOBILEONE_SEPREFETCH=0 turn the two op fusions
// off, for comparisons (as for MobileOne's own engine before this one).
type fusions struct {
	stemDW   map[*Node]*Node        // stem node → the depthwise node it computes too
	done     map[*Node]bool         // nodes whose output another node's step writes
	inPlace  map[*Node]bool         // output shares the input's buffer
	seReLU   map[*Node]bool         // SE applies ReLU (its reader is a done ReLU node)
	seAfter  map[*Node][]float32    // 1×1 conv → SE weights to prefetch
	seWeight map[*Node][4][]float32 // SE → its weights inside a packed buffer
}

var (
	stemDWFusion = os.Getenv("MOBILEONE_STEMDW") != "0"
	sePrefetch   = os.Getenv("MOBILEONE_SEPREFETCH") != "0"
	// MOBILEONE_DENSE=0 runs dense convolutions on NCHW GEMMs, for
	// comparisons.
	denseConv = os.Getenv("MOBILEONE_DENSE") != "0"
)

// maxStemInC bounds the input channels of a convolution run as a stem:
// kernel.StemOp holds every input channel's 3×3 taps per output block in
// registers, which suits images (3 channels), not wide layers.
const maxStemInC = 4

// convKind is how the blocked layout runs a Conv node.
type convKind int

const (
	convNCHW  convKind = iota // no blocked kernel: NCHW ConvOp or the reference
	convPW                    // 1×1, stride 1: kernel.PointwiseOp
	convDW                    // depthwise: kernel.DepthwiseOp
	convStem                  // dense 3×3 on few channels: kernel.StemOp
	convDense                 // other dense convolutions: kernel.DenseOp
	convDWDil                 // dilated 3×3 depthwise, stride 1: kernel.DepthwiseDilatedOp
)

// kernelConv is node n's convolution in the kernels' terms.
func (p *Plan) kernelConv(n *Node) kernel.Conv {
	n = p.conv(n)
	xs := p.g.Shapes[n.In[0]]
	return kernel.Conv{InC: xs[0], InH: xs[1], InW: xs[2], OutC: p.g.Shapes[n.Out][0], K: n.K, Stride: n.Stride, Pad: n.Pad, Groups: n.Groups}
}

// convKindOf reports which blocked kernel runs conv node n.
func (p *Plan) convKindOf(n *Node) convKind {
	n = p.conv(n)
	if n.Kind != Conv || n.K != n.KW || n.Pad != n.PadW {
		return convNCHW
	}
	c := p.kernelConv(n)
	if n.Dilation != 1 {
		if denseConv && c.InC > maxStemInC && kernel.DenseBlockedOK(c, n.Dilation) {
			return convDense
		}
		if kernel.DepthwiseDilatedOK(c, n.Dilation) {
			return convDWDil
		}
		return convNCHW
	}
	switch {
	case c.K == 1 && c.Stride == 1 && c.Pad == 0 && c.Groups == 1:
		return convPW
	case kernel.DepthwiseBlockedOK(c):
		return convDW
	case c.InC <= maxStemInC && kernel.StemBlockedOK(c):
		return convStem
	case denseConv && c.InC > maxStemInC && kernel.DenseBlockedOK(c, 1):
		// (few-channel layers other than 3×3 stems, ResNet's 7×7 one,
		// would waste most of a 16-channel block: NCHW GEMM)
		return convDense
	}
	return convNCHW
}

// planFusions finds the fusions above; it runs after chooseLayouts and
// before assignBuffers.
func (p *Plan) planFusions() {
	g := p.g
	f := fusions{stemDW: map[*Node]*Node{}, done: map[*Node]bool{}, inPlace: map[*Node]bool{},
		seReLU: map[*Node]bool{}, seAfter: map[*Node][]float32{}, seWeight: map[*Node][4][]float32{}}
	p.fuse = f
	if !p.Blocked {
		return
	}
	readers := make([]int, len(g.Shapes))
	for _, n := range g.Nodes {
		for _, v := range n.In {
			readers[v]++
		}
	}
	readers[g.Output]++
	for _, v := range g.Outs {
		readers[v]++
	}
	// only: v has one reader, node nodes[i+1], and no copy in the other layout.
	onlyNext := func(v Value, i int) *Node {
		if i+1 >= len(g.Nodes) || readers[v] != 1 || p.alt[v] != nil {
			return nil
		}
		next := g.Nodes[i+1]
		if len(next.In) != 1 || next.In[0] != v {
			return nil
		}
		return next
	}
	reluOrNone := func(a Activation) bool { return a == None || a == ReLU }
	for i, n := range g.Nodes {
		if i == 0 {
			continue
		}
		switch n.Kind {
		case Conv:
			if !stemDWFusion || !p.blk[n.Out] || p.convKindOf(n) != convStem || !reluOrNone(n.Act) {
				break
			}
			d := onlyNext(n.Out, i)
			if d == nil || d.Kind != Conv || !p.blk[d.Out] || p.convKindOf(d) != convDW || !reluOrNone(d.Act) {
				break
			}
			if dc := p.kernelConv(d); dc.K == 3 && kernel.StemDWOK(p.kernelConv(n), dc) {
				f.stemDW[n] = d
				f.done[d] = true
			}
		case Act, SE:
			x := n.In[0]
			if readers[x] == 1 && x != g.Nodes[0].Out && p.blk[x] == p.blk[n.Out] && p.alt[x] == nil {
				f.inPlace[n] = true
			}
		}
	}
	for i, n := range g.Nodes {
		if n.Kind != SE || !p.blk[n.Out] || !f.inPlace[n] {
			continue
		}
		if a := onlyNext(n.Out, i); a != nil && a.Kind == Act && a.Act == ReLU && f.inPlace[a] && p.blk[a.Out] {
			f.seReLU[n] = true
			f.done[a] = true
		}
	}
	if sePrefetch {
		p.packSE()
	}
}

// packSE gives each blocked 1×1 convolution the weights of the SE nodes
// that run after it and before the next 1×1 convolution, in one buffer.
func (p *Plan) packSE() {
	g := p.g
	for i, n := range g.Nodes {
		if n.Kind != Conv || !p.blk[n.Out] || p.convKindOf(n) != convPW {
			continue
		}
		var ses []*Node
		for _, m := range g.Nodes[i+1:] {
			if m.Kind == Conv && p.convKindOf(m) == convPW {
				break
			}
			if m.Kind == SE && p.blk[m.Out] {
				ses = append(ses, m)
			}
		}
		size := 0
		for _, s := range ses {
			for _, t := range s.Tensors[:4] {
				size += len(t.Data)
			}
		}
		if size == 0 {
			continue
		}
		buf := make([]float32, 0, size)
		for _, s := range ses {
			var parts [4][]float32
			for k, t := range s.Tensors[:4] {
				at := len(buf)
				buf = append(buf, t.Data...)
				parts[k] = buf[at:len(buf):len(buf)]
			}
			p.fuse.seWeight[s] = parts
		}
		p.fuse.seAfter[n] = buf
	}
}

// seWeights returns SE node n's weights: w1, b1, w2, b2.
func (p *Plan) seWeights(n *Node) (w1, b1, w2, b2 []float32) {
	if w, ok := p.fuse.seWeight[n]; ok {
		return w[0], w[1], w[2], w[3]
	}
	return n.Tensors[0].Data, n.Tensors[1].Data, n.Tensors[2].Data, n.Tensors[3].Data
}

// ComputedBy returns the node whose step computes n's output: n itself, or
// the node before it that a fusion made do both (a stem for the depthwise
// layer after it, an SE for its ReLU).
func (p *Plan) ComputedBy(n *Node) *Node {
	if !p.fuse.done[n] {
		return n
	}
	for stem, dw := range p.fuse.stemDW {
		if dw == n {
			return stem
		}
	}
	for i, m := range p.g.Nodes {
		if m == n && i > 0 {
			return p.g.Nodes[i-1] // SE + ReLU: the SE just before
		}
	}
	return n
}
