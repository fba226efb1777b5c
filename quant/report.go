package quant

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/tensor"
)

// LayerReport is one node's quantisation error.
type LayerReport struct {
	Name string `json:"name"`
	// Precision is "int8" or "float".
	Precision string `json:"precision"`
	// Scale and Zero quantise the node's output (0 for a float output).
	Scale float32 `json:"scale,omitempty"`
	Zero  int32   `json:"zero,omitempty"`
	// WeightSQNR is 10·log10(Σw²/Σ(w−ŵ)²) of the dequantised weights
	// against the float weights they were quantised from (after constant
	// folding), dB.
	WeightSQNR float64 `json:"weight_sqnr_db,omitempty"`
	// SQNR is 10·log10(Σy²/Σ(y−ŷ)²) of the node's output in the int8
	// network (errors accumulated from every layer before it) against the
	// float network, over the report's images, dB.
	SQNR float64 `json:"sqnr_db"`
}

// Report is a quantised model's per-layer error.
type Report struct {
	Method string        `json:"method"`
	Images int           `json:"images"`
	Layers []LayerReport `json:"layers"`
	// OutputSQNR is the logits' SQNR; Agreement the share of report
	// images whose top-1 class is the float model's.
	OutputSQNR float64 `json:"output_sqnr_db"`
	Agreement  float64 `json:"agreement"`
}

func sqnr(sig, noise float64) float64 {
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// Report runs the float and the int8 network on the first n calibration
// images and measures each layer's error.
func (c *Calibration) Report(q *Model, n int) (*Report, error) {
	n = min(n, c.images.Len())
	p, err := graph.NewInt8Plan(c.g, q.Spec, 1)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, nd := range c.g.Nodes {
		if nd.Kind == graph.Conv || nd.Kind == graph.SE || nd.Kind == graph.Act {
			names = append(names, nd.Name)
		}
	}
	sig := make([]float64, len(names))
	noise := make([]float64, len(names))
	var osig, onoise float64
	agree := 0
	ch := c.m.Config.InChannels
	for i := range n {
		x, err := c.images.Image(i)
		if err != nil {
			return nil, err
		}
		y, vals, err := c.g.Ref(&tensor.Tensor{Shape: []int{1, ch, c.h, c.w}, Data: x})
		if err != nil {
			return nil, err
		}
		got, err := p.Run(x)
		if err != nil {
			return nil, err
		}
		for j, v := range got {
			d := float64(v - y.Data[j])
			osig += float64(y.Data[j]) * float64(y.Data[j])
			onoise += d * d
		}
		if argmax(got) == argmax(y.Data) {
			agree++
		}
		for k, name := range names {
			dq := p.DequantizedValue(name)
			ref := vals[c.nodeOut(name)]
			if dq == nil || len(dq) != len(ref) {
				continue
			}
			for j, v := range ref {
				d := float64(dq[j] - v)
				sig[k] += float64(v) * float64(v)
				noise[k] += d * d
			}
		}
	}
	r := &Report{Method: q.Method, Images: n, OutputSQNR: sqnr(osig, onoise), Agreement: float64(agree) / float64(max(n, 1))}
	for k, name := range names {
		l := LayerReport{Name: name, Precision: "float", SQNR: sqnr(sig[k], noise[k])}
		if qc, ok := q.Spec.Conv[name]; ok {
			l.Precision = "int8"
			w := c.used[name]
			per := len(w) / len(qc.WScale)
			var ws, wn float64
			for j, v := range w {
				d := float64(v) - float64(qc.W[j])*float64(qc.WScale[j/per])
				ws += float64(v) * float64(v)
				wn += d * d
			}
			l.WeightSQNR = sqnr(ws, wn)
		}
		if a, ok := q.Spec.Act[name]; ok {
			l.Scale, l.Zero = a.Scale, a.Zero
		}
		r.Layers = append(r.Layers, l)
	}
	return r, nil
}

func (c *Calibration) node(name string) *graph.Node {
	for _, nd := range c.g.Nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}

func (c *Calibration) nodeOut(name string) graph.Value { return c.node(name).Out }

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// Write prints the report as a table.
func (r *Report) Write(w io.Writer) error {
	fmt.Fprintf(w, "per-layer quantisation error (%s, %d images; SQNR of each output in the int8 network against the float network, errors accumulated):\n", r.Method, r.Images)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\tprecision\tout scale\tzero\tweight SQNR dB\tSQNR dB\t")
	for _, l := range r.Layers {
		ws := "-"
		if l.WeightSQNR != 0 {
			ws = fmt.Sprintf("%.1f", l.WeightSQNR)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g\t%d\t%s\t%.1f\t\n", l.Name, l.Precision, l.Scale, l.Zero, ws, l.SQNR)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "logits SQNR %.1f dB; top-1 agreement with float on these images %.1f%%\n", r.OutputSQNR, 100*r.Agreement)
	return err
}
