package train

import (
	"fmt"
	"math"
	"sort"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// SGD is PyTorch's torch.optim.SGD (dampening 0) with weight decay applied
// only to parameters with !NoDecay. For each parameter, in float32:
//
//	d = grad + wd·w                  (wd only when !NoDecay)
//	buf = d on the first step, else momentum·buf + d
//	d = d + momentum·buf if Nesterov, else buf
//	w = w − lr·d
//
// (each line a vector kernel over a chunk; an axpy may round as one fused
// multiply-add).
type SGD struct {
	params   []Param
	lr, wd   float64
	Momentum float64
	Nesterov bool
	bufs     map[string][]float32
	chunks   []sgdSpan
}

// NewSGD returns an SGD optimiser over params.
func NewSGD(params []Param, lr, momentum, weightDecay float64, nesterov bool) *SGD {
	return &SGD{params: params, lr: lr, wd: weightDecay, Momentum: momentum, Nesterov: nesterov,
		bufs: map[string][]float32{}}
}

// SetLR sets the learning rate for the following steps.
func (o *SGD) SetLR(lr float64) { o.lr = lr }

// LR returns the learning rate.
func (o *SGD) LR() float64 { return o.lr }

// SetWeightDecay sets the weight decay (of the !NoDecay parameters).
func (o *SGD) SetWeightDecay(wd float64) { o.wd = wd }

// WeightDecay returns the weight decay.
func (o *SGD) WeightDecay() float64 { return o.wd }

// Step updates every parameter from its gradient.
func (o *SGD) Step() {
	lr, mom := float32(o.lr), float32(o.Momentum)
	bufs := make([][]float32, len(o.params))
	fresh := make([]bool, len(o.params))
	if o.Momentum != 0 {
		for i, p := range o.params {
			b, ok := o.bufs[p.Name]
			if !ok {
				b = make([]float32, len(p.W.Data))
				o.bufs[p.Name] = b
				fresh[i] = true
			}
			bufs[i] = b
		}
	}
	// Chunks of sgdChunk values of every parameter, handed out evenly;
	// each chunk goes through the vector kernels while it is in L1.
	if len(o.chunks) == 0 {
		for i, p := range o.params {
			for lo := 0; lo < len(p.W.Data); lo += sgdChunk {
				o.chunks = append(o.chunks, sgdSpan{i, lo, min(len(p.W.Data), lo+sgdChunk)})
			}
		}
	}
	parFor(len(o.chunks), len(o.chunks)*sgdChunk*4, func(lo, hi int) {
		var tmp [sgdChunk]float32
		for _, c := range o.chunks[lo:hi] {
			p := o.params[c.param]
			w, g := p.W.Data[c.lo:c.hi], p.G.Data[c.lo:c.hi]
			d := tmp[:len(w)]
			copy(d, g)
			if !p.NoDecay && o.wd != 0 {
				kernel.Axpy(float32(o.wd), w, d)
			}
			if buf := bufs[c.param]; buf != nil {
				buf = buf[c.lo:c.hi]
				if fresh[c.param] {
					copy(buf, d)
				} else {
					kernel.Scale(mom, buf, buf)
					kernel.Add(d, buf)
				}
				if o.Nesterov {
					kernel.Axpy(mom, buf, d)
				} else {
					d = buf
				}
			}
			kernel.Axpy(-lr, d, w)
		}
	})
}

// sgdChunk is the number of values of a parameter one SGD task updates.
const sgdChunk = 2048

// sgdSpan is values [lo, hi) of parameter number param.
type sgdSpan struct{ param, lo, hi int }

// State returns copies of the momentum buffers by parameter name (empty
// before the first step), for checkpoints.
func (o *SGD) State() map[string]*tensor.Tensor {
	st := map[string]*tensor.Tensor{}
	for _, p := range o.params {
		if b, ok := o.bufs[p.Name]; ok {
			st[p.Name] = &tensor.Tensor{Shape: append([]int(nil), p.W.Shape...), Data: append([]float32(nil), b...)}
		}
	}
	return st
}

// LoadState restores momentum buffers saved by State. Every key must name a
// parameter and have its shape; parameters without a buffer start fresh.
func (o *SGD) LoadState(st map[string]*tensor.Tensor) error {
	byName := map[string]Param{}
	for _, p := range o.params {
		byName[p.Name] = p
	}
	keys := make([]string, 0, len(st))
	for k := range st {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := byName[k]
		if !ok {
			return fmt.Errorf("train: optimizer state has unknown parameter %q", k)
		}
		if t := st[k]; !tensor.SameShape(t.Shape, p.W.Shape) || len(t.Data) != len(p.W.Data) {
			return fmt.Errorf("train: optimizer state %q has shape %s, parameter has %s", k,
				tensor.ShapeString(t.Shape), tensor.ShapeString(p.W.Shape))
		}
	}
	o.bufs = map[string][]float32{}
	for _, k := range keys {
		o.bufs[k] = append([]float32(nil), st[k].Data...)
	}
	return nil
}

// DefaultEMADecay is the paper's EMA decay.
const DefaultEMADecay = 0.9995

// EMA is an exponential moving average of a model's weights and BatchNorm
// running statistics (ema = decay·ema + (1−decay)·w after every Update);
// num_batches_tracked is copied.
type EMA struct {
	Decay float64
	cfg   model.Config
	keys  []string
	vals  map[string]*tensor.Tensor
}

// NewEMA starts an average at the model's current state; decay <= 0 means
// DefaultEMADecay.
func NewEMA(m *model.Model, decay float64) *EMA {
	if decay <= 0 {
		decay = DefaultEMADecay
	}
	keys, sd := m.StateDict()
	e := &EMA{Decay: decay, cfg: m.Config, keys: keys, vals: map[string]*tensor.Tensor{}}
	for _, k := range keys {
		e.vals[k] = sd[k].Clone()
	}
	return e
}

// Update folds the model's current state into the average with the
// constant Decay.
func (e *EMA) Update(m *model.Model) error { return e.update(m, e.Decay) }

// UpdateAt is Update with a warm-up for step (0-based): the decay is
// min(Decay, (1+step)/(10+step)), so that early averages are not dominated
// by the initial weights (as TensorFlow's and timm's EMA warm-up do).
func (e *EMA) UpdateAt(m *model.Model, step int) error {
	return e.update(m, math.Min(e.Decay, float64(1+step)/float64(10+step)))
}

func (e *EMA) update(m *model.Model, decay float64) error {
	keys, sd := m.StateDict()
	if len(keys) != len(e.keys) {
		return fmt.Errorf("train: EMA: model has %d tensors, average has %d", len(keys), len(e.keys))
	}
	d := float32(decay)
	for _, k := range keys {
		v, ok := e.vals[k]
		src := sd[k]
		if !ok || len(v.Data) != len(src.Data) {
			return fmt.Errorf("train: EMA: tensor %q does not match the average", k)
		}
		if isCounter(k) {
			copy(v.Data, src.Data)
			continue
		}
		for i, x := range src.Data {
			v.Data[i] = d*v.Data[i] + (1-d)*x
		}
	}
	return nil
}

// StateDict returns the averaged tensors (the EMA's own) by key, in order.
func (e *EMA) StateDict() ([]string, map[string]*tensor.Tensor) { return e.keys, e.vals }

// Apply copies the averaged state into m (same architecture).
func (e *EMA) Apply(m *model.Model) error { return m.LoadStateDict(e.vals) }

// Copy returns a new train-time model holding the averaged state.
func (e *EMA) Copy() (*model.Model, error) {
	m, err := model.New(e.cfg, false)
	if err != nil {
		return nil, err
	}
	if err := m.LoadStateDict(e.vals); err != nil {
		return nil, err
	}
	return m, nil
}

func isCounter(k string) bool {
	const s = ".num_batches_tracked"
	return len(k) >= len(s) && k[len(k)-len(s):] == s
}
