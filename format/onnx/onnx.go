// Package onnx writes a MobileOne model as an ONNX graph (IR version 8,
// opset 13) that ONNX Runtime and other ONNX tools run.
//
// The graph is the re-parameterised (inference) network: per block one Conv
// with bias and a Relu (blocks with Squeeze-Excite insert GlobalAveragePool →
// Conv → Relu → Conv → Sigmoid → Mul before the Relu), then GlobalAveragePool →
// Flatten → Gemm. Weights are float32 initializers (raw little-endian data)
// named after the authors' checkpoint keys ("stage0.reparam_conv.weight",
// "stage3.16.se.reduce.bias", "linear.weight"), and nodes after the authors'
// modules ("stage1.0.reparam_conv", "stage1.0.activation", "linear").
//
// The input is "input", float32 (batch, C, H, W) with a dynamic batch
// dimension (and dynamic H and W with Options.DynamicSize); the output is
// "logits" (batch, classes), or "features" (batch, C4) for a model without a
// classifier.
package onnx

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/mobileone-go/mobileone/format/onnx/onnxpb"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

const (
	// IRVersion is the ONNX IR version written.
	IRVersion = 8
	// Opset is the version of the default ("ai.onnx") operator set used.
	Opset = 13

	// InputName and OutputName name the graph's input and output (the
	// output is FeaturesName for a model without a classifier).
	InputName    = "input"
	OutputName   = "logits"
	FeaturesName = "features"

	// DefaultSize is the input height and width of a graph with static
	// spatial dimensions when Options leaves them zero.
	DefaultSize = 224
)

// Options adjusts Export.
type Options struct {
	// DynamicSize makes the input's height and width dynamic
	// ("height", "width"); by default they are fixed to Height × Width.
	DynamicSize bool
	// Height and Width of the input when DynamicSize is false; zero means
	// DefaultSize (224).
	Height, Width int
	// ProducerVersion is recorded as the model's producer_version.
	ProducerVersion string
}

// Export writes m as an ONNX model to w. A train-time model is
// re-parameterised first (m itself is unchanged).
func Export(w io.Writer, m *model.Model, opts Options) error {
	mp, err := Build(m, opts)
	if err != nil {
		return err
	}
	return write(w, mp)
}

