package graph

import (
	"fmt"

	"github.com/mobileone-go/mobileone/tensor"
)

// Builder adds nodes to a graph, inferring every output's shape. The first
// error (a shape that does not fit) is kept and returned by Graph; later
// calls are then no-ops returning the input value.
type Builder struct {
	g   *Graph
	err error
}

// NewBuilder starts a graph whose input is (c, h, w).
func NewBuilder(name string, c, h, w int) *Builder {
	b := &Builder{g: &Graph{Name: name}}
	b.add(&Node{Kind: Input, Name: "input"}, []int{c, h, w})
	return b
}

// Input is the graph's input value.
func (b *Builder) Input() Value { return b.g.Nodes[0].Out }

// Shape returns the shape of v.
func (b *Builder) Shape(v Value) []int { return b.g.Shapes[v] }

// Err is the first error so far.
func (b *Builder) Err() error { return b.err }

// Graph finishes the graph with out as its output and features (optional)
// as named further outputs.
func (b *Builder) Graph(out Value, features ...Value) (*Graph, error) {
	if b.err != nil {
		return nil, fmt.Errorf("graph %s: %w", b.g.Name, b.err)
	}
	b.g.Output, b.g.Outs = out, features
	return b.g, nil
}

func (b *Builder) add(n *Node, shape []int) Value {
	n.Out = Value(len(b.g.Shapes))
	b.g.Shapes = append(b.g.Shapes, shape)
	b.g.Nodes = append(b.g.Nodes, n)
	return n.Out
}

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

func weight(key string, param bool, shape ...int) Tensor {
	return Tensor{Key: key, Shape: shape, Param: param}
}

// ConvSpec describes a convolution.
type ConvSpec struct {
	Out          int // output channels
	K, KW        int // kernel height and width (KW 0: square)
	Stride       int // default 1
	Pad, PadW    int // padding (PadW -1 or 0 with Pad: same as Pad); -1: K/2·dilation ("same" for odd K)
	Dilation     int // default 1
	Groups       int // default 1
	Bias         bool
	BN           bool    // a BatchNorm follows (folded at load)
	BNEps        float64 // default 1e-5
	BNName       string  // state-dict prefix of the BatchNorm (default: name + ".bn" is NOT assumed; required with BN)
	Act          Activation
	WeightSuffix string // default ".weight"
}

// Conv adds a convolution named by its state-dict prefix (weight at
// name+".weight", bias at name+".bias", the BatchNorm at s.BNName).
func (b *Builder) Conv(x Value, name string, s ConvSpec) Value {
	if b.err != nil {
		return x
	}
	in := b.g.Shapes[x]
	if len(in) != 3 {
		b.fail("%s: conv needs a (C, H, W) input, got %s", name, tensor.ShapeString(in))
		return x
	}
	if s.KW == 0 {
		s.KW = s.K
	}
	if s.Stride == 0 {
		s.Stride = 1
	}
	if s.Dilation == 0 {
		s.Dilation = 1
	}
	if s.Groups == 0 {
		s.Groups = 1
	}
	if s.Pad < 0 {
		s.Pad = (s.K - 1) / 2 * s.Dilation
	}
	padW := s.PadW
	if padW <= 0 {
		padW = s.Pad
		if s.PadW < 0 || s.KW != s.K {
			padW = (s.KW - 1) / 2 * s.Dilation
		}
	}
	if s.BNEps == 0 {
		s.BNEps = 1e-5
	}
	cin := in[0]
	if s.Out < 1 || s.K < 1 || cin%s.Groups != 0 || s.Out%s.Groups != 0 {
		b.fail("%s: conv %d→%d channels, kernel %d, groups %d do not fit", name, cin, s.Out, s.K, s.Groups)
		return x
	}
	oh := (in[1]+2*s.Pad-s.Dilation*(s.K-1)-1)/s.Stride + 1
	ow := (in[2]+2*padW-s.Dilation*(s.KW-1)-1)/s.Stride + 1
	if oh < 1 || ow < 1 {
		b.fail("%s: input %d×%d is too small for a %d×%d conv (stride %d, padding %d)", name, in[1], in[2], s.K, s.KW, s.Stride, s.Pad)
		return x
	}
	suffix := s.WeightSuffix
	if suffix == "" {
		suffix = ".weight"
	}
	n := &Node{Kind: Conv, Name: name, In: []Value{x}, Act: s.Act, K: s.K, KW: s.KW, Stride: s.Stride, Pad: s.Pad, PadW: padW,
		Dilation: s.Dilation, Groups: s.Groups, BN: s.BN, BNEps: s.BNEps, HasBias: s.Bias}
	n.Tensors = append(n.Tensors, weight(name+suffix, true, s.Out, cin/s.Groups, s.K, s.KW))
	if s.Bias {
		n.Tensors = append(n.Tensors, weight(name+".bias", true, s.Out))
	}
	if s.BN {
		if s.BNName == "" {
			b.fail("%s: a BatchNorm needs its state-dict name", name)
			return x
		}
		bn := s.BNName
		n.Tensors = append(n.Tensors, weight(bn+".weight", true, s.Out), weight(bn+".bias", true, s.Out),
			weight(bn+".running_mean", false, s.Out), weight(bn+".running_var", false, s.Out))
	}
	return b.add(n, []int{s.Out, oh, ow})
}

