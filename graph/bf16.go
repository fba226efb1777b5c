package graph

import "github.com/mobileone-go/mobileone/internal/kernel"

// bfloat16 inference: Graph.BF16 makes a copy of a graph that computes as
// a bfloat16 engine does (PyTorch's CPU autocast, ONNX Runtime's and
// oneDNN's bf16 paths, the VDPBF16PS and AMX kernels): every convolution
// and linear layer multiplies bfloat16 weights by bfloat16 inputs and sums
// the products in float32, and adds a float32 bias. It runs on every
// planner and CPU as it is:
//
//   - the weights of Conv and Linear nodes are rounded to bfloat16 once
//     (stored as float32 whose low 16 bits are zero);
//   - every value a Conv or Linear node reads is rounded to bfloat16 where
//     it is made: the activation of the node that makes it (Conv, Linear,
//     Add, Act) gets the BF16 flag, which the kernels apply to each tile
//     right after its activation, while it is in cache; after any other
//     node (the input, pooling, concatenation, ...) an Act node that only
//     rounds is inserted. Every reader of the value then sees the rounded
//     value, as if it were stored in bfloat16.
//
// The product of two bfloat16 numbers (8 significant bits each) is exact
// in float32 (24), so the float32 kernels compute exactly the bfloat16
// products; only the order of the float32 sums differs from one engine
// to another. What is not rounded: biases, BatchNorm-free element-wise
// work (adds, activations, pooling) in float32, and the small layers inside
// squeeze-excitation, layer norm and attention's own products.
//
// A CPU with bfloat16 arithmetic (AVX512-BF16, AMX) could run these
// layers twice to many times faster; the kernels here are the float32
// ones, so on other CPUs bfloat16 costs a rounding pass per layer and
// gains nothing but the memory of the weights it could store.

// BF16 in an Activation rounds the node's output to the nearest bfloat16
// (ties to even) after the activation (see Graph.BF16).
const BF16 Activation = 1 << 8

// Base is a without the BF16 flag.
func (a Activation) Base() Activation { return a &^ BF16 }

// BF16 returns a copy of g (finalised, weights loaded) that computes in
// bfloat16 as described above. The copy shares g's tensors; g is not
// changed.
func (g *Graph) BF16() (*Graph, error) {
	if !g.final {
		if err := g.Finalize(); err != nil {
			return nil, err
		}
	}
	read := make([]bool, len(g.Shapes)) // read by a Conv or Linear node
	for _, n := range g.Nodes[1:] {
		if n.Kind == Conv || n.Kind == Linear {
			read[n.In[0]] = true
		}
	}
	ng := &Graph{Name: g.Name, byKey: g.byKey, final: true}
	add := func(n *Node, shape []int) Value {
		n.Out = Value(len(ng.Shapes))
		ng.Shapes = append(ng.Shapes, shape)
		ng.Nodes = append(ng.Nodes, n)
		return n.Out
	}
	vmap := make([]Value, len(g.Shapes))
	for _, n := range g.Nodes {
		c := *n
		c.In = make([]Value, len(n.In))
		for i, v := range n.In {
			c.In[i] = vmap[v]
		}
		if n.Kind == Conv || n.Kind == Linear {
			c.w = make([]float32, len(n.w))
			for i, v := range n.w {
				c.w[i] = kernel.RoundBF16(v)
			}
		}
		out := add(&c, g.Shapes[n.Out])
		if read[n.Out] {
			switch n.Kind {
			case Conv, Linear, Add, Act:
				c.Act |= BF16
			default:
				r := &Node{Kind: Act, Name: n.Name + ".bf16", In: []Value{out}, Act: None | BF16}
				out = add(r, g.Shapes[n.Out])
			}
		}
		vmap[n.Out] = out
	}
	ng.Output = vmap[g.Output]
	for _, v := range g.Outs {
		ng.Outs = append(ng.Outs, vmap[v])
	}
	return ng, nil
}

// IsBF16 reports whether g was made by Graph.BF16.
func (g *Graph) IsBF16() bool {
	for _, n := range g.Nodes {
		if n.Act&BF16 != 0 {
			return true
		}
	}
	return false
}
