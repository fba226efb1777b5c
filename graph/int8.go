package graph

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
	"github.com/mobileone-go/mobileone/tensor"
)

// QParam is a per-tensor affine uint8 quantisation: real = (q − Zero)·Scale.
type QParam struct {
	Scale float32 `json:"scale"`
	Zero  int32   `json:"zero"`
}

// Quantize maps x to uint8 as ONNX QuantizeLinear does:
// saturate(roundHalfEven(x / Scale) + Zero) to [0, 255].
//
// The rounding: f = x/Scale in float32 is first limited to [−256, 256]
// (which changes no result: Zero is in [0, 255], so beyond ±256 the
// output saturates either way), then rounded half to even by adding the
// float32 magic number 1.5·2²³ (exact for |f| ≤ 2²²; see
// kernel.requantFast). NaN gives Zero.
func (q QParam) Quantize(x float32) uint8 {
	f := x / q.Scale
	if f != f {
		return uint8(q.Zero)
	}
	f = min(max(f, -256), 256)
	r := int32(math.Float32bits(f+12582912)) - 0x4B400000 + q.Zero
	return uint8(min(max(r, 0), 255))
}

// Dequantize is (q − Zero)·Scale.
func (q QParam) Dequantize(v uint8) float32 { return float32(int32(v)-q.Zero) * q.Scale }

func (q QParam) valid() bool {
	return q.Scale > 0 && !math.IsInf(float64(q.Scale), 0) && q.Zero >= 0 && q.Zero <= 255
}

// Int8Conv is a convolution's int8 parameters: per-output-channel
// symmetric int8 weights and int32 biases in the accumulator's scale.
type Int8Conv struct {
	W      []int8    // (Cout, Cin/Groups, K, KW); real weight = W·WScale[o]
	WScale []float32 // (Cout)
	Bias   []int32   // (Cout); real bias = Bias·(input scale)·WScale[o]
}

// Int8Spec says how a graph runs in int8: which convolutions are
// quantised, the uint8 quantisation of the values between them, and the
// float weights of the nodes kept in float.
type Int8Spec struct {
	// Act is the quantisation of each node's output value, by node name
	// ("input" for the graph's input). Required for the input of every
	// int8 convolution and for its output.
	Act map[string]QParam
	// Conv holds the convolutions that run in int8, by node name.
	Conv map[string]*Int8Conv
	// Float holds the float weights of nodes kept in float, by node name,
	// in the node's tensor order with any BatchNorm already folded: a
	// convolution's (weight, bias), a linear layer's (weight, bias), SE's
	// (reduce weight, reduce bias, expand weight, expand bias).
	Float map[string][][]float32
}

// Int8Plan runs a graph with int8 convolutions (kernel.QConvOp, exact
// integer arithmetic, see ref.QConv) and, in float, the nodes the spec
// keeps in float (the classifier, global pooling, SE, and optionally the
// first layer). Quantised values are uint8 in the channels-last layout
// (H, W, C); float values are (C, H, W). The planner inserts a
// quantisation where a float value feeds an int8 convolution and a
// dequantisation where a quantised value feeds a float node. Nodes
// supported: Conv (any kernel, stride, padding, dilation, groups), Act
// (ReLU on quantised values, any on float), GlobalAvgPool, Linear, SE (on
// the uint8 values when a ReLU follows it, see qse; else in float). Run
// allocates nothing except in an SE run in float, on the reference
// executor.
type Int8Plan struct {
	N       int
	g       *Graph
	steps   []q8step
	workers []*q8worker
	nbuf    int
	out     []float32
	outPer  int
	outBuf  int
	inShape []int
	threads int

	// Prebuilt parallel bodies and their arguments, so Run allocates nothing.
	lane     func(w int)
	laneX    []float32
	lanes    int
	band     func(t int)
	bandStep *q8step
	bandIn   []uint8
	bandOut  []uint8
	bandN    int
}

// q8value is a value's storage in the plan.
type q8value struct {
	buf   int // index into a worker's buffers
	quant bool
	q     QParam
	shape []int // graph shape (C, H, W) or (D)
}

type q8step struct {
	name string
	kind string // "quantize", "dequantize", "qconv", "fconv", "relu", "qgap", "fgap", "linear", "se", "qse", "fact"
	in   q8value
	out  q8value
	op   *kernel.QConvOp
	node *Node // a float node with its weights bound
	lo   uint8
	macs int64 // a convolution's multiply-accumulates
}