// write marshals mp deterministically to w.
func write(w io.Writer, mp *onnxpb.ModelProto) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(mp)
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// Build returns the ONNX model proto of m, as Export writes it.
func Build(m *model.Model, opts Options) (*onnxpb.ModelProto, error) {
	if m == nil || m.Stem == nil {
		return nil, errors.New("onnx: nil model")
	}
	if !m.IsFused() {
		m = m.Fuse()
	}
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	h, wd := opts.Height, opts.Width
	if h == 0 {
		h = DefaultSize
	}
	if wd == 0 {
		wd = DefaultSize
	}
	if !opts.DynamicSize && (h < 1 || wd < 1) {
		return nil, fmt.Errorf("onnx: input size %dx%d must be positive", h, wd)
	}

	g := &graph{pb: &onnxpb.GraphProto{Name: proto.String("mobileone")}}
	if cfg.Name != "" {
		g.pb.Name = proto.String("mobileone_" + cfg.Name)
	}
	inDims := []*onnxpb.TensorShapeProto_Dimension{dimParam("batch"), dimValue(int64(cfg.InChannels))}
	if opts.DynamicSize {
		inDims = append(inDims, dimParam("height"), dimParam("width"))
	} else {
		inDims = append(inDims, dimValue(int64(h)), dimValue(int64(wd)))
	}
	g.pb.Input = append(g.pb.Input, valueInfo(InputName, inDims))

	x := InputName
	var err error
	for _, nb := range m.Blocks() {
		if x, err = g.block(nb.Name, nb.Block, x); err != nil {
			return nil, err
		}
	}
	x = g.node("GlobalAveragePool", "gap", []string{x}, "gap")
	out, width := FeaturesName, cfg.Channels[4]
	if m.Linear != nil {
		x = g.node("Flatten", "flatten", []string{x}, "flatten", intAttr("axis", 1))
		l := m.Linear
		if err := checkShape("linear.weight", l.Weight, l.Out, l.In); err != nil {
			return nil, err
		}
		if err := checkShape("linear.bias", l.Bias, l.Out); err != nil {
			return nil, err
		}
		if l.In != cfg.Channels[4] {
			return nil, fmt.Errorf("onnx: linear takes %d features, stage4 gives %d", l.In, cfg.Channels[4])
		}
		wn, bn := g.init("linear.weight", l.Weight), g.init("linear.bias", l.Bias)
		g.node("Gemm", "linear", []string{x, wn, bn}, OutputName,
			floatAttr("alpha", 1), floatAttr("beta", 1), intAttr("transA", 0), intAttr("transB", 1))
		out, width = OutputName, l.Out
	} else {
		g.node("Flatten", "flatten", []string{x}, FeaturesName, intAttr("axis", 1))
	}
	g.pb.Output = append(g.pb.Output, valueInfo(out,
		[]*onnxpb.TensorShapeProto_Dimension{dimParam("batch"), dimValue(int64(width))}))

	variant := cfg.Name
	if variant == "" {
		variant = "custom"
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	g.pb.DocString = proto.String(fmt.Sprintf("MobileOne %s, re-parameterised (inference form): %s", variant, cfg.Describe()))
	return &onnxpb.ModelProto{
		IrVersion:       proto.Int64(IRVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		ProducerName:    proto.String("mobileone-go"),
		ProducerVersion: proto.String(opts.ProducerVersion),
		ModelVersion:    proto.Int64(1),
		DocString: proto.String(fmt.Sprintf("MobileOne %s (Vasu et al., CVPR 2023), fused; input %s float32 (N, %d, H, W), output %s (N, %d)",
			variant, InputName, cfg.InChannels, out, width)),
		Graph: g.pb,
		MetadataProps: []*onnxpb.StringStringEntryProto{
			{Key: proto.String("format"), Value: proto.String("mobileone")},
			{Key: proto.String("variant"), Value: proto.String(variant)},
			{Key: proto.String("naming"), Value: proto.String("authors")},
			{Key: proto.String("fused"), Value: proto.String("true")},
			{Key: proto.String("config"), Value: proto.String(string(cfgJSON))},
		},
	}, nil
}

type graph struct {
	pb *onnxpb.GraphProto
}

// block appends a fused block reading x and returns its output's name.
func (g *graph) block(name string, b *nn.Block, x string) (string, error) {
	c := b.Fused
	if c == nil {
		return "", fmt.Errorf("onnx: block %s is not fused", name)
	}
	if err := checkConv(name+".reparam_conv", c); err != nil {
		return "", err
	}
	wn := g.init(name+".reparam_conv.weight", c.Weight)
	bn := g.init(name+".reparam_conv.bias", c.Bias)
	y := g.node("Conv", name+".reparam_conv", []string{x, wn, bn}, name+".reparam_conv", convAttrs(c)...)
	if se := b.SE; se != nil {
		p := name + ".se"
		for _, sc := range []struct {
			what string
			conv *nn.Conv2d
			in   int
			out  int
		}{{"reduce", se.Reduce, se.C, se.Hidden}, {"expand", se.Expand, se.Hidden, se.C}} {
			if sc.conv == nil || sc.conv.InC != sc.in || sc.conv.OutC != sc.out || sc.conv.K != 1 || sc.conv.Groups != 1 {
				return "", fmt.Errorf("onnx: %s.%s is not a 1x1 conv %d → %d", p, sc.what, sc.in, sc.out)
			}
			if err := checkConv(p+"."+sc.what, sc.conv); err != nil {
				return "", err
			}
		}
		if se.C != c.OutC {
			return "", fmt.Errorf("onnx: %s has %d channels, the block %d", p, se.C, c.OutC)
		}
		s := g.node("GlobalAveragePool", p+".pool", []string{y}, p+".pool")
		s = g.node("Conv", p+".reduce", []string{s, g.init(p+".reduce.weight", se.Reduce.Weight), g.init(p+".reduce.bias", se.Reduce.Bias)},
			p+".reduce", convAttrs(se.Reduce)...)
		s = g.node("Relu", p+".relu", []string{s}, p+".relu")
		s = g.node("Conv", p+".expand", []string{s, g.init(p+".expand.weight", se.Expand.Weight), g.init(p+".expand.bias", se.Expand.Bias)},
			p+".expand", convAttrs(se.Expand)...)
		s = g.node("Sigmoid", p+".sigmoid", []string{s}, p+".sigmoid")
		y = g.node("Mul", p+".scale", []string{y, s}, p)
	}
	return g.node("Relu", name+".activation", []string{y}, name), nil
}

func checkConv(name string, c *nn.Conv2d) error {
	if c.Groups < 1 || c.InC%c.Groups != 0 || c.OutC%c.Groups != 0 {
		return fmt.Errorf("onnx: %s: %d groups do not divide %d → %d channels", name, c.Groups, c.InC, c.OutC)
	}
	if c.K < 1 || c.Stride < 1 || c.Pad < 0 {
		return fmt.Errorf("onnx: %s: bad kernel %d, stride %d or padding %d", name, c.K, c.Stride, c.Pad)
	}
	if err := checkShape(name+".weight", c.Weight, c.OutC, c.InC/c.Groups, c.K, c.K); err != nil {
		return err
	}
	return checkShape(name+".bias", c.Bias, c.OutC)
}

func checkShape(name string, t *tensor.Tensor, shape ...int) error {
	if t == nil {
		return fmt.Errorf("onnx: %s is missing", name)
	}
	ok := len(t.Shape) == len(shape) && len(t.Data) == t.Numel()
	for i := 0; ok && i < len(shape); i++ {
		ok = t.Shape[i] == shape[i]
	}
	if !ok {
		return fmt.Errorf("onnx: %s has shape %s (%d values), want %s",
			name, tensor.ShapeString(t.Shape), len(t.Data), tensor.ShapeString(shape))
	}
	return nil
}

func convAttrs(c *nn.Conv2d) []*onnxpb.AttributeProto {
	k, s, p := int64(c.K), int64(c.Stride), int64(c.Pad)
	return []*onnxpb.AttributeProto{
		intsAttr("dilations", 1, 1),
		intAttr("group", int64(c.Groups)),
		intsAttr("kernel_shape", k, k),
		intsAttr("pads", p, p, p, p),
		intsAttr("strides", s, s),
	}
}

// node appends a node and returns the name of its output.
func (g *graph) node(op, name string, inputs []string, output string, attrs ...*onnxpb.AttributeProto) string {
	g.pb.Node = append(g.pb.Node, &onnxpb.NodeProto{
		OpType:    proto.String(op),
		Name:      proto.String(name),
		Input:     inputs,
		Output:    []string{output},
		Attribute: attrs,
	})
	return output
}

// init appends a float32 initializer and returns its name.
func (g *graph) init(name string, t *tensor.Tensor) string {
	raw := make([]byte, 4*len(t.Data))
	for i, v := range t.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	g.pb.Initializer = append(g.pb.Initializer, &onnxpb.TensorProto{
		Name:     proto.String(name),
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		Dims:     dims,
		RawData:  raw,
	})
	return name
}

func valueInfo(name string, dims []*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape:    &onnxpb.TensorShapeProto{Dim: dims},
		}}},
	}
}

func dimParam(s string) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: s}}
}

func dimValue(v int64) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}
