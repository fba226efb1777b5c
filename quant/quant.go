// Package quant is post-training int8 quantisation of MobileOne models
// (and of any graph the graph package's int8 planner lowers): the
// quantisation scheme, calibration of activation ranges, the int8
// checkpoint file and a per-layer error (SQNR) report. The arithmetic is
// specified in internal/kernel/ref (Requant, QConv); the graph runs on
// graph.Int8Plan.
//
// The scheme (docs/quantization.md):
//   - weights: int8, symmetric, per output channel, in [−127, 127]:
//     s_w[o] = max|W[o]|/127, q = roundHalfEven(W/s_w[o]);
//   - activations: uint8 per tensor, real = (q − z)·s; after ReLU z = 0
//     and s = threshold/255 (threshold from calibration); a value with
//     negative parts (the normalised input) gets z from its [min, max];
//   - biases: int32 in the accumulator's scale s_x·s_w[o];
//   - requantisation: float32 multiplier s_x·s_w[o]/s_y, round half to
//     even, saturation to [0, 255] (to [z, 255] with a fused ReLU);
//   - global pooling, SE and the classifier run in float.
package quant

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// Model is an int8 MobileOne: its architecture, the int8 spec of its
// fused graph and the metadata a float checkpoint carries.
type Model struct {
	Config     model.Config
	Spec       *graph.Int8Spec
	Labels     []string
	Preprocess *imageproc.Params
	// Method is the calibration method; Images the number of calibration images.
	Method string
	Images int
	// FloatFirst: the first convolution runs in float.
	FloatFirst bool
	Source     string
}

// meta is a float-model shell for the metadata helpers (class names,
// preprocessing); it has no weights.
func (m *Model) meta() *mobileone.Model {
	return &mobileone.Model{Model: &model.Model{Config: m.Config}, Labels: m.Labels, Preprocess: m.Preprocess}
}

// ClassNames are the model's class names.
func (m *Model) ClassNames() []string { return m.meta().ClassNames() }

// Preprocessing is the model's image preprocessing.
func (m *Model) Preprocessing() imageproc.Params { return m.meta().Preprocessing() }

// Graph is the model's fused graph for h×w inputs (structure only: the
// weights are in Spec).
func (m *Model) Graph(h, w int) (*graph.Graph, error) { return model.FusedGraph(m.Config, h, w) }

// NewPlan lowers the model onto the int8 kernels for batches of n h×w images.
func (m *Model) NewPlan(n, h, w int) (*graph.Int8Plan, error) {
	g, err := m.Graph(h, w)
	if err != nil {
		return nil, err
	}
	return graph.NewInt8Plan(g, m.Spec, n)
}

// Options adjusts Quantize.
type Options struct {
	// Method: Percentile (default: best measured on the built-in model), MinMax or Entropy.
	Method string
	// Percentile for the Percentile method (default 99.99).
	Percentile float64
	// FloatFirst keeps the first convolution (the stem, whose input is
	// the signed normalised image) in float.
	FloatFirst bool
	// NoConstantFold keeps the weights on input channels that were constant
	// over calibration (see foldConstants) instead of folding them into the
	// bias.
	NoConstantFold bool
	// WeightBits is 8 (default, weights in [−127, 127]) or 7 ([−63, 63]):
	// 7-bit weights are what an exact VPMADDUBSW kernel needs (2·255·64 <
	// 2¹⁵); no kernel exploits them yet: this measures their accuracy.
	WeightBits int
	// NoWeightClip quantises weights with s_w[o] = max|W[o]|/127 instead
	// of the clipped scale that minimises the output error (see
	// QuantizeConvClipped).
	NoWeightClip bool
}

// Images gives calibration images: Len of them, each (C, H, W) flattened
// and preprocessed as the model expects.
type Images interface {
	Len() int
	Image(i int) ([]float32, error)
}

// Calibration is the observed statistics of a float model's values on
// calibration images; Spec turns them into an int8 spec for any method,
// so one pass serves every method.
type Calibration struct {
	m      *mobileone.Model
	g      *graph.Graph
	h, w   int
	obs    map[string]*observer
	images Images
	// used: the float weights each int8 convolution was quantised from
	// (after constant folding), by node name, for the report.
	used map[string][]float32
}