type q8worker struct {
	f  [][]float32
	q  [][]uint8
	sc *kernel.QScratch
	se *qseScratch
}

// qseScratch holds a uint8 SE step's per-channel work.
type qseScratch struct {
	sums            []int64
	mean, hid, gate []float64
	mult            []float32
}

// NewInt8Plan lowers g onto int8 kernels per spec for batches of n
// images. It checks every parameter's length against the graph's shapes.
func NewInt8Plan(g *Graph, spec *Int8Spec, n int) (*Int8Plan, error) {
	if n < 1 {
		return nil, fmt.Errorf("int8 plan: batch %d", n)
	}
	p := &Int8Plan{N: n, g: g, inShape: g.InputShape(), threads: max(1, kernel.Threads())}
	vals := make([]q8value, len(g.Shapes))
	var fsizes, qsizes []int
	newBuf := func(quant bool, shape []int, q QParam) q8value {
		v := q8value{quant: quant, q: q, shape: shape}
		if quant {
			v.buf = len(qsizes)
			qsizes = append(qsizes, tensor.NumelOf(shape))
		} else {
			v.buf = len(fsizes)
			fsizes = append(fsizes, tensor.NumelOf(shape))
		}
		return v
	}
	act := func(name string) (QParam, error) {
		q, ok := spec.Act[name]
		if !ok {
			return q, fmt.Errorf("int8 plan: no quantisation for the output of %s", name)
		}
		if !q.valid() {
			return q, fmt.Errorf("int8 plan: quantisation of %s's output (scale %v, zero point %d) is not valid", name, q.Scale, q.Zero)
		}
		return q, nil
	}
	producer := make([]string, len(g.Shapes))
	for _, nd := range g.Nodes {
		producer[nd.Out] = nd.Name
	}
	// asQuant returns v quantised with the given parameters, adding a step if needed.
	asQuant := func(v Value, q QParam) q8value {
		cur := vals[v]
		if cur.quant && cur.q == q {
			return cur
		}
		src := cur
		if cur.quant { // requantise through float (not needed by the graphs we build)
			src = newBuf(false, cur.shape, QParam{})
			p.steps = append(p.steps, q8step{name: producer[v], kind: "dequantize", in: cur, out: src})
		}
		out := newBuf(true, cur.shape, q)
		p.steps = append(p.steps, q8step{name: producer[v], kind: "quantize", in: src, out: out})
		vals[v] = out
		return out
	}
	asFloat := func(v Value) q8value {
		cur := vals[v]
		if !cur.quant {
			return cur
		}
		out := newBuf(false, cur.shape, QParam{})
		p.steps = append(p.steps, q8step{name: producer[v], kind: "dequantize", in: cur, out: out})
		vals[v] = out
		return out
	}
	floats := func(nd *Node, want ...int) ([][]float32, error) {
		fw, ok := spec.Float[nd.Name]
		if !ok {
			return nil, fmt.Errorf("int8 plan: %s (%s) is neither int8 nor given float weights", nd.Name, nd.Kind)
		}
		if len(fw) != len(want) {
			return nil, fmt.Errorf("int8 plan: %s has %d float tensors, want %d", nd.Name, len(fw), len(want))
		}
		for i, w := range want {
			if len(fw[i]) != w {
				return nil, fmt.Errorf("int8 plan: %s float tensor %d has %d values, want %d", nd.Name, i, len(fw[i]), w)
			}
		}
		return fw, nil
	}
	maxC := 1
	readers := make([]int, len(g.Shapes))
	for _, nd := range g.Nodes {
		for _, v := range nd.In {
			readers[v]++
		}
	}
	readers[g.Output]++
	for _, v := range g.Outs {
		readers[v]++
	}
	skip := map[*Node]bool{} // ReLU nodes a uint8 SE step applies
	seC, seHidden := 0, 0
	for i, nd := range g.Nodes {
		if skip[nd] {
			continue
		}
		ys := g.Shapes[nd.Out]
		switch nd.Kind {
		case Input:
			vals[nd.Out] = newBuf(false, ys, QParam{})
			continue
		case Conv:
			xs := g.Shapes[nd.In[0]]
			cin, cout := xs[0], ys[0]
			maxC = max(maxC, cin+1, cout)
			wn := cout * (cin / nd.Groups) * nd.K * nd.KW
			if qc, ok := spec.Conv[nd.Name]; ok {
				in, err := act(producer[nd.In[0]])
				if err != nil {
					return nil, err
				}
				out, err := act(nd.Name)
				if err != nil {
					return nil, err
				}
				if len(qc.W) != wn || len(qc.WScale) != cout || len(qc.Bias) != cout {
					return nil, fmt.Errorf("int8 plan: %s has %d weights, %d weight scales, %d biases; want %d, %d, %d",
						nd.Name, len(qc.W), len(qc.WScale), len(qc.Bias), wn, cout, cout)
				}
				mult := make([]float32, cout)
				for o, s := range qc.WScale {
					if !(s > 0) || math.IsInf(float64(s), 0) {
						return nil, fmt.Errorf("int8 plan: %s weight scale %d is %v", nd.Name, o, s)
					}
					mult[o] = float32(float64(in.Scale) * float64(s) / float64(out.Scale))
				}
				lo := int32(0)
				switch nd.Act {
				case ReLU:
					lo = out.Zero
				case None:
				default:
					return nil, fmt.Errorf("int8 plan: %s: activation %s cannot run in int8", nd.Name, nd.Act)
				}
				sh := kernel.QConvShape{H: xs[1], W: xs[2], Cin: cin, Cout: cout, K: nd.K, KW: nd.KW, Stride: nd.Stride,
					Pad: nd.Pad, PadW: nd.PadW, Dilation: nd.Dilation, Groups: nd.Groups, OutH: ys[1], OutW: ys[2],
					XZero: in.Zero, YZero: out.Zero, Lo: lo, Hi: 255}
				op, err := kernel.NewQConvOp(sh, qc.W, qc.Bias, mult)
				if err != nil {
					return nil, fmt.Errorf("int8 plan: %s: %w", nd.Name, err)
				}
				maxC = max(maxC, op.ScratchC()+1)
				x := asQuant(nd.In[0], in)
				o := newBuf(true, ys, out)
				p.steps = append(p.steps, q8step{name: nd.Name, kind: "qconv", in: x, out: o, op: op, macs: g.NodeMACs(nd)})
				vals[nd.Out] = o
				continue
			}
			fw, err := floats(nd, wn, cout)
			if err != nil {
				return nil, err
			}
			fn := &Node{Kind: Conv, Name: nd.Name, Act: nd.Act, K: nd.K, KW: nd.KW, Stride: nd.Stride, Pad: nd.Pad, PadW: nd.PadW,
				Dilation: nd.Dilation, Groups: nd.Groups, w: fw[0], b: fw[1]}
			x := asFloat(nd.In[0])
			o := newBuf(false, ys, QParam{})
			p.steps = append(p.steps, q8step{name: nd.Name, kind: "fconv", in: x, out: o, node: fn})
			vals[nd.Out] = o
		case Act:
			if cur := vals[nd.In[0]]; cur.quant && nd.Act == ReLU {
				o := newBuf(true, ys, cur.q)
				p.steps = append(p.steps, q8step{name: nd.Name, kind: "relu", in: cur, out: o, lo: uint8(cur.q.Zero)})
				vals[nd.Out] = o
				continue
			}
			x := asFloat(nd.In[0])
			o := newBuf(false, ys, QParam{})
			p.steps = append(p.steps, q8step{name: nd.Name, kind: "fact", in: x, out: o, node: &Node{Kind: Act, Act: nd.Act}})
			vals[nd.Out] = o
		case GlobalAvgPool:
			x := vals[nd.In[0]]
			kind := "qgap"
			if !x.quant {
				kind = "fgap"
			}
			o := newBuf(false, ys, QParam{})
			p.steps = append(p.steps, q8step{name: nd.Name, kind: kind, in: x, out: o})
			vals[nd.Out] = o
		case Linear:
			xs := g.Shapes[nd.In[0]]
			d, od := xs[len(xs)-1], ys[len(ys)-1]
			want := []int{od * d}
			if len(nd.Tensors) > 1 {
				want = append(want, od)
			}
			fw, err := floats(nd, want...)
			if err != nil {
				return nil, err
			}
			fn := &Node{Kind: Linear, Name: nd.Name, Act: nd.Act, w: fw[0]}
			if len(fw) > 1 {
				fn.b = fw[1]
			}
			x := asFloat(nd.In[0])
			o := newBuf(false, ys, QParam{})
			p.steps = append(p.steps, q8step{name: nd.Name, kind: "linear", in: x, out: o, node: fn})
			vals[nd.Out] = o
		case SE:
			// An SE on a uint8 value whose only reader is the next node, a
			// ReLU, runs on the uint8 values (qse): the channel means from
			// exact integer sums, the gate in float64, and one per-channel
			// requantisation into the ReLU's quantisation, clamped at its
			// zero point. Otherwise it runs in float (se).
			var relu *Node
			if i+1 < len(g.Nodes) && vals[nd.In[0]].quant && readers[nd.Out] == 1 && len(g.Shapes[nd.In[0]]) == 3 {
				if r := g.Nodes[i+1]; r.Kind == Act && r.Act == ReLU && r.In[0] == nd.Out {
					if _, ok := spec.Act[r.Name]; ok {
						relu = r
					}
				}
			}
			want := make([]int, len(nd.Tensors))
			for i, t := range nd.Tensors {
				want[i] = tensor.NumelOf(t.Shape)
			}
			fw, err := floats(nd, want...)
			if err != nil {
				return nil, err
			}
			fn := &Node{Kind: SE, Name: nd.Name, Act: nd.Act, Gate: nd.Gate, Hidden: nd.Hidden, Tensors: make([]Tensor, len(fw))}
			for i := range fw {
				fn.Tensors[i] = Tensor{Data: fw[i]}
			}
			if relu != nil {
				qy, err := act(relu.Name)
				if err != nil {
					return nil, err
				}
				x := vals[nd.In[0]]
				o := newBuf(true, ys, qy)
				p.steps = append(p.steps, q8step{name: nd.Name, kind: "qse", in: x, out: o, node: fn, lo: uint8(qy.Zero)})
				vals[nd.Out], vals[relu.Out] = o, o
				skip[relu] = true
				seC, seHidden = max(seC, ys[0]), max(seHidden, nd.Hidden)
				continue
			}
			x := asFloat(nd.In[0])
			o := newBuf(false, ys, QParam{})
			p.steps = append(p.steps, q8step{name: nd.Name, kind: "se", in: x, out: o, node: fn})
			vals[nd.Out] = o
		default:
			return nil, fmt.Errorf("int8 plan: %s: %s has no int8 or float lowering in the int8 planner", nd.Name, nd.Kind)
		}
	}
	out := asFloat(g.Output)
	p.outBuf = out.buf
	p.outPer = tensor.NumelOf(g.OutputShape())
	p.out = make([]float32, n*p.outPer)
	for range p.threads {
		w := &q8worker{sc: kernel.NewQScratch(maxC), se: &qseScratch{sums: make([]int64, seC), mean: make([]float64, seC),
			hid: make([]float64, seHidden), gate: make([]float64, seC), mult: make([]float32, seC)}}
		for _, s := range fsizes {
			w.f = append(w.f, make([]float32, s))
		}
		for _, s := range qsizes {
			w.q = append(w.q, make([]uint8, s))
		}
		p.workers = append(p.workers, w)
	}
	per := tensor.NumelOf(p.inShape)
	p.lane = func(w int) {
		for i := w; i < p.N; i += p.lanes {
			p.runImage(p.workers[w], p.laneX[i*per:(i+1)*per], p.out[i*p.outPer:(i+1)*p.outPer], 1)
		}
	}
	p.band = func(t int) {
		oh := p.bandStep.op.S.OutH
		p.bandStep.op.Run(p.bandIn, p.bandOut, t*oh/p.bandN, (t+1)*oh/p.bandN, p.workers[t].sc)
	}
	return p, nil
}

