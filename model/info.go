package model

import "github.com/mobileone-go/mobileone/nn"

// Layer describes one layer of the fused (inference) network.
type Layer struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // conv3x3, dw3x3, pw1x1, se, pool, linear
	In     int    `json:"in"`
	Out    int    `json:"out"`
	Kernel int    `json:"kernel"`
	Stride int    `json:"stride"`
	Groups int    `json:"groups"`
	OutH   int    `json:"out_h"`
	OutW   int    `json:"out_w"`
	Params int    `json:"params"` // fused, learnable
	MACs   int64  `json:"macs"`
}

// Layers lists the layers of the fused network for an input of h×w, with
// their output sizes and multiply-accumulates. It depends only on the
// configuration.
func (c Config) Layers(h, w int) []Layer {
	names, specs := c.Specs()
	var out []Layer
	for i, s := range specs {
		oh, ow := (h+2*(s.K/2)-s.K)/s.Stride+1, (w+2*(s.K/2)-s.K)/s.Stride+1
		kind := "pw1x1"
		switch {
		case i == 0:
			kind = "conv3x3"
		case s.Groups > 1:
			kind = "dw3x3"
		}
		cinG := s.InC / s.Groups
		out = append(out, Layer{Name: names[i], Kind: kind, In: s.InC, Out: s.OutC, Kernel: s.K, Stride: s.Stride,
			Groups: s.Groups, OutH: oh, OutW: ow, Params: s.OutC*cinG*s.K*s.K + s.OutC,
			MACs: int64(s.OutC) * int64(oh*ow) * int64(cinG*s.K*s.K)})
		if s.SE {
			hid := nn.SEHidden(s.OutC)
			out = append(out, Layer{Name: names[i] + ".se", Kind: "se", In: s.OutC, Out: s.OutC, Kernel: 1, Stride: 1,
				Groups: 1, OutH: oh, OutW: ow, Params: 2*s.OutC*hid + hid + s.OutC, MACs: int64(2 * s.OutC * hid)})
		}
		h, w = oh, ow
	}
	out = append(out, Layer{Name: "gap", Kind: "pool", In: c.Channels[4], Out: c.Channels[4], Kernel: 0, Stride: 1, Groups: 1, OutH: 1, OutW: 1})
	if c.NumClasses > 0 {
		out = append(out, Layer{Name: "linear", Kind: "linear", In: c.Channels[4], Out: c.NumClasses, Kernel: 1, Stride: 1,
			Groups: 1, OutH: 1, OutW: 1, Params: c.Channels[4]*c.NumClasses + c.NumClasses, MACs: int64(c.Channels[4] * c.NumClasses)})
	}
	return out
}

// MACs returns the multiply-accumulates of the fused network for one image
// of h×w (convolutions, SE and the linear head).
func (c Config) MACs(h, w int) int64 {
	var n int64
	for _, l := range c.Layers(h, w) {
		n += l.MACs
	}
	return n
}

// TrainMACs returns the multiply-accumulates of the train-time network for
// one image of h×w: every conv branch and 1×1 scale branch, SE and head
// (BatchNorm is not counted).
func (c Config) TrainMACs(h, w int) int64 {
	_, specs := c.Specs()
	var n int64
	for _, s := range specs {
		oh, ow := (h+2*(s.K/2)-s.K)/s.Stride+1, (w+2*(s.K/2)-s.K)/s.Stride+1
		cinG := s.InC / s.Groups
		per := int64(s.OutC) * int64(oh*ow) * int64(cinG)
		n += per * int64(s.Branches*s.K*s.K)
		if s.HasScale() {
			n += per
		}
		if s.SE {
			n += int64(2 * s.OutC * nn.SEHidden(s.OutC))
		}
		h, w = oh, ow
	}
	if c.NumClasses > 0 {
		n += int64(c.Channels[4] * c.NumClasses)
	}
	return n
}

// Params returns the learnable parameter count of the fused network.
func (c Config) Params() int {
	n := 0
	for _, l := range c.Layers(1, 1) {
		n += l.Params
	}
	return n
}

// TrainParams returns the learnable parameter count of the train-time
// network (conv weights, BatchNorm weight and bias, SE, head).
func (c Config) TrainParams() int {
	_, specs := c.Specs()
	n := 0
	for _, s := range specs {
		cinG := s.InC / s.Groups
		n += s.Branches * (s.OutC*cinG*s.K*s.K + 2*s.OutC)
		if s.HasScale() {
			n += s.OutC*cinG + 2*s.OutC
		}
		if s.HasSkip() {
			n += 2 * s.InC
		}
		if s.SE {
			hid := nn.SEHidden(s.OutC)
			n += 2*s.OutC*hid + hid + s.OutC
		}
	}
	if c.NumClasses > 0 {
		n += c.Channels[4]*c.NumClasses + c.NumClasses
	}
	return n
}
