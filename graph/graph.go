// Package graph is the network description every model of this project is
// built as: a small, explicit graph of operators with attributes, shapes and
// named weights, from which parameters and multiply-accumulates are counted,
// which the reference executor runs as the oracle (Ref) and which the
// planner lowers onto the kernels.
//
// A graph describes one image: value shapes carry no batch dimension, (C, H,
// W) for feature maps, (G, T, D) for groups of token sequences, (D) for
// vectors. Executors run a batch image by image (or images in parallel).
//
// Architectures (package arch) build graphs with a Builder; they know
// nothing of kernels. Weights are bound by the state-dict key names of the
// architecture's reference implementation (torchvision's, the authors'),
// so a checkpoint loads by name and a missing or unused key is an error that
// names it. A convolution followed by BatchNorm is one Conv node holding
// both sets of tensors; the BatchNorm is folded into the convolution's
// weight and bias (in float64) when the graph is finalised, as it is for
// inference in every framework.
package graph

import (
	"fmt"
	"strings"

	"github.com/mobileone-go/mobileone/tensor"
)

// Kind is an operator.
type Kind int

// Operators. Each is documented with its inputs and output, per image.
const (
	// Input: the graph's input, (C, H, W).
	Input Kind = iota
	// Conv: x (Cin, H, W) → (Cout, Ho, Wo): a 2-D convolution of any kernel,
	// stride, padding, dilation and groups, with bias, an optional folded
	// BatchNorm and a fused activation.
	Conv
	// Linear: x (..., In) → (..., Out), y = x·Wᵀ + b on the last dimension,
	// then the fused activation.
	Linear
	// Act: an element-wise activation.
	Act
	// Add: x + y (same shapes), then the fused activation.
	Add
	// Concat: along the first dimension (channels of maps).
	Concat
	// Shuffle: ShuffleNet's channel shuffle with Groups groups.
	Shuffle
	// Split: channels [From, To) of x (ShuffleNet's channel split).
	Split
	// MaxPool, AvgPool: K×K windows, stride, padding (AvgPool counts padded
	// zeros, PyTorch's count_include_pad=True).
	MaxPool
	AvgPool
	// GlobalAvgPool: (C, H, W) → (C), or (C, 1, 1) when built by
	// GlobalAvgPoolMap.
	GlobalAvgPool
	// SE: squeeze-and-excitation on (C, H, W): pool, 1×1 conv C→Hidden with
	// bias and Act, 1×1 conv Hidden→C with bias and Gate, scale x by it.
	SE
	// Upsample: (C, H, W) → (C, OutH, OutW), bilinear (align_corners
	// false) or nearest.
	Upsample
	// LayerNorm over the last dimension, with weight and bias.
	LayerNorm
	// Attention: multi-head self-attention on qkv (G, T, 3D) → (G, T, D):
	// softmax(q·kᵀ/√(D/Heads))·v per head, per group, heads concatenated.
	Attention
	// Unfold: MobileViT's patches: (C, H, W) → (P·P, H·W/P², C) with
	// P = Patch; Fold is its inverse.
	Unfold
	Fold
	// DyReLU: dynamic ReLU (Chen et al. 2020): y = max_k(a_k·x + b_k) with
	// coefficients from a small network on the pooled input; variant A
	// shares them across channels, B has them per channel.
	DyReLU
	// DyShiftMax: dynamic shift-max (MicroNet, Li et al. 2021).
	DyShiftMax
)