// Steps describes the plan, one line per step: kind and node.
func (p *Int8Plan) Steps() []string {
	var out []string
	for _, s := range p.steps {
		d := s.kind + " " + s.name
		if s.op != nil {
			d += " (" + s.op.Kind + ")"
		}
		out = append(out, d)
	}
	return out
}

// Outputs is the number of values Run returns per image.
func (p *Int8Plan) Outputs() int { return p.outPer }

// Run computes the outputs (N, output...) of x: (N, C, H, W) flattened.
// The returned slice belongs to the plan. With several images and
// threads, images run in parallel, one per thread; one image spreads each
// convolution's rows over the threads.
func (p *Int8Plan) Run(x []float32) ([]float32, error) {
	per := tensor.NumelOf(p.inShape)
	if len(x) != p.N*per {
		return nil, fmt.Errorf("int8 plan: input has %d values, want %d", len(x), p.N*per)
	}
	if p.N == 1 || p.threads == 1 {
		for i := range p.N {
			p.runImage(p.workers[0], x[i*per:(i+1)*per], p.out[i*p.outPer:(i+1)*p.outPer], p.threads)
		}
		return p.out, nil
	}
	p.lanes, p.laneX = min(p.threads, p.N), x
	kernel.Parallel(p.lanes, p.lanes, p.lane)
	p.laneX = nil
	return p.out, nil
}

