// Package mobileone implements Apple's MobileOne image backbone ("An
// Improved One millisecond Mobile Backbone", Vasu et al., CVPR 2023) in pure
// Go: the S0–S4 model zoo and custom configurations, train-time
// over-parameterised blocks and their exact re-parameterisation, loading of
// the authors' and timm's checkpoints, and CPU inference.
//
// A typical use:
//
//	m, err := mobileone.Load("mobileone_s1.pth.tar", mobileone.LoadOptions{})
//	img, err := mobileone.DecodeImageFile("cat.jpg")
//	preds, err := m.Classify(img, 5)
package mobileone

import (
	"fmt"
	"image"
	"math"
	"sort"
	"sync"

	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// Config describes a MobileOne architecture; see model.Config.
type Config = model.Config

// Variant returns the configuration of a zoo variant (s0..s4).
func Variant(name string) (Config, error) { return model.Variant(name) }

// Model is a MobileOne network with the metadata needed to use it.
type Model struct {
	*model.Model
	Labels []string // class names; ImageNet's when nil and the model has 1000 classes
	Naming string   // key convention of the checkpoint it came from
	Source string   // file it was loaded from
	Format string   // FormatPyTorch or FormatSafetensors

	// Preprocess overrides the ImageNet preprocessing derived from the
	// configuration (e.g. a Fashion-MNIST model: grey 28×28, its own mean
	// and std). It is saved in and loaded from safetensors metadata.
	Preprocess *imageproc.Params

	// Assumed lists the settings the checkpoint did not store (set by Load).
	Assumed Assumed

	// Precision is the arithmetic of Forward's plans: "" or "float32", or
	// "bf16" (bfloat16 operands, float32 sums; see model.BFloat16). Set it
	// before the first Forward.
	Precision string

	plan *planCache
}

// planCache keeps the inference plan of the last input shape.
type planCache struct {
	mu   sync.Mutex
	plan *model.Plan
}

// Forward maps x: (N, C, H, W) to logits (N, classes) (or pooled features
// for a model without classifier). A fused model runs through a Plan that is
// made on first use for each input shape and reused (packed weights,
// preallocated buffers); Forward is safe for concurrent use, but calls are
// serialised. The plan copies the weights when it is made: after changing a
// fused model's weights in place, use a new Model (FromModel). An unfused
// model runs its branches layer by layer.
func (m *Model) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	if !m.IsFused() || m.plan == nil {
		return m.Model.Forward(x)
	}
	if len(x.Shape) != 4 || x.Shape[1] != m.Config.InChannels || len(x.Data) != x.Numel() {
		return m.Model.Forward(x) // reports the shape error
	}
	n, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	m.plan.mu.Lock()
	defer m.plan.mu.Unlock()
	precision, err := model.ParsePrecision(m.Precision)
	if err != nil {
		return nil, err
	}
	p := m.plan.plan
	if p == nil || p.N != n || p.H != h || p.W != w || p.Precision != precision {
		if p, err = model.NewPlanWith(m.Model, n, h, w, model.PlanOptions{Precision: m.Precision}); err != nil {
			return nil, err
		}
		m.plan.plan = p
	}
	y, err := p.Run(x.Data)
	if err != nil {
		return nil, err
	}
	return tensor.FromData(append([]float32(nil), y...), n, p.Outputs())
}

// New builds a model of cfg with random weights (seeded) in its train-time
// form, or fused when fused is set.
func New(cfg Config, fused bool, seed uint64) (*Model, error) {
	m, err := model.New(cfg, fused)
	if err != nil {
		return nil, err
	}
	m.InitRandom(seed)
	return wrap(m), nil
}

func wrap(m *model.Model) *Model { return &Model{Model: m, plan: &planCache{}} }

// FromModel wraps a model built or trained elsewhere (package model or
// train) with its class names.
func FromModel(m *model.Model, labels []string) *Model {
	w := wrap(m)
	w.Labels = labels
	return w
}

// Fuse returns the re-parameterised (inference) form of m.
func (m *Model) Fuse() *Model {
	c := wrap(m.Model.Fuse())
	c.Labels, c.Naming, c.Source, c.Format, c.Preprocess, c.Assumed, c.Precision = m.Labels, m.Naming, m.Source, m.Format, m.Preprocess, m.Assumed, m.Precision
	return c
}

// ClassNames returns the model's class names: its own labels, ImageNet's for
// a 1000-class model, otherwise "class 0", "class 1", ….
func (m *Model) ClassNames() []string {
	if len(m.Labels) == m.Config.NumClasses && len(m.Labels) > 0 {
		return m.Labels
	}
	if m.Config.NumClasses == 1000 {
		return model.ImageNetClasses()
	}
	names := make([]string, m.Config.NumClasses)
	for i := range names {
		names[i] = fmt.Sprintf("class %d", i)
	}
	return names
}

// Preprocessing returns the image preprocessing the model expects: for
// ImageNet models, a bilinear short-side resize (256 for S0, 248 for S1–S4),
// a 224 centre crop and ImageNet's mean and std.
func (m *Model) Preprocessing() imageproc.Params {
	if m.Preprocess != nil {
		return *m.Preprocess
	}
	short := m.Config.ResizeShort
	if short == 0 {
		short = 256
	}
	p := imageproc.ImageNetParams(short)
	p.Gray = m.Config.InChannels == 1
	return p
}

// DefaultMaxPixels is the largest image DecodeImageFile accepts (50 MP).
const DefaultMaxPixels = 50_000_000

// DecodeImageFile decodes a JPEG, PNG, GIF, WebP, BMP or TIFF file,
// refusing images over DefaultMaxPixels before decoding them.
func DecodeImageFile(path string) (image.Image, error) {
	return imageproc.DecodeFile(path, DefaultMaxPixels)
}

// Prediction is one class with its softmax probability.
type Prediction struct {
	Index int     `json:"index"`
	Label string  `json:"label"`
	Prob  float64 `json:"prob"`
	Logit float32 `json:"logit"`
}

// Classify preprocesses img, runs the network and returns the top k
// classes by probability.
func (m *Model) Classify(img image.Image, k int) ([]Prediction, error) {
	x := imageproc.Preprocess(img, m.Preprocessing())
	x = &tensor.Tensor{Shape: append([]int{1}, x.Shape...), Data: x.Data}
	logits, err := m.Forward(x)
	if err != nil {
		return nil, err
	}
	return m.TopK(logits.Data, k), nil
}

// TopK turns one image's logits into the k most probable classes.
func (m *Model) TopK(logits []float32, k int) []Prediction { return TopK(logits, m.ClassNames(), k) }

// TopK turns one image's logits into the k most probable classes, labelled
// from names ("class N" past their end); ties keep the lower index first.
func TopK(logits []float32, names []string, k int) []Prediction {
	maxv := math.Inf(-1)
	for _, v := range logits {
		maxv = math.Max(maxv, float64(v))
	}
	var sum float64
	probs := make([]float64, len(logits))
	for i, v := range logits {
		probs[i] = math.Exp(float64(v) - maxv)
		sum += probs[i]
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	k = min(max(k, 0), len(idx))
	out := make([]Prediction, k)
	for i := 0; i < k; i++ {
		j := idx[i]
		label := fmt.Sprintf("class %d", j)
		if j < len(names) {
			label = names[j]
		}
		out[i] = Prediction{Index: j, Label: label, Prob: probs[j] / sum, Logit: logits[j]}
	}
	return out
}
