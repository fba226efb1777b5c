package onnx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/mobileone-go/mobileone/format/onnx/onnxpb"
	gr "github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/tensor"
)

// GraphOpset is the opset of ExportGraph's files (LayerNormalization is
// opset 17; HardSwish 14).
const GraphOpset = 17

// ExportGraph writes any graph of package graph as an ONNX model (IR 8,
// opset 17): the input "input" (batch, C, H, W) with a dynamic batch, the
// output "output" (batch, output shape...). Convolutions carry their folded
// (BatchNorm-free) weights; each node is named after the graph's node and
// every weight after its state-dict key. Operators ONNX has no single node
// for are written as their standard decompositions (GELU through Erf,
// attention through MatMul and Softmax, channel shuffle and MobileViT's
// patches through Reshape and Transpose). The graph must be loaded or
// initialised.
func ExportGraph(w io.Writer, g *gr.Graph, producerVersion string) error {
	mp, err := BuildGraph(g, producerVersion)
	if err != nil {
		return err
	}
	return write(w, mp)
}

// Names of ExportGraph's input and output.
const (
	GraphInput  = "input"
	GraphOutput = "output"
)

// BuildGraph returns the model proto ExportGraph writes.
func BuildGraph(g *gr.Graph, producerVersion string) (*onnxpb.ModelProto, error) {
	if err := g.Finalize(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	e := &gexp{graph: graph{pb: &onnxpb.GraphProto{Name: proto.String(g.Name)}}, g: g, names: make([]string, len(g.Shapes))}
	in := g.InputShape()
	e.pb.Input = append(e.pb.Input, valueInfo(GraphInput, dims(in)))
	e.names[g.Nodes[0].Out] = GraphInput
	for _, n := range g.Nodes[1:] {
		if err := e.node(n); err != nil {
			return nil, err
		}
	}
	out := e.names[g.Output]
	e.node1("Identity", "output", []string{out}, GraphOutput)
	e.pb.Output = append(e.pb.Output, valueInfo(GraphOutput, dims(g.OutputShape())))
	return &onnxpb.ModelProto{
		IrVersion:       proto.Int64(IRVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(GraphOpset)}},
		ProducerName:    proto.String("mobileone-go"),
		ProducerVersion: proto.String(producerVersion),
		ModelVersion:    proto.Int64(1),
		DocString:       proto.String(fmt.Sprintf("%s: input %s (N, %v), output %s (N, %v)", g.Name, GraphInput, in, GraphOutput, g.OutputShape())),
		Graph:           e.pb,
	}, nil
}

func dims(shape []int) []*onnxpb.TensorShapeProto_Dimension {
	d := []*onnxpb.TensorShapeProto_Dimension{dimParam("batch")}
	for _, v := range shape {
		d = append(d, dimValue(int64(v)))
	}
	return d
}

type gexp struct {
	graph
	g     *gr.Graph
	names []string // ONNX name of each value
	k     int      // counter for helper tensors
	used  map[string]bool
}

func (e *gexp) node1(op, name string, in []string, out string, attrs ...*onnxpb.AttributeProto) string {
	return e.graph.node(op, name, in, out, attrs...)
}

// tmp names an intermediate output of node n.
func (e *gexp) tmp(n *gr.Node, what string) string {
	e.k++
	return fmt.Sprintf("%s/%s_%d", n.Name, what, e.k)
}

func (e *gexp) f32(name string, shape []int, data []float32) string {
	return e.init(name, &tensor.Tensor{Shape: shape, Data: data})
}

func (e *gexp) i64(name string, v ...int64) string {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	e.pb.Initializer = append(e.pb.Initializer, &onnxpb.TensorProto{Name: proto.String(name),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{int64(len(v))}, RawData: raw})
	return name
}

func (e *gexp) scalar(name string, v float32) string { return e.f32(name, nil, []float32{v}) }