// Calibrate runs the float model's reference executor on every image and
// records each value's range and histogram.
func Calibrate(m *mobileone.Model, imgs Images) (*Calibration, error) {
	if imgs.Len() < 1 {
		return nil, fmt.Errorf("quantize: no calibration images")
	}
	first, err := imgs.Image(0)
	if err != nil {
		return nil, err
	}
	c := m.Config.InChannels
	p := m.Preprocessing()
	h, w := p.Crop, p.Crop
	if len(first) != c*h*w {
		return nil, fmt.Errorf("quantize: calibration image has %d values, the model wants %d×%d×%d", len(first), c, h, w)
	}
	g, err := m.Graph(h, w)
	if err != nil {
		return nil, err
	}
	if err := g.Finalize(); err != nil {
		return nil, err
	}
	cal := &Calibration{m: m, g: g, h: h, w: w, obs: map[string]*observer{}, images: imgs}
	workers := min(runtime.GOMAXPROCS(0), imgs.Len())
	parts := make([]map[string]*observer, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for wk := range workers {
		parts[wk] = map[string]*observer{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := wk; i < imgs.Len(); i += workers {
				x, err := imgs.Image(i)
				if err == nil && len(x) != c*h*w {
					err = fmt.Errorf("quantize: calibration image %d has %d values, want %d", i, len(x), c*h*w)
				}
				if err != nil {
					errs[wk] = err
					return
				}
				_, vals, err := g.Ref(&tensor.Tensor{Shape: []int{1, c, h, w}, Data: x})
				if err != nil {
					errs[wk] = err
					return
				}
				for _, nd := range g.Nodes {
					if !observed(nd.Kind) {
						continue
					}
					o := parts[wk][nd.Name]
					if o == nil {
						o = newObserver()
						parts[wk][nd.Name] = o
					}
					o.add(vals[nd.Out])
					if sh := g.Shapes[nd.Out]; len(sh) == 3 {
						o.addChannels(vals[nd.Out], sh[0])
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for _, part := range parts {
		for k, o := range part {
			if cal.obs[k] == nil {
				cal.obs[k] = newObserver()
			}
			cal.obs[k].merge(o)
		}
	}
	return cal, nil
}

func observed(k graph.Kind) bool {
	return k == graph.Input || k == graph.Conv || k == graph.Act || k == graph.SE
}

// Quantize makes the int8 model for one method.
func (c *Calibration) Quantize(opts Options) (*Model, error) {
	if opts.Method == "" {
		opts.Method = Percentile
	}
	if opts.Percentile == 0 {
		opts.Percentile = 99.99
	}
	qmax := 127.0
	switch opts.WeightBits {
	case 0, 8:
	case 7:
		qmax = 63
	default:
		return nil, fmt.Errorf("quantize: weight bits %d: want 8 or 7", opts.WeightBits)
	}
	if opts.Percentile <= 0 || opts.Percentile > 100 {
		return nil, fmt.Errorf("quantize: percentile %v must be in (0, 100]", opts.Percentile)
	}
	c.used = map[string][]float32{}
	spec := &graph.Int8Spec{Act: map[string]graph.QParam{}, Conv: map[string]*graph.Int8Conv{}, Float: map[string][][]float32{}}
	for name, o := range c.obs {
		q, err := o.qparam(opts.Method, opts.Percentile)
		if err != nil {
			return nil, fmt.Errorf("quantize: %s: %w", name, err)
		}
		spec.Act[name] = q
	}
	producer := map[graph.Value]string{}
	firstConv := true
	for _, nd := range c.g.Nodes {
		producer[nd.Out] = nd.Name
		switch nd.Kind {
		case graph.Conv:
			w, b := nd.ConvWeights()
			if firstConv && opts.FloatFirst {
				spec.Float[nd.Name] = [][]float32{w, b}
				firstConv = false
				continue
			}
			firstConv = false
			in := spec.Act[producer[nd.In[0]]]
			shape := nd.Tensors[0].Shape
			if !opts.NoConstantFold {
				w, b = foldConstants(w, b, nd, c.obs[producer[nd.In[0]]])
			}
			c.used[nd.Name] = w
			if o := c.obs[producer[nd.In[0]]]; !opts.NoWeightClip && o != nil && o.sq != nil && o.sqN > 0 {
				energy := make([]float64, len(o.sq))
				for i, v := range o.sq {
					energy[i] = v / o.sqN
				}
				spec.Conv[nd.Name] = QuantizeConvClipped(w, b, shape, nd.Groups, energy, in.Scale, qmax)
			} else {
				spec.Conv[nd.Name] = QuantizeConvBits(w, b, shape[0], in.Scale, qmax)
			}
		case graph.Linear, graph.SE:
			var ts [][]float32
			for _, t := range nd.Tensors {
				ts = append(ts, t.Data)
			}
			spec.Float[nd.Name] = ts
		}
	}
	return &Model{Config: c.m.Config, Spec: spec, Labels: c.m.Labels, Preprocess: c.m.Preprocess, Method: opts.Method,
		Images: c.images.Len(), FloatFirst: opts.FloatFirst, Source: c.m.Source}, nil
}

// foldConstants moves the contribution of input channels that were
// constant over calibration into the bias of a 1×1 convolution without
// padding (exact there: every tap sees the constant): b[o] += W[o,c]·x_c,
// W[o,c] = 0. Re-parameterised MobileOnes need it: a dead channel (ReLU of
// a negative bias) makes the next depthwise channel output the constant
// ReLU(b), and the skip branch's BatchNorm, whose running variance on
// that constant is about zero, folds into a huge weight on it (|W| up to
// 205 in the built-in model against a typical 0.5). In float the huge
// term cancels against the bias; quantised, the constant's rounding
// error (up to half a step) is multiplied by it and swamps the channel.
// Other convolutions are returned unchanged (padding breaks exactness).
func foldConstants(w, b []float32, nd *graph.Node, o *observer) ([]float32, []float32) {
	if o == nil || nd.K != 1 || nd.KW != 1 || nd.Pad != 0 || nd.PadW != 0 || nd.Groups != 1 {
		return w, b
	}
	is, val := o.constants()
	cin := len(is)
	if cin == 0 || len(w)%cin != 0 {
		return w, b
	}
	w, b = append([]float32(nil), w...), append([]float32(nil), b...)
	cout := len(w) / cin
	for oc := range cout {
		acc := float64(b[oc])
		for c, k := range is {
			if k {
				acc += float64(w[oc*cin+c]) * val[c]
				w[oc*cin+c] = 0
			}
		}
		b[oc] = float32(acc)
	}
	return w, b
}

// QuantizeConvClipped quantises like QuantizeConv but chooses each output
// channel's scale s = α·max|W[o]|/127 (α on a grid in (0, 1]) that
// minimises the expected squared error of the channel's output,
// Σ_{c,tap} E[x_c²]·(W[o,c,tap] − ŵ)², with E[x_c²] the input channel's
// mean square from calibration (energy, per input channel). Re-
// parameterisation folds the skip branch's BatchNorm into one large
// diagonal weight, often on a nearly dead input channel (tiny running
// variance, large γ/σ): max-scaling then rounds the channel's other
// weights away; clipping that weight costs nothing where its input is
// (nearly) always zero.
func QuantizeConvClipped(w, b []float32, shape []int, groups int, energy []float64, inScale float32, qmax float64) *graph.Int8Conv {
	cout, cg := shape[0], shape[1]
	taps := len(w) / (cout * cg)
	og := cout / groups
	c := QuantizeConvBits(w, b, cout, inScale, qmax)
	per := cg * taps
	for o := range cout {
		ws := w[o*per : (o+1)*per]
		e := func(i int) float64 { return energy[(o/og)*cg+i/taps] }
		var m float64
		for _, v := range ws {
			m = math.Max(m, math.Abs(float64(v)))
		}
		if m == 0 {
			continue
		}
		best, bestErr := 1.0, math.Inf(1)
		for k := 100; k >= 5; k-- {
			a := float64(k) / 100
			s := float64(float32(a * m / qmax))
			var err float64
			for i, v := range ws {
				q := max(-qmax, min(qmax, math.RoundToEven(float64(v)/s)))
				d := float64(v) - q*s
				err += e(i) * d * d
			}
			if err < bestErr {
				best, bestErr = a, err
			}
		}
		s := float32(best * m / qmax)
		c.WScale[o] = s
		for i, v := range ws {
			c.W[o*per+i] = int8(max(-qmax, min(qmax, math.RoundToEven(float64(v)/float64(s)))))
		}
		c.Bias[o] = int32(max(math.MinInt32, min(math.MaxInt32, math.RoundToEven(float64(b[o])/(float64(inScale)*float64(s))))))
	}
	return c
}

// QuantizeConv quantises a convolution's folded float weights w (Cout,
// ...) per output channel (symmetric, [−127, 127], round half to even)
// and its bias b into int32 in the scale inScale·s_w[o] (saturating).
func QuantizeConv(w, b []float32, cout int, inScale float32) *graph.Int8Conv {
	return QuantizeConvBits(w, b, cout, inScale, 127)
}

// QuantizeConvBits is QuantizeConv with weights in [−qmax, qmax] (127 for
// 8 bits, 63 for 7: see Options.WeightBits).
func QuantizeConvBits(w, b []float32, cout int, inScale float32, qmax float64) *graph.Int8Conv {
	per := len(w) / cout
	c := &graph.Int8Conv{W: make([]int8, len(w)), WScale: make([]float32, cout), Bias: make([]int32, cout)}
	for o := range cout {
		var m float64
		for _, v := range w[o*per : (o+1)*per] {
			m = math.Max(m, math.Abs(float64(v)))
		}
		s := float32(m / qmax)
		if !(s > 0) {
			s = 1 // an all-zero channel
		}
		c.WScale[o] = s
		for i, v := range w[o*per : (o+1)*per] {
			c.W[o*per+i] = int8(max(-qmax, min(qmax, math.RoundToEven(float64(v)/float64(s)))))
		}
		bs := float64(inScale) * float64(s)
		c.Bias[o] = int32(max(math.MinInt32, min(math.MaxInt32, math.RoundToEven(float64(b[o])/bs))))
	}
	return c
}