func (p *Int8Plan) runImage(w *q8worker, x, y []float32, threads int) {
	copy(w.f[0], x) // the input is value 0's float buffer
	for i := range p.steps {
		s := &p.steps[i]
		switch s.kind {
		case "quantize":
			quantizeHWC(w.f[s.in.buf], s.in.shape, s.out.q, w.q[s.out.buf])
		case "dequantize":
			dequantizeHWC(w.q[s.in.buf], s.in.shape, s.in.q, w.f[s.out.buf])
		case "qconv":
			in, out := w.q[s.in.buf], w.q[s.out.buf]
			oh := s.op.S.OutH
			if threads == 1 || oh < 2 || s.macs < 1<<20 { // small layers: the hand-off costs more than it saves
				s.op.Run(in, out, 0, oh, w.sc)
				continue
			}
			p.bandStep, p.bandIn, p.bandOut, p.bandN = s, in, out, min(threads, oh)
			kernel.Parallel(p.bandN, p.bandN, p.band)
		case "fconv":
			refConv(s.node, w.f[s.in.buf], s.in.shape, w.f[s.out.buf], s.out.shape)
			actInPlace(w.f[s.out.buf], s.node.Act)
		case "relu":
			in, out := w.q[s.in.buf], w.q[s.out.buf]
			for j, v := range in {
				out[j] = max(v, s.lo)
			}
		case "fact":
			copy(w.f[s.out.buf], w.f[s.in.buf])
			actInPlace(w.f[s.out.buf], s.node.Act)
		case "qgap":
			qgap(w.q[s.in.buf], s.in.shape, s.in.q, w.f[s.out.buf])
		case "fgap":
			in, out := w.f[s.in.buf], w.f[s.out.buf]
			hw := s.in.shape[1] * s.in.shape[2]
			for c := range out {
				var sum float64
				for _, v := range in[c*hw : (c+1)*hw] {
					sum += float64(v)
				}
				out[c] = float32(sum / float64(hw))
			}
		case "linear":
			linear(s.node, w.f[s.in.buf], s.in.shape, w.f[s.out.buf], s.out.shape)
		case "se":
			refSE(s.node, w.f[s.in.buf], s.in.shape, w.f[s.out.buf])
		case "qse":
			qse(s, w.q[s.in.buf], w.q[s.out.buf], w.se)
		}
	}
	copy(y, w.f[p.outBuf])
}

