package model

import (
	"fmt"
	"math"
	"time"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/nn"
)

// Plan is a fused model prepared for repeated inference at one input shape
// (plan once, run many): every convolution's weights are packed once for the
// selected kernels and every activation buffer is allocated once, so Run
// allocates nothing. A Plan is not safe for concurrent use; make one per
// goroutine.
type Plan struct {
	N, C, H, W int
	layers     []planLayer
	bufA, bufB []float32 // ping-pong activations of one image
	pooled     []float32
	logits     []float32 // (N, classes)
	linear     *nn.Linear
	outC       int

	// Profile, when set, makes Run record the time of every layer.
	Profile bool
	times   []time.Duration
	runs    int
}

type planLayer struct {
	name             string
	op               *kernel.ConvOp
	in, out          int // values per image
	outC, outH, outW int
	se               *planSE
	macs             int64
}

type planSE struct {
	c, hidden int
	w1, b1    []float32
	w2, b2    []float32
	mean, hid []float32
	gate      []float32
	planeSize int
}

// NewPlan prepares m (fused here if it is not) for inputs of shape
// (n, InChannels, h, w).
func NewPlan(m *Model, n, h, w int) (*Plan, error) {
	if n < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("plan: bad input size %d×%d×%d", n, h, w)
	}
	if !m.IsFused() {
		m = m.Fuse()
	}
	p := &Plan{N: n, C: m.Config.InChannels, H: h, W: w, linear: m.Linear}
	maxBuf := m.Config.InChannels * h * w
	ch, hh, ww := m.Config.InChannels, h, w
	for _, nb := range m.Blocks() {
		b := nb.Block
		f := b.Fused
		c := kernel.Conv{InC: ch, InH: hh, InW: ww, OutC: f.OutC, K: f.K, Stride: f.Stride, Pad: f.Pad, Groups: f.Groups}
		oh, ow := c.OutH(), c.OutW()
		if oh < 1 || ow < 1 {
			return nil, fmt.Errorf("plan: input %d×%d is too small for %s", h, w, nb.Name)
		}
		l := planLayer{
			name: nb.Name, op: kernel.NewConvOp(c, f.Weight.Data, f.Bias.Data, b.SE == nil),
			in: ch * hh * ww, out: f.OutC * oh * ow, outC: f.OutC, outH: oh, outW: ow,
			macs: int64(f.MACs(hh, ww)),
		}
		if b.SE != nil {
			s := b.SE
			l.se = &planSE{c: s.C, hidden: s.Hidden, w1: s.Reduce.Weight.Data, b1: s.Reduce.Bias.Data,
				w2: s.Expand.Weight.Data, b2: s.Expand.Bias.Data, mean: make([]float32, s.C),
				hid: make([]float32, s.Hidden), gate: make([]float32, s.C), planeSize: oh * ow}
			l.macs += int64(s.MACs())
		}
		p.layers = append(p.layers, l)
		maxBuf = max(maxBuf, l.out)
		ch, hh, ww = f.OutC, oh, ow
	}
	p.outC = ch
	p.bufA = make([]float32, maxBuf)
	p.bufB = make([]float32, maxBuf)
	p.pooled = make([]float32, ch)
	if m.Linear != nil {
		p.logits = make([]float32, n*m.Linear.Out)
	} else {
		p.logits = make([]float32, n*ch)
	}
	p.times = make([]time.Duration, len(p.layers)+1)
	return p, nil
}

// Outputs is the number of values Run returns per image.
func (p *Plan) Outputs() int { return len(p.logits) / p.N }

// Run computes the logits (N, classes) — or pooled features (N, C) for a
// model without classifier — of x: (N, C, H, W) flattened. The returned
// slice belongs to the plan and is overwritten by the next Run.
func (p *Plan) Run(x []float32) ([]float32, error) {
	per := p.C * p.H * p.W
	if len(x) != p.N*per {
		return nil, fmt.Errorf("plan: input has %d values, want %d (%d×%d×%d×%d)", len(x), p.N*per, p.N, p.C, p.H, p.W)
	}
	outs := p.Outputs()
	for i := 0; i < p.N; i++ {
		src := x[i*per : (i+1)*per]
		dst := p.bufA
		for li := range p.layers {
			l := &p.layers[li]
			var t0 time.Time
			if p.Profile {
				t0 = time.Now()
			}
			out := dst[:l.out]
			l.op.Run(src[:l.in], out)
			if l.se != nil {
				l.se.apply(out)
			}
			if p.Profile {
				p.times[li] += time.Since(t0)
			}
			src = out
			if &dst[0] == &p.bufA[0] {
				dst = p.bufB
			} else {
				dst = p.bufA
			}
		}
		var t0 time.Time
		if p.Profile {
			t0 = time.Now()
		}
		last := &p.layers[len(p.layers)-1]
		kernel.GlobalAvgPool(p.outC, last.outH*last.outW, src[:last.out], p.pooled)
		y := p.logits[i*outs : (i+1)*outs]
		if p.linear != nil {
			kernel.Linear(p.linear.In, p.linear.Out, p.pooled, p.linear.Weight.Data, p.linear.Bias.Data, y)
		} else {
			copy(y, p.pooled)
		}
		if p.Profile {
			p.times[len(p.layers)] += time.Since(t0)
		}
	}
	if p.Profile {
		p.runs++
	}
	return p.logits, nil
}

// apply computes x *= sigmoid(W2·relu(W1·mean(x) + b1) + b2) per channel, then ReLU.
func (s *planSE) apply(x []float32) {
	hw := s.planeSize
	kernel.GlobalAvgPool(s.c, hw, x, s.mean)
	kernel.Linear(s.c, s.hidden, s.mean, s.w1, s.b1, s.hid)
	for j, v := range s.hid {
		s.hid[j] = max(v, 0)
	}
	kernel.Linear(s.hidden, s.c, s.hid, s.w2, s.b2, s.gate)
	for ch, v := range s.gate {
		s.gate[ch] = float32(1 / (1 + math.Exp(-float64(v))))
	}
	kernel.ScaleChannelsReLU(s.c, hw, x, s.gate)
}

// LayerTime is one layer's share of a profiled Plan's run time.
type LayerTime struct {
	Name string        `json:"name"`
	MACs int64         `json:"macs"`
	Time time.Duration `json:"time_ns"`
}

// Profiled returns the mean time per Run of each layer (and of the pooling
// and classifier, as "head") since the plan was made or last reset.
func (p *Plan) Profiled() []LayerTime {
	out := make([]LayerTime, 0, len(p.times))
	runs := max(p.runs, 1)
	for i, l := range p.layers {
		out = append(out, LayerTime{Name: l.name, MACs: l.macs * int64(p.N), Time: p.times[i] / time.Duration(runs)})
	}
	head := LayerTime{Name: "head", Time: p.times[len(p.layers)] / time.Duration(runs)}
	if p.linear != nil {
		head.MACs = int64(p.linear.In*p.linear.Out) * int64(p.N)
	}
	return append(out, head)
}

// ResetProfile clears the recorded layer times.
func (p *Plan) ResetProfile() {
	clear(p.times)
	p.runs = 0
}