// Linear adds y = x·Wᵀ + b over the last dimension (weight (out, in)).
func (b *Builder) Linear(x Value, name string, out int, bias bool, act Activation) Value {
	if b.err != nil {
		return x
	}
	in := b.g.Shapes[x]
	d := in[len(in)-1]
	n := &Node{Kind: Linear, Name: name, In: []Value{x}, Act: act}
	n.Tensors = append(n.Tensors, weight(name+".weight", true, out, d))
	if bias {
		n.Tensors = append(n.Tensors, weight(name+".bias", true, out))
	}
	shape := append(append([]int(nil), in[:len(in)-1]...), out)
	return b.add(n, shape)
}

// Act adds an element-wise activation.
func (b *Builder) Act(x Value, name string, a Activation) Value {
	if b.err != nil || a == None {
		return x
	}
	return b.add(&Node{Kind: Act, Name: name, In: []Value{x}, Act: a}, b.g.Shapes[x])
}

// Add adds x + y, then act.
func (b *Builder) Add(x, y Value, name string, act Activation) Value {
	if b.err != nil {
		return x
	}
	if !tensor.SameShape(b.g.Shapes[x], b.g.Shapes[y]) {
		b.fail("%s: adding %s and %s", name, tensor.ShapeString(b.g.Shapes[x]), tensor.ShapeString(b.g.Shapes[y]))
		return x
	}
	return b.add(&Node{Kind: Add, Name: name, In: []Value{x, y}, Act: act}, b.g.Shapes[x])
}

// Concat joins values along their first dimension.
func (b *Builder) Concat(name string, xs ...Value) Value {
	if b.err != nil {
		return xs[0]
	}
	first := b.g.Shapes[xs[0]]
	out := append([]int(nil), first...)
	out[0] = 0
	for _, x := range xs {
		s := b.g.Shapes[x]
		if len(s) != len(first) || !tensor.SameShape(s[1:], first[1:]) {
			b.fail("%s: concatenating %s and %s", name, tensor.ShapeString(first), tensor.ShapeString(s))
			return xs[0]
		}
		out[0] += s[0]
	}
	return b.add(&Node{Kind: Concat, Name: name, In: xs}, out)
}

// Shuffle adds ShuffleNet's channel shuffle.
func (b *Builder) Shuffle(x Value, name string, groups int) Value {
	if b.err != nil {
		return x
	}
	if b.g.Shapes[x][0]%groups != 0 {
		b.fail("%s: %d channels in %d groups", name, b.g.Shapes[x][0], groups)
		return x
	}
	return b.add(&Node{Kind: Shuffle, Name: name, In: []Value{x}, Groups: groups}, b.g.Shapes[x])
}