// act appends activation a on x and returns the result's name.
func (e *gexp) act(n *gr.Node, x string, a gr.Activation, out string) string {
	switch a {
	case gr.None:
		if out != "" {
			return e.node1("Identity", e.tmp(n, "id"), []string{x}, out)
		}
		return x
	}
	if out == "" {
		out = e.tmp(n, a.String())
	}
	nm := n.Name + "/" + a.String()
	switch a {
	case gr.ReLU:
		return e.node1("Relu", nm, []string{x}, out)
	case gr.ReLU6:
		return e.node1("Clip", nm, []string{x, e.scalar(e.tmp(n, "zero"), 0), e.scalar(e.tmp(n, "six"), 6)}, out)
	case gr.HardSwish:
		return e.node1("HardSwish", nm, []string{x}, out)
	case gr.HardSigmoid:
		return e.node1("HardSigmoid", nm, []string{x}, out, floatAttr("alpha", 1.0/6), floatAttr("beta", 0.5))
	case gr.Sigmoid:
		return e.node1("Sigmoid", nm, []string{x}, out)
	case gr.SiLU:
		s := e.node1("Sigmoid", nm+"_sigmoid", []string{x}, e.tmp(n, "sigmoid"))
		return e.node1("Mul", nm, []string{x, s}, out)
	case gr.GELU:
		d := e.node1("Div", nm+"_div", []string{x, e.scalar(e.tmp(n, "sqrt2"), float32(math.Sqrt2))}, e.tmp(n, "div"))
		f := e.node1("Erf", nm+"_erf", []string{d}, e.tmp(n, "erf"))
		a1 := e.node1("Add", nm+"_add", []string{f, e.scalar(e.tmp(n, "one"), 1)}, e.tmp(n, "add"))
		m := e.node1("Mul", nm+"_mul", []string{x, a1}, e.tmp(n, "mul"))
		return e.node1("Mul", nm, []string{m, e.scalar(e.tmp(n, "half"), 0.5)}, out)
	}
	panic("onnx: activation " + a.String())
}