// quantizeHWC quantises x (C, H, W) into q (H, W, C).
func quantizeHWC(x []float32, shape []int, qp QParam, q []uint8) {
	c, hw := shape[0], tensor.NumelOf(shape[1:])
	for ch := range c {
		for i, v := range x[ch*hw : (ch+1)*hw] {
			q[i*c+ch] = qp.Quantize(v)
		}
	}
}

// dequantizeHWC is quantizeHWC's inverse (C, H, W) ← (H, W, C).
func dequantizeHWC(q []uint8, shape []int, qp QParam, x []float32) {
	c, hw := shape[0], tensor.NumelOf(shape[1:])
	for i := range hw {
		for ch, v := range q[i*c : (i+1)*c] {
			x[ch*hw+i] = qp.Dequantize(v)
		}
	}
}

// qgap is global average pooling of a quantised (H, W, C) map into float:
// (Σq − H·W·Zero)·Scale / (H·W), the sum exact in int64.
func qgap(q []uint8, shape []int, qp QParam, out []float32) {
	c, hw := shape[0], shape[1]*shape[2]
	for ch := range c {
		var s int64
		for i := range hw {
			s += int64(q[i*c+ch])
		}
		out[ch] = float32(float64(s-int64(hw)*int64(qp.Zero)) * float64(qp.Scale) / float64(hw))
	}
}