// Split takes channels [from, to) of x.
func (b *Builder) Split(x Value, name string, from, to int) Value {
	if b.err != nil {
		return x
	}
	s := append([]int(nil), b.g.Shapes[x]...)
	if from < 0 || to > s[0] || from >= to {
		b.fail("%s: channels [%d, %d) of %d", name, from, to, s[0])
		return x
	}
	s[0] = to - from
	return b.add(&Node{Kind: Split, Name: name, In: []Value{x}, From: from, To: to}, s)
}

// Pool adds a max or average pooling (kind MaxPool or AvgPool).
func (b *Builder) Pool(x Value, name string, kind Kind, k, stride, pad int) Value {
	if b.err != nil {
		return x
	}
	in := b.g.Shapes[x]
	oh := (in[1]+2*pad-k)/stride + 1
	ow := (in[2]+2*pad-k)/stride + 1
	if oh < 1 || ow < 1 {
		b.fail("%s: input %d×%d too small for %d×%d pooling", name, in[1], in[2], k, k)
		return x
	}
	return b.add(&Node{Kind: kind, Name: name, In: []Value{x}, K: k, KW: k, Stride: stride, Pad: pad, PadW: pad}, []int{in[0], oh, ow})
}

// GlobalAvgPool adds (C, H, W) → (C).
func (b *Builder) GlobalAvgPool(x Value, name string) Value {
	if b.err != nil {
		return x
	}
	return b.add(&Node{Kind: GlobalAvgPool, Name: name, In: []Value{x}}, []int{b.g.Shapes[x][0]})
}

// GlobalAvgPoolMap adds (C, H, W) → (C, 1, 1), PyTorch's
// AdaptiveAvgPool2d(1): a map that convolutions and Upsample can read
// (DeepLabV3's image-pooling branch).
func (b *Builder) GlobalAvgPoolMap(x Value, name string) Value {
	if b.err != nil {
		return x
	}
	if len(b.g.Shapes[x]) != 3 {
		b.fail("%s: global pooling to a map needs a (C, H, W) input, got %s", name, tensor.ShapeString(b.g.Shapes[x]))
		return x
	}
	return b.add(&Node{Kind: GlobalAvgPool, Name: name, In: []Value{x}}, []int{b.g.Shapes[x][0], 1, 1})
}

// SESpec describes a squeeze-and-excitation block.
type SESpec struct {
	Hidden         int
	Act, Gate      Activation
	Reduce, Expand string // state-dict prefixes of the two 1×1 convs
	ConvWeights    bool   // the weights are (out, in, 1, 1) convs (else (out, in) linears)
}

// SE adds squeeze-and-excitation on x.
func (b *Builder) SE(x Value, name string, s SESpec) Value {
	if b.err != nil {
		return x
	}
	c := b.g.Shapes[x][0]
	n := &Node{Kind: SE, Name: name, In: []Value{x}, Act: s.Act, Gate: s.Gate, Hidden: s.Hidden}
	w1, w2 := []int{s.Hidden, c}, []int{c, s.Hidden}
	if s.ConvWeights {
		w1, w2 = append(w1, 1, 1), append(w2, 1, 1)
	}
	n.Tensors = []Tensor{weight(s.Reduce+".weight", true, w1...), weight(s.Reduce+".bias", true, s.Hidden),
		weight(s.Expand+".weight", true, w2...), weight(s.Expand+".bias", true, c)}
	return b.add(n, b.g.Shapes[x])
}

// Upsample resizes (C, H, W) to (C, h, w): bilinear (align_corners false)
// or nearest.
func (b *Builder) Upsample(x Value, name string, h, w int, nearest bool) Value {
	if b.err != nil {
		return x
	}
	if s := b.g.Shapes[x]; len(s) != 3 || h < 1 || w < 1 {
		b.fail("%s: upsampling %s to %d×%d", name, tensor.ShapeString(s), h, w)
		return x
	}
	return b.add(&Node{Kind: Upsample, Name: name, In: []Value{x}, Nearest: nearest}, []int{b.g.Shapes[x][0], h, w})
}