func (e *gexp) node(n *gr.Node) error {
	g := e.g
	x := e.names[n.In[0]]
	xs, ys := g.Shapes[n.In[0]], g.Shapes[n.Out]
	out := n.Name
	if out == "" || e.used[out] {
		out = e.tmp(n, "out")
	}
	if e.used == nil {
		e.used = map[string]bool{}
	}
	e.used[out] = true
	var y string
	switch n.Kind {
	case gr.Conv:
		w, b := n.ConvWeights()
		wn := e.f32(n.Tensors[0].Key, n.Tensors[0].Shape, w)
		bn := e.f32(n.Name+".bias(folded)", []int{ys[0]}, b)
		c := e.node1("Conv", n.Name, []string{x, wn, bn}, e.tmp(n, "conv"),
			intsAttr("dilations", int64(n.Dilation), int64(n.Dilation)), intAttr("group", int64(n.Groups)),
			intsAttr("kernel_shape", int64(n.K), int64(n.KW)),
			intsAttr("pads", int64(n.Pad), int64(n.PadW), int64(n.Pad), int64(n.PadW)),
			intsAttr("strides", int64(n.Stride), int64(n.Stride)))
		y = e.act(n, c, n.Act, out)
	case gr.Linear:
		wt := n.Tensors[0]
		o, d := wt.Shape[0], wt.Shape[1]
		// MatMul with Wᵀ (d, o) works on any leading dimensions.
		tw := make([]float32, d*o)
		for i := 0; i < o; i++ {
			for j := 0; j < d; j++ {
				tw[j*o+i] = wt.Data[i*d+j]
			}
		}
		m := e.node1("MatMul", n.Name, []string{x, e.f32(wt.Key+"(transposed)", []int{d, o}, tw)}, e.tmp(n, "matmul"))
		if len(n.Tensors) > 1 {
			m = e.node1("Add", n.Name+"/bias", []string{m, e.f32(n.Tensors[1].Key, []int{o}, n.Tensors[1].Data)}, e.tmp(n, "bias"))
		}
		y = e.act(n, m, n.Act, out)
	case gr.Act:
		y = e.act(n, x, n.Act, out)
	case gr.Add:
		s := e.node1("Add", n.Name, []string{x, e.names[n.In[1]]}, e.tmp(n, "sum"))
		y = e.act(n, s, n.Act, out)
	case gr.Concat:
		var ins []string
		for _, v := range n.In {
			ins = append(ins, e.names[v])
		}
		y = e.node1("Concat", n.Name, ins, out, intAttr("axis", 1))
	case gr.Shuffle:
		c, h, w := int64(xs[0]), int64(xs[1]), int64(xs[2])
		gs := int64(n.Groups)
		r := e.node1("Reshape", n.Name+"/split", []string{x, e.i64(e.tmp(n, "shape"), 0, gs, c/gs, h, w)}, e.tmp(n, "r"))
		t := e.node1("Transpose", n.Name+"/swap", []string{r}, e.tmp(n, "t"), intsAttr("perm", 0, 2, 1, 3, 4))
		y = e.node1("Reshape", n.Name, []string{t, e.i64(e.tmp(n, "shape"), 0, c, h, w)}, out)
	case gr.Split:
		y = e.node1("Slice", n.Name, []string{x, e.i64(e.tmp(n, "starts"), int64(n.From)), e.i64(e.tmp(n, "ends"), int64(n.To)),
			e.i64(e.tmp(n, "axes"), 1)}, out)
	case gr.MaxPool, gr.AvgPool:
		op := "MaxPool"
		attrs := []*onnxpb.AttributeProto{intsAttr("kernel_shape", int64(n.K), int64(n.K)),
			intsAttr("pads", int64(n.Pad), int64(n.Pad), int64(n.Pad), int64(n.Pad)), intsAttr("strides", int64(n.Stride), int64(n.Stride))}
		if n.Kind == gr.AvgPool {
			op = "AveragePool"
			attrs = append(attrs, intAttr("count_include_pad", 1))
		}
		y = e.node1(op, n.Name, []string{x}, out, attrs...)
	case gr.GlobalAvgPool:
		if len(ys) == 3 { // GlobalAvgPoolMap: ONNX's (N, C, 1, 1) as it is
			y = e.node1("GlobalAveragePool", n.Name, []string{x}, out)
			break
		}
		p := e.node1("GlobalAveragePool", n.Name, []string{x}, e.tmp(n, "pool"))
		y = e.node1("Flatten", n.Name+"/flatten", []string{p}, out, intAttr("axis", 1))
	case gr.SE:
		c, hid := xs[0], n.Hidden
		p := e.node1("GlobalAveragePool", n.Name+"/pool", []string{x}, e.tmp(n, "pool"))
		r := e.node1("Conv", n.Name+"/reduce", []string{p, e.f32(n.Tensors[0].Key, []int{hid, c, 1, 1}, n.Tensors[0].Data),
			e.f32(n.Tensors[1].Key, []int{hid}, n.Tensors[1].Data)}, e.tmp(n, "reduce"))
		r = e.act(n, r, n.Act, "")
		s := e.node1("Conv", n.Name+"/expand", []string{r, e.f32(n.Tensors[2].Key, []int{c, hid, 1, 1}, n.Tensors[2].Data),
			e.f32(n.Tensors[3].Key, []int{c}, n.Tensors[3].Data)}, e.tmp(n, "expand"))
		s = e.act(n, s, n.Gate, "")
		y = e.node1("Mul", n.Name, []string{x, s}, out)
	case gr.Upsample:
		attrs := []*onnxpb.AttributeProto{strAttr("mode", "linear"), strAttr("coordinate_transformation_mode", "pytorch_half_pixel")}
		if n.Nearest {
			attrs = []*onnxpb.AttributeProto{strAttr("mode", "nearest"), strAttr("coordinate_transformation_mode", "asymmetric"),
				strAttr("nearest_mode", "floor")}
		}
		sizes := e.node1("Concat", n.Name+"/sizes", []string{
			e.node1("Slice", n.Name+"/batch", []string{e.node1("Shape", n.Name+"/shape", []string{x}, e.tmp(n, "shape")),
				e.i64(e.tmp(n, "s"), 0), e.i64(e.tmp(n, "e"), 1)}, e.tmp(n, "n")),
			e.i64(e.tmp(n, "chw"), int64(ys[0]), int64(ys[1]), int64(ys[2]))}, e.tmp(n, "sizes"), intAttr("axis", 0))
		y = e.node1("Resize", n.Name, []string{x, "", "", sizes}, out, attrs...)
	case gr.LayerNorm:
		y = e.node1("LayerNormalization", n.Name, []string{x, e.f32(n.Tensors[0].Key, n.Tensors[0].Shape, n.Tensors[0].Data),
			e.f32(n.Tensors[1].Key, n.Tensors[1].Shape, n.Tensors[1].Data)}, out, intAttr("axis", -1), floatAttr("epsilon", float32(n.Eps)))
	case gr.Attention:
		gN, t, d := int64(xs[0]), int64(xs[1]), int64(xs[2]/3)
		h := int64(n.Heads)
		hd := d / h
		// (N, G, T, 3, H, hd) → (3, N, G, H, T, hd)
		r := e.node1("Reshape", n.Name+"/heads", []string{x, e.i64(e.tmp(n, "shape"), 0, gN, t, 3, h, hd)}, e.tmp(n, "r"))
		tr := e.node1("Transpose", n.Name+"/perm", []string{r}, e.tmp(n, "t"), intsAttr("perm", 3, 0, 1, 4, 2, 5))
		part := func(i int64) string {
			return e.node1("Squeeze", fmt.Sprintf("%s/part%d", n.Name, i), []string{
				e.node1("Slice", fmt.Sprintf("%s/slice%d", n.Name, i), []string{tr, e.i64(e.tmp(n, "s"), i), e.i64(e.tmp(n, "e"), i+1), e.i64(e.tmp(n, "a"), 0)}, e.tmp(n, "sl")),
				e.i64(e.tmp(n, "axes"), 0)}, e.tmp(n, "part"))
		}
		q, k, v := part(0), part(1), part(2)
		kt := e.node1("Transpose", n.Name+"/kT", []string{k}, e.tmp(n, "kT"), intsAttr("perm", 0, 1, 2, 4, 3))
		s := e.node1("MatMul", n.Name+"/qk", []string{q, kt}, e.tmp(n, "qk"))
		s = e.node1("Mul", n.Name+"/scale", []string{s, e.scalar(e.tmp(n, "scale"), float32(1/math.Sqrt(float64(hd))))}, e.tmp(n, "scaled"))
		s = e.node1("Softmax", n.Name+"/softmax", []string{s}, e.tmp(n, "softmax"), intAttr("axis", -1))
		o := e.node1("MatMul", n.Name+"/av", []string{s, v}, e.tmp(n, "av"))                                   // (N, G, H, T, hd)
		o = e.node1("Transpose", n.Name+"/merge", []string{o}, e.tmp(n, "m"), intsAttr("perm", 0, 1, 3, 2, 4)) // (N, G, T, H, hd)
		y = e.node1("Reshape", n.Name, []string{o, e.i64(e.tmp(n, "shape"), 0, gN, t, d)}, out)
	case gr.Unfold:
		c, h, w, p := int64(xs[0]), int64(xs[1]), int64(xs[2]), int64(n.Patch)
		r := e.node1("Reshape", n.Name+"/split", []string{x, e.i64(e.tmp(n, "shape"), 0, c, h/p, p, w/p, p)}, e.tmp(n, "r"))
		t := e.node1("Transpose", n.Name+"/perm", []string{r}, e.tmp(n, "t"), intsAttr("perm", 0, 3, 5, 2, 4, 1))
		y = e.node1("Reshape", n.Name, []string{t, e.i64(e.tmp(n, "shape"), 0, p*p, h*w/(p*p), c)}, out)
	case gr.Fold:
		c, h, w, p := int64(ys[0]), int64(ys[1]), int64(ys[2]), int64(n.Patch)
		r := e.node1("Reshape", n.Name+"/split", []string{x, e.i64(e.tmp(n, "shape"), 0, p, p, h/p, w/p, c)}, e.tmp(n, "r"))
		t := e.node1("Transpose", n.Name+"/perm", []string{r}, e.tmp(n, "t"), intsAttr("perm", 0, 5, 3, 1, 4, 2))
		y = e.node1("Reshape", n.Name, []string{t, e.i64(e.tmp(n, "shape"), 0, c, h, w)}, out)
	case gr.DyReLU, gr.DyShiftMax:
		y = e.dynamic(n, x, xs, out)
	default:
		return fmt.Errorf("onnx: %s (%s) has no ONNX form yet", n.Name, n.Kind)
	}
	e.names[n.Out] = y
	return nil
}

func strAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// dynamic writes DyReLU or DyShiftMax (see graph's reference for the
// coefficient layout): θ from GlobalAveragePool → Gemm → Relu → Gemm, then
// 2σ(θ)−1 (2·hardsigmoid(θ)−1 for shift-max), sliced into per-channel (or
// shared) coefficients of shape (N, C, 1, 1) or (N, 1, 1, 1).
func (e *gexp) dynamic(n *gr.Node, x string, xs []int, out string) string {
	c := int64(xs[0])
	t := func(i int) string { return e.f32(n.Tensors[i].Key, n.Tensors[i].Shape, n.Tensors[i].Data) }
	p := e.node1("GlobalAveragePool", n.Name+"/pool", []string{x}, e.tmp(n, "pool"))
	p = e.node1("Flatten", n.Name+"/flatten", []string{p}, e.tmp(n, "flat"), intAttr("axis", 1))
	h := e.node1("Gemm", n.Name+"/fc1", []string{p, t(0), t(1)}, e.tmp(n, "fc1"), intAttr("transB", 1))
	h = e.node1("Relu", n.Name+"/relu", []string{h}, e.tmp(n, "hid"))
	th := e.node1("Gemm", n.Name+"/fc2", []string{h, t(2), t(3)}, e.tmp(n, "fc2"), intAttr("transB", 1))
	if n.Kind == gr.DyShiftMax {
		th = e.node1("HardSigmoid", n.Name+"/gate", []string{th}, e.tmp(n, "gate"), floatAttr("alpha", 1.0/6), floatAttr("beta", 0.5))
	} else {
		th = e.node1("Sigmoid", n.Name+"/gate", []string{th}, e.tmp(n, "gate"))
	}
	th = e.node1("Mul", n.Name+"/x2", []string{th, e.scalar(e.tmp(n, "two"), 2)}, e.tmp(n, "x2"))
	th = e.node1("Sub", n.Name+"/minus1", []string{th, e.scalar(e.tmp(n, "one"), 1)}, e.tmp(n, "theta"))
	// coef returns θ[:, lo:hi]·scale + offset reshaped to shape.
	coef := func(src string, axis, lo, hi int64, scale, offset float32, shape ...int64) string {
		v := e.node1("Slice", e.tmp(n, "slice"), []string{src, e.i64(e.tmp(n, "s"), lo), e.i64(e.tmp(n, "e"), hi), e.i64(e.tmp(n, "a"), axis)}, e.tmp(n, "sl"))
		if scale != 1 {
			v = e.node1("Mul", e.tmp(n, "scale"), []string{v, e.scalar(e.tmp(n, "k"), scale)}, e.tmp(n, "scaled"))
		}
		if offset != 0 {
			v = e.node1("Add", e.tmp(n, "offset"), []string{v, e.scalar(e.tmp(n, "o"), offset)}, e.tmp(n, "offs"))
		}
		return e.node1("Reshape", e.tmp(n, "reshape"), []string{v, e.i64(e.tmp(n, "shape"), shape...)}, e.tmp(n, "coef"))
	}
	affine := func(in, a, b string) string {
		v := e.node1("Mul", e.tmp(n, "ax"), []string{in, a}, e.tmp(n, "ax"))
		if b == "" {
			return v
		}
		return e.node1("Add", e.tmp(n, "axb"), []string{v, b}, e.tmp(n, "axb"))
	}
	if n.Kind == gr.DyReLU {
		var a0, a1, b0, b1 string
		if n.PerChannel { // θ (N, C, 4): a0 a1 b0 b1 per channel
			tc := e.node1("Reshape", n.Name+"/perchannel", []string{th, e.i64(e.tmp(n, "shape"), 0, c, 4)}, e.tmp(n, "tc"))
			a0, a1 = coef(tc, 2, 0, 1, 1, 1, -1, c, 1, 1), coef(tc, 2, 1, 2, 1, 0, -1, c, 1, 1)
			b0, b1 = coef(tc, 2, 2, 3, 0.5, 0, -1, c, 1, 1), coef(tc, 2, 3, 4, 0.5, 0, -1, c, 1, 1)
		} else {
			a0, a1 = coef(th, 1, 0, 1, 1, 1, -1, 1, 1, 1), coef(th, 1, 1, 2, 1, 0, -1, 1, 1, 1)
			b0, b1 = coef(th, 1, 2, 3, 0.5, 0, -1, 1, 1, 1), coef(th, 1, 3, 4, 0.5, 0, -1, 1, 1, 1)
		}
		return e.node1("Max", n.Name, []string{affine(x, a0, b0), affine(x, a1, b1)}, out)
	}
	// DyShiftMax: x rolled by C/G channels, a_{k,j} = θ[:, (2k+j)·C : (2k+j+1)·C].
	step := c / int64(n.Groups)
	xr := e.node1("Concat", n.Name+"/roll", []string{
		e.node1("Slice", n.Name+"/tail", []string{x, e.i64(e.tmp(n, "s"), step), e.i64(e.tmp(n, "e"), c), e.i64(e.tmp(n, "a"), 1)}, e.tmp(n, "tail")),
		e.node1("Slice", n.Name+"/head", []string{x, e.i64(e.tmp(n, "s"), 0), e.i64(e.tmp(n, "e"), step), e.i64(e.tmp(n, "a"), 1)}, e.tmp(n, "head")),
	}, e.tmp(n, "rolled"), intAttr("axis", 1))
	var sums [2]string
	for k := int64(0); k < 2; k++ {
		var off float32
		if k == 0 {
			off = 1
		}
		a0 := coef(th, 1, (2*k)*c, (2*k+1)*c, 1, off, -1, c, 1, 1)
		a1 := coef(th, 1, (2*k+1)*c, (2*k+2)*c, 1, 0, -1, c, 1, 1)
		sums[k] = e.node1("Add", e.tmp(n, "sum"), []string{affine(x, a0, ""), affine(xr, a1, "")}, e.tmp(n, "sum"))
	}
	return e.node1("Max", n.Name, sums[:], out)
}
