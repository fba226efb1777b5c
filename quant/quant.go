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
	// Method: MinMax (default), Percentile or Entropy.
	Method string
	// Percentile for the Percentile method (default 99.99).
	Percentile float64
	// FloatFirst keeps the first convolution (the stem, whose input is
	// the signed normalised image) in float.
	FloatFirst bool
	// ReportImages is the number of calibration images the SQNR report
	// runs (default 32; 0 uses the default, negative skips the report).
	ReportImages int
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
		opts.Method = MinMax
	}
	if opts.Percentile == 0 {
		opts.Percentile = 99.99
	}
	if opts.Percentile <= 0 || opts.Percentile > 100 {
		return nil, fmt.Errorf("quantize: percentile %v must be in (0, 100]", opts.Percentile)
	}
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
			spec.Conv[nd.Name] = QuantizeConv(w, b, nd.Tensors[0].Shape[0], in.Scale)
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

// QuantizeConv quantises a convolution's folded float weights w (Cout,
// ...) per output channel (symmetric, [−127, 127], round half to even)
// and its bias b into int32 in the scale inScale·s_w[o] (saturating).
func QuantizeConv(w, b []float32, cout int, inScale float32) *graph.Int8Conv {
	per := len(w) / cout
	c := &graph.Int8Conv{W: make([]int8, len(w)), WScale: make([]float32, cout), Bias: make([]int32, cout)}
	for o := range cout {
		var m float64
		for _, v := range w[o*per : (o+1)*per] {
			m = math.Max(m, math.Abs(float64(v)))
		}
		s := float32(m / 127)
		if !(s > 0) {
			s = 1 // an all-zero channel
		}
		c.WScale[o] = s
		for i, v := range w[o*per : (o+1)*per] {
			c.W[o*per+i] = int8(max(-127, min(127, math.RoundToEven(float64(v)/float64(s)))))
		}
		bs := float64(inScale) * float64(s)
		c.Bias[o] = int32(max(math.MinInt32, min(math.MaxInt32, math.RoundToEven(float64(b[o])/bs))))
	}
	return c
}