// LayerNorm normalises over the last dimension (weight and bias at
// name+".weight", name+".bias").
func (b *Builder) LayerNorm(x Value, name string, eps float64) Value {
	if b.err != nil {
		return x
	}
	s := b.g.Shapes[x]
	d := s[len(s)-1]
	n := &Node{Kind: LayerNorm, Name: name, In: []Value{x}, Eps: eps,
		Tensors: []Tensor{weight(name+".weight", true, d), weight(name+".bias", true, d)}}
	return b.add(n, s)
}

// Attention adds multi-head self-attention on qkv (G, T, 3D) → (G, T, D).
func (b *Builder) Attention(qkv Value, name string, heads int) Value {
	if b.err != nil {
		return qkv
	}
	s := b.g.Shapes[qkv]
	if len(s) != 3 || s[2]%3 != 0 || (s[2]/3)%heads != 0 {
		b.fail("%s: attention needs (G, T, 3D) with D divisible by %d heads, got %s", name, heads, tensor.ShapeString(s))
		return qkv
	}
	return b.add(&Node{Kind: Attention, Name: name, In: []Value{qkv}, Heads: heads}, []int{s[0], s[1], s[2] / 3})
}

// Unfold cuts (C, H, W) into P×P patches: (P·P, H·W/P², C).
func (b *Builder) Unfold(x Value, name string, p int) Value {
	if b.err != nil {
		return x
	}
	s := b.g.Shapes[x]
	if s[1]%p != 0 || s[2]%p != 0 {
		b.fail("%s: %d×%d map is not a whole number of %d×%d patches", name, s[1], s[2], p, p)
		return x
	}
	return b.add(&Node{Kind: Unfold, Name: name, In: []Value{x}, Patch: p}, []int{p * p, s[1] * s[2] / (p * p), s[0]})
}

// Fold is Unfold's inverse, back to (C, h, w).
func (b *Builder) Fold(x Value, name string, p, h, w int) Value {
	if b.err != nil {
		return x
	}
	s := b.g.Shapes[x]
	if s[0] != p*p || s[1] != h*w/(p*p) {
		b.fail("%s: %s is not %d×%d in %d×%d patches", name, tensor.ShapeString(s), h, w, p, p)
		return x
	}
	return b.add(&Node{Kind: Fold, Name: name, In: []Value{x}, Patch: p}, []int{s[2], h, w})
}

// Dynamic adds DyReLU (A or B) or DyShiftMax: a coefficient network
// fc1 (hidden, C) + ReLU, fc2 (coeffs, hidden) on the pooled input,
// whose keys are name+".fc1.*" and name+".fc2.*". For DyShiftMax,
// groups is J (the shift's group count).
func (b *Builder) Dynamic(x Value, name string, kind Kind, hidden int, perChannel bool, groups int) Value {
	if b.err != nil {
		return x
	}
	c := b.g.Shapes[x][0]
	var coeffs int
	switch {
	case kind == DyReLU && perChannel:
		coeffs = 4 * c // K = 2 pieces, a and b each
	case kind == DyReLU:
		coeffs = 4
	case kind == DyShiftMax:
		coeffs = 4 * c // K = 2 fusions × J = 2 shifts of a
		if groups < 1 || c%groups != 0 {
			b.fail("%s: %d channels in %d groups", name, c, groups)
			return x
		}
	default:
		b.fail("%s: %s is not a dynamic activation", name, kind)
		return x
	}
	n := &Node{Kind: kind, Name: name, In: []Value{x}, Hidden: hidden, PerChannel: perChannel, Groups: groups,
		Tensors: []Tensor{weight(name+".fc1.weight", true, hidden, c), weight(name+".fc1.bias", true, hidden),
			weight(name+".fc2.weight", true, coeffs, hidden), weight(name+".fc2.bias", true, coeffs)}}
	return b.add(n, b.g.Shapes[x])
}