func linear(n *Node, x []float32, xs []int, out []float32, ys []int) {
	d, o := xs[len(xs)-1], ys[len(ys)-1]
	for r := 0; r < len(x)/d; r++ {
		xr := x[r*d : (r+1)*d]
		j := 0
		// Four outputs at once: four independent float64 sums, each in
		// the order of the one-output loop below (so the same bits), the
		// additions no longer waiting on one another.
		for ; j+4 <= o; j += 4 {
			var s0, s1, s2, s3 float64
			if n.b != nil {
				s0, s1, s2, s3 = float64(n.b[j]), float64(n.b[j+1]), float64(n.b[j+2]), float64(n.b[j+3])
			}
			w0, w1, w2, w3 := n.w[j*d:(j+1)*d], n.w[(j+1)*d:(j+2)*d], n.w[(j+2)*d:(j+3)*d], n.w[(j+3)*d:(j+4)*d]
			w0, w1, w2, w3 = w0[:len(xr)], w1[:len(xr)], w2[:len(xr)], w3[:len(xr)]
			for k, v := range xr {
				f := float64(v)
				s0 += f * float64(w0[k])
				s1 += f * float64(w1[k])
				s2 += f * float64(w2[k])
				s3 += f * float64(w3[k])
			}
			out[r*o+j], out[r*o+j+1], out[r*o+j+2], out[r*o+j+3] = float32(s0), float32(s1), float32(s2), float32(s3)
		}
		for ; j < o; j++ {
			s := 0.0
			if n.b != nil {
				s = float64(n.b[j])
			}
			for k, v := range x[r*d : (r+1)*d] {
				s += float64(v) * float64(n.w[j*d+k])
			}
			out[r*o+j] = float32(s)
		}
	}
	actInPlace(out, n.Act)
}

// DequantizedValue returns node name's output value of the last image the
// first worker ran (the last image of an N=1 plan), in float (C, H, W),
// or nil if the plan holds no such value. For reports (SQNR); allocates.
func (p *Int8Plan) DequantizedValue(name string) []float32 {
	w := p.workers[0]
	for i := len(p.steps) - 1; i >= 0; i-- {
		s := &p.steps[i]
		if s.name != name || s.kind == "dequantize" || s.kind == "quantize" {
			continue
		}
		out := make([]float32, tensor.NumelOf(s.out.shape))
		if s.out.quant {
			dequantizeHWC(w.q[s.out.buf], s.out.shape, s.out.q, out)
		} else {
			copy(out, w.f[s.out.buf])
		}
		return out
	}
	return nil
}

// QuantizedValue returns a copy of node name's quantised output (H, W, C)
// of the last image the first worker ran, or nil.
func (p *Int8Plan) QuantizedValue(name string) ([]uint8, QParam) {
	for i := len(p.steps) - 1; i >= 0; i-- {
		s := &p.steps[i]
		if s.name == name && s.out.quant {
			return append([]uint8(nil), p.workers[0].q[s.out.buf]...), s.out.q
		}
	}
	return nil, QParam{}
}

// qse is squeeze-excitation followed by ReLU on uint8 (H, W, C) values:
// mean[c] = s_x·(Σ_p q[p][c] − HW·z_x)/HW (the sum exact in int64), the
// gate from the means in float64 as the reference SE computes it, then
// y[p][c] = ref.Requant(q[p][c] − z_x, fl32(s_x·gate[c]/s_y), z_y, lo, 255)
// with lo = z_y (the ReLU): the real value x·gate[c], quantised once with
// the ReLU's parameters, instead of a dequantisation to float, the SE, the
// ReLU and a quantisation back.
func qse(s *q8step, x, y []uint8, sc *qseScratch) {
	c, hw := s.in.shape[0], s.in.shape[1]*s.in.shape[2]
	qx, qy := s.in.q, s.out.q
	sums := sc.sums[:c]
	clear(sums)
	for p := range hw {
		for ch, v := range x[p*c : (p+1)*c] {
			sums[ch] += int64(v)
		}
	}
	mean := sc.mean[:c]
	for ch, v := range sums {
		mean[ch] = float64(v-int64(hw)*int64(qx.Zero)) * float64(qx.Scale) / float64(hw)
	}
	gate := seGateOfMeans(s.node, mean, sc.hid[:s.node.Hidden], sc.gate[:c])
	mult := sc.mult[:c]
	for ch, g := range gate {
		mult[ch] = float32(float64(qx.Scale) * g / float64(qy.Scale))
	}
	lo, zx, zy := int32(s.lo), qx.Zero, qy.Zero
	for p := range hw {
		xr, yr := x[p*c:(p+1)*c], y[p*c:(p+1)*c]
		for ch, v := range xr {
			yr[ch] = ref.Requant(int32(v)-zx, mult[ch], zy, lo, 255)
		}
	}
}
