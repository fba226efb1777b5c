package onnx

import (
	"encoding/binary"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/mobileone-go/mobileone/format/onnx/onnxpb"
	gr "github.com/mobileone-go/mobileone/graph"
)

// QDQOpset is the opset of ExportInt8's files (per-axis DequantizeLinear
// is opset 13).
const QDQOpset = 13

// ExportInt8 writes a graph run in int8 per spec (graph.Int8Plan) as a
// standard ONNX QDQ model (IR 8, opset 13): every int8 convolution reads
// DequantizeLinear(QuantizeLinear(x)) with the input's uint8 scale and
// zero point, its int8 weights through a per-output-channel
// DequantizeLinear (axis 0, zero point 0), its int32 bias through a
// DequantizeLinear of scale input_scale·weight_scale, then its ReLU and a
// QuantizeLinear/DequantizeLinear pair with its output's scale; nodes the
// spec keeps in float (pooling, the classifier, SE, a float stem) are
// plain float operators. ONNX Runtime fuses the pattern into its own int8
// kernels (QLinearConv). g supplies the structure only.
func ExportInt8(w io.Writer, g *gr.Graph, spec *gr.Int8Spec, producerVersion string) error {
	mp, err := BuildInt8(g, spec, producerVersion)
	if err != nil {
		return err
	}
	return write(w, mp)
}