var kindNames = [...]string{"Input", "Conv", "Linear", "Act", "Add", "Concat", "Shuffle", "Split", "MaxPool", "AvgPool",
	"GlobalAvgPool", "SE", "Upsample", "LayerNorm", "Attention", "Unfold", "Fold", "DyReLU", "DyShiftMax"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Activation is an element-wise function.
type Activation int

// Activations, as PyTorch defines them.
const (
	None        Activation = iota
	ReLU                   // max(x, 0)
	ReLU6                  // min(max(x, 0), 6)
	HardSwish              // x·relu6(x+3)/6
	HardSigmoid            // relu6(x+3)/6
	SiLU                   // x·σ(x)
	GELU                   // x·Φ(x), exact (erf)
	Sigmoid                // σ(x)
)

var actNames = [...]string{"none", "relu", "relu6", "hardswish", "hardsigmoid", "silu", "gelu", "sigmoid"}

func (a Activation) String() string {
	if b := a.Base(); a&BF16 != 0 && int(b) < len(actNames) {
		return actNames[b] + "+bf16"
	}
	if int(a) < len(actNames) {
		return actNames[a]
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// ParseActivation is String's inverse.
func ParseActivation(s string) (Activation, error) {
	for i, n := range actNames {
		if n == s {
			return Activation(i), nil
		}
	}
	return None, fmt.Errorf("unknown activation %q (want one of %s)", s, strings.Join(actNames[:], ", "))
}

// Value identifies a tensor of the graph (a node's output).
type Value int

// Tensor is a named weight of a node.
type Tensor struct {
	// Key is the state-dict key it loads from and saves to.
	Key string
	// Shape is the shape the key must have.
	Shape []int
	// Data is nil until loaded or initialised.
	Data []float32
	// Param: counted as a parameter (weights, biases, affine scales; not
	// BatchNorm's running statistics).
	Param bool
}

// Node is one operator application.
type Node struct {
	Kind Kind
	// Name is the node's state-dict prefix (or a descriptive name).
	Name string
	In   []Value
	Out  Value
	// Act is the activation fused after Conv, Linear, Add and SE's inner
	// 1×1 conv, or the function of an Act node.
	Act Activation
	// Gate is SE's gate activation.
	Gate Activation

	// Conv and pooling.
	K, KW, Stride, Pad, PadW, Dilation, Groups int
	// Conv: BatchNorm folded in (Tensors hold bn.weight, bn.bias,
	// bn.running_mean, bn.running_var after the conv's own) with this eps.
	BN    bool
	BNEps float64
	// HasBias: the Conv has its own bias (before any BatchNorm).
	HasBias bool
	// SE, DyReLU, DyShiftMax: hidden width; Attention: heads; Shuffle:
	// groups; Split: From, To; Unfold/Fold: Patch; Upsample: Nearest.
	Hidden, Heads, From, To, Patch int
	Nearest                        bool
	// LayerNorm's eps.
	Eps float64
	// DyReLU: true for variant B (per channel); DyShiftMax: groups J.
	PerChannel bool

	Tensors []Tensor

	// w and b are the effective (folded) weight and bias, set by Finalize.
	w, b []float32
}

// Graph is a network for one image.
type Graph struct {
	Name   string
	Nodes  []*Node // in topological order; Nodes[0] is the Input
	Shapes [][]int // by Value
	Output Value   // the graph's output
	Outs   []Value // further named outputs (features), optional
	final  bool    // weights folded, ready to run
	byKey  map[string]*Tensor
}

// InputShape is the (C, H, W) the graph was built for.
func (g *Graph) InputShape() []int { return g.Shapes[g.Nodes[0].Out] }

// OutputShape is the shape of the output value.
func (g *Graph) OutputShape() []int { return g.Shapes[g.Output] }

// Tensors lists every named weight in node order.
func (g *Graph) Tensors() []*Tensor {
	var out []*Tensor
	for _, n := range g.Nodes {
		for i := range n.Tensors {
			out = append(out, &n.Tensors[i])
		}
	}
	return out
}

// Params counts the parameters as the reference implementation does (every
// weight, bias and affine scale; BatchNorm's γ and β, not its statistics).
func (g *Graph) Params() int64 {
	var n int64
	for _, t := range g.Tensors() {
		if t.Param {
			n += int64(tensor.NumelOf(t.Shape))
		}
	}
	return n
}

// MACs counts multiply-accumulates for one image by the project's rules
// (tools/reference/zoo.py): convolutions Cout·(Cin/groups)·kh·kw·Ho·Wo,
// linear layers In·Out per row, attention's two matrix products T·T·(D/H)
// per head and group, SE's and the dynamic activations' small layers as
// the 1×1 convolutions they are; nothing else.
func (g *Graph) MACs() int64 {
	var total int64
	for _, n := range g.Nodes {
		total += g.NodeMACs(n)
	}
	return total
}

// NodeParams counts node n's parameters.
func (n *Node) NodeParams() int64 {
	var c int64
	for _, t := range n.Tensors {
		if t.Param {
			c += int64(tensor.NumelOf(t.Shape))
		}
	}
	return c
}

// NodeMACs counts node n's multiply-accumulates for one image.
func (g *Graph) NodeMACs(n *Node) int64 {
	switch n.Kind {
	case Conv:
		in, out := g.Shapes[n.In[0]], g.Shapes[n.Out]
		return int64(out[0]) * int64(in[0]/n.Groups) * int64(n.K*n.KW) * int64(out[1]*out[2])
	case Linear:
		in, out := g.Shapes[n.In[0]], g.Shapes[n.Out]
		rows := tensor.NumelOf(in) / in[len(in)-1]
		return int64(rows) * int64(in[len(in)-1]) * int64(out[len(out)-1])
	case SE:
		c := g.Shapes[n.In[0]][0]
		return 2 * int64(c) * int64(n.Hidden)
	case Attention:
		in := g.Shapes[n.In[0]] // (G, T, 3D)
		gr, t, d := in[0], in[1], in[2]/3
		return 2 * int64(gr) * int64(t) * int64(t) * int64(d)
	case DyReLU, DyShiftMax:
		// fc1 (Hidden, C) and fc2 (coefficients, Hidden) on the pooled input.
		c := g.Shapes[n.In[0]][0]
		return int64(c)*int64(n.Hidden) + int64(n.Hidden)*int64(n.Tensors[2].Shape[0])
	}
	return 0
}

// Tensor returns the weight stored under key, or nil.
func (g *Graph) Tensor(key string) *Tensor {
	if g.byKey == nil {
		g.byKey = make(map[string]*Tensor)
		for _, t := range g.Tensors() {
			g.byKey[t.Key] = t
		}
	}
	return g.byKey[key]
}

// Describe gives one line per node: kind, name, output shape.
func (g *Graph) Describe() string {
	var b strings.Builder
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "%-13s %-40s %s\n", n.Kind, n.Name, tensor.ShapeString(g.Shapes[n.Out]))
	}
	return b.String()
}