// BuildInt8 returns the model proto ExportInt8 writes.
func BuildInt8(g *gr.Graph, spec *gr.Int8Spec, producerVersion string) (*onnxpb.ModelProto, error) {
	// The int8 planner validates the spec against the graph.
	if _, err := gr.NewInt8Plan(g, spec, 1); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	e := &gexp{graph: graph{pb: &onnxpb.GraphProto{Name: proto.String(g.Name + "-int8")}}, g: g, names: make([]string, len(g.Shapes)), used: map[string]bool{}}
	in := g.InputShape()
	e.pb.Input = append(e.pb.Input, valueInfo(GraphInput, dims(in)))
	e.names[g.Nodes[0].Out] = GraphInput
	producer := map[gr.Value]string{}
	// qdq[v]: the dequantised name of value v quantised with its producer's params.
	qdq := map[gr.Value]string{}
	quantised := func(v gr.Value) string {
		if s, ok := qdq[v]; ok {
			return s
		}
		name := producer[v]
		qp := spec.Act[name]
		s, z := e.scalar(name+".output_scale", qp.Scale), e.u8(name+".output_zero_point", uint8(qp.Zero))
		q := e.graph.node("QuantizeLinear", name+"/quantize", []string{e.names[v], s, z}, name+"/q")
		d := e.graph.node("DequantizeLinear", name+"/dequantize", []string{q, s, z}, name+"/dq")
		qdq[v] = d
		return d
	}
	for _, n := range g.Nodes {
		producer[n.Out] = n.Name
		if n.Kind == gr.Input {
			continue
		}
		ys := g.Shapes[n.Out]
		convAttr := func() []*onnxpb.AttributeProto {
			return []*onnxpb.AttributeProto{intsAttr("dilations", int64(n.Dilation), int64(n.Dilation)), intAttr("group", int64(n.Groups)),
				intsAttr("kernel_shape", int64(n.K), int64(n.KW)),
				intsAttr("pads", int64(n.Pad), int64(n.PadW), int64(n.Pad), int64(n.PadW)),
				intsAttr("strides", int64(n.Stride), int64(n.Stride))}
		}
		switch {
		case n.Kind == gr.Conv && spec.Conv[n.Name] != nil:
			c := spec.Conv[n.Name]
			cout := ys[0]
			x := quantised(n.In[0])
			inQ := spec.Act[producer[n.In[0]]]
			wq := e.i8(n.Tensors[0].Key, n.Tensors[0].Shape, c.W)
			ws := e.f32(n.Name+".weight_scale", []int{cout}, c.WScale)
			wz := e.i8(n.Name+".weight_zero_point", []int{cout}, make([]int8, cout))
			wd := e.graph.node("DequantizeLinear", n.Name+"/weight", []string{wq, ws, wz}, n.Name+"/w", intAttr("axis", 0))
			bs := make([]float32, cout)
			for o, s := range c.WScale {
				bs[o] = inQ.Scale * s
			}
			bq := e.i32(n.Name+".bias", []int{cout}, c.Bias)
			bsn := e.f32(n.Name+".bias_scale", []int{cout}, bs)
			bz := e.i32(n.Name+".bias_zero_point", []int{cout}, make([]int32, cout))
			bd := e.graph.node("DequantizeLinear", n.Name+"/bias", []string{bq, bsn, bz}, n.Name+"/b", intAttr("axis", 0))
			y := e.graph.node("Conv", n.Name, []string{x, wd, bd}, n.Name+"/conv", convAttr()...)
			e.names[n.Out] = e.act(n, y, n.Act, n.Name+"/out")
		case n.Kind == gr.Conv:
			fw := spec.Float[n.Name]
			if len(fw) != 2 {
				return nil, fmt.Errorf("onnx: %s: no float weights", n.Name)
			}
			x := e.names[n.In[0]]
			if _, ok := qdq[n.In[0]]; ok {
				x = qdq[n.In[0]]
			}
			wn := e.f32(n.Tensors[0].Key, n.Tensors[0].Shape, fw[0])
			bn := e.f32(n.Name+".bias", []int{ys[0]}, fw[1])
			y := e.graph.node("Conv", n.Name, []string{x, wn, bn}, n.Name+"/conv", convAttr()...)
			e.names[n.Out] = e.act(n, y, n.Act, n.Name+"/out")
		default:
			cp := *n
			cp.Tensors = append([]gr.Tensor(nil), n.Tensors...)
			if fw, ok := spec.Float[n.Name]; ok {
				if len(fw) != len(cp.Tensors) {
					return nil, fmt.Errorf("onnx: %s: %d float tensors, want %d", n.Name, len(fw), len(cp.Tensors))
				}
				for i := range cp.Tensors {
					cp.Tensors[i].Data = fw[i]
				}
			}
			// A float node reads the dequantised value where there is one.
			saved := e.names[n.In[0]]
			if d, ok := qdq[n.In[0]]; ok {
				e.names[n.In[0]] = d
			}
			if err := e.node(&cp); err != nil {
				return nil, err
			}
			e.names[n.In[0]] = saved
		}
		// An int8 convolution's output is quantised right away (the
		// pattern ONNX Runtime fuses).
		if spec.Conv[n.Name] != nil {
			e.names[n.Out] = quantised(n.Out)
		}
	}
	e.graph.node("Identity", "output", []string{e.names[g.Output]}, GraphOutput)
	e.pb.Output = append(e.pb.Output, valueInfo(GraphOutput, dims(g.OutputShape())))
	return &onnxpb.ModelProto{
		IrVersion:       proto.Int64(IRVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(QDQOpset)}},
		ProducerName:    proto.String("mobileone-go"),
		ProducerVersion: proto.String(producerVersion),
		ModelVersion:    proto.Int64(1),
		DocString:       proto.String(fmt.Sprintf("%s, int8 QDQ: input %s (N, %v), output %s (N, %v)", g.Name, GraphInput, in, GraphOutput, g.OutputShape())),
		Graph:           e.pb,
	}, nil
}

func (e *gexp) rawInit(name string, dt onnxpb.TensorProto_DataType, shape []int, raw []byte) string {
	d := make([]int64, len(shape))
	for i, v := range shape {
		d[i] = int64(v)
	}
	e.pb.Initializer = append(e.pb.Initializer, &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: d, RawData: raw})
	return name
}

func (e *gexp) u8(name string, v uint8) string {
	return e.rawInit(name, onnxpb.TensorProto_UINT8, nil, []byte{v})
}

func (e *gexp) i8(name string, shape []int, v []int8) string {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return e.rawInit(name, onnxpb.TensorProto_INT8, shape, raw)
}

func (e *gexp) i32(name string, shape []int, v []int32) string {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
	}
	return e.rawInit(name, onnxpb.TensorProto_INT32, shape, raw)
}
