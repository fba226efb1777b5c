package model

import (
	"fmt"
	"strings"
	"time"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/tensor"
)

// Layouts of a Plan's activations (graph.LayoutBlocked, graph.LayoutNCHW).
const (
	// LayoutBlocked keeps activations in 16-channel blocks (NCHW16c, see
	// kernel.BlockedLen): the stem reads the NCHW image and writes blocks,
	// fused with the first depthwise layer; depthwise and pointwise layers
	// read and write blocks at full vector width whatever the map size.
	// The default with SIMD kernels.
	LayoutBlocked = graph.LayoutBlocked
	// LayoutNCHW runs every layer on NCHW planes through kernel.ConvOp
	// (packed GEMM for 1×1 and dense layers, direct depthwise kernels).
	LayoutNCHW = graph.LayoutNCHW
)

// Plan is a fused model prepared for repeated inference at one input shape
// (plan once, run many): the model's fused graph (FusedGraph) lowered by
// the graph planner onto the kernels, the one engine every network of
// this project runs on (graph.Plan: packed weights, fused stem and
// depthwise layer, SE weights prefetched, buffers pooled by liveness,
// images of a batch in parallel lanes, the classifier once per batch).
// Run allocates nothing. A Plan is not safe for concurrent use; make one
// per goroutine.
type Plan struct {
	N, C, H, W int
	// Layout is LayoutBlocked or LayoutNCHW.
	Layout string
	// Precision is Float32 or BFloat16.
	Precision string
	// Profile, when set, makes Run record the time of every layer (and
	// run a batch's images one after another).
	Profile bool

	g     *graph.Graph
	gp    *graph.Plan
	block []string // by node (Nodes[1:]): the block it belongs to, "head" for pooling and classifier
}

// NewPlan prepares m (fused here if it is not) for inputs of shape
// (n, InChannels, h, w) in the layout DefaultLayout chooses.
func NewPlan(m *Model, n, h, w int) (*Plan, error) {
	return NewPlanLayout(m, n, h, w, DefaultLayout())
}

// DefaultLayout is the activation layout NewPlan uses: LayoutBlocked with
// SIMD kernels, LayoutNCHW with the pure-Go ones (where the blocked layout
// is slower: S0 64 vs 53 ms on one thread of the reference machine). The
// environment variable MOBILEONE_LAYOUT=blocked|nchw overrides it.
func DefaultLayout() string { return graph.DefaultLayout() }

// NewPlanLayout is NewPlan with the activation layout chosen by the caller
// (LayoutNCHW or LayoutBlocked; "" means DefaultLayout()).
func NewPlanLayout(m *Model, n, h, w int, layout string) (*Plan, error) {
	return NewPlanWith(m, n, h, w, PlanOptions{Layout: layout})
}

// The precisions a plan computes in.
const (
	// Float32: float32 weights, activations and sums.
	Float32 = "float32"
	// BFloat16: every convolution and linear layer multiplies bfloat16
	// weights by bfloat16 inputs and sums in float32, as bfloat16 engines
	// do (see graph.Graph.BF16).
	BFloat16 = "bf16"
)

// ParsePrecision maps a user's spelling (float32, fp32, f32; bf16,
// bfloat16; "" for float32) to Float32 or BFloat16.
func ParsePrecision(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "float32", "fp32", "f32":
		return Float32, nil
	case "bf16", "bfloat16":
		return BFloat16, nil
	}
	return "", fmt.Errorf("unknown precision %q (want float32 or bf16)", s)
}

// PlanOptions are NewPlanWith's choices; zero values are the defaults.
type PlanOptions struct {
	// Layout: LayoutBlocked, LayoutNCHW or "" (DefaultLayout()).
	Layout string
	// Precision: Float32, BFloat16 or "" (Float32); see ParsePrecision.
	Precision string
}

// PrecisionGraph returns g as it computes in precision (Float32 or ""
// gives g itself, BFloat16 its graph.Graph.BF16 copy).
func PrecisionGraph(g *graph.Graph, precision string) (*graph.Graph, error) {
	p, err := ParsePrecision(precision)
	if err != nil || p == Float32 {
		return g, err
	}
	return g.BF16()
}

// NewPlanWith is NewPlan with options.
func NewPlanWith(m *Model, n, h, w int, o PlanOptions) (*Plan, error) {
	layout := o.Layout
	precision, err := ParsePrecision(o.Precision)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if n < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("plan: bad input size %d×%d×%d", n, h, w)
	}
	if layout == "" {
		layout = DefaultLayout()
	}
	if layout != LayoutNCHW && layout != LayoutBlocked {
		return nil, fmt.Errorf("plan: unknown layout %q (want %s or %s)", layout, LayoutBlocked, LayoutNCHW)
	}
	if !m.IsFused() {
		m = m.Fuse()
	}
	// The input must leave every block at least one pixel.
	hh, ww := h, w
	names, specs := m.Config.Specs()
	for i, s := range specs {
		hh, ww = (hh+2*(s.K/2)-s.K)/s.Stride+1, (ww+2*(s.K/2)-s.K)/s.Stride+1
		if hh < 1 || ww < 1 {
			return nil, fmt.Errorf("plan: input %d×%d is too small for %s", h, w, names[i])
		}
	}
	g, err := m.Graph(h, w)
	if err != nil {
		return nil, err
	}
	if g, err = PrecisionGraph(g, precision); err != nil {
		return nil, err
	}
	gp, err := graph.NewPlanLayout(g, n, layout)
	if err != nil {
		return nil, err
	}
	p := &Plan{N: n, C: m.Config.InChannels, H: h, W: w, Layout: layout, Precision: precision, g: g, gp: gp}
	for _, nd := range g.Nodes[1:] {
		p.block = append(p.block, blockOf(nd.Name))
	}
	return p, nil
}

// blockOf is the block a node of FusedGraph belongs to: "stage2.3" for
// "stage2.3.reparam_conv", ".se" and ".relu"; "head" for the pooling and
// the classifier.
func blockOf(node string) string {
	if !strings.HasPrefix(node, "stage") {
		return "head"
	}
	node = strings.TrimSuffix(node, ".bf16") // graph.Graph.BF16's rounding
	for _, suffix := range []string{".reparam_conv", ".se", ".relu"} {
		if i := strings.LastIndex(node, suffix); i > 0 {
			return node[:i]
		}
	}
	return node
}

// Outputs is the number of values Run returns per image.
func (p *Plan) Outputs() int { return tensor.NumelOf(p.g.OutputShape()) }

// Graph is the plan's graph (read-only).
func (p *Plan) Graph() *graph.Graph { return p.g }

// Run computes the logits (N, classes) — or pooled features (N, C) for a
// model without classifier — of x: (N, C, H, W) flattened. The returned
// slice belongs to the plan and is overwritten by the next Run.
//
// With more than one image and more than one thread (kernel.Threads), the
// blocked layout runs whole images in parallel, each on one thread;
// otherwise images run one after another and every layer spreads its work
// over the threads. The classifier runs once for the whole batch.
func (p *Plan) Run(x []float32) ([]float32, error) {
	per := p.C * p.H * p.W
	if len(x) != p.N*per {
		return nil, fmt.Errorf("plan: input has %d values, want %d (%d×%d×%d×%d)", len(x), p.N*per, p.N, p.C, p.H, p.W)
	}
	p.gp.Profile = p.Profile
	return p.gp.Run(x)
}

// LayerTime is one layer's share of a profiled Plan's run time.
type LayerTime struct {
	Name string        `json:"name"`
	MACs int64         `json:"macs"`
	Time time.Duration `json:"time_ns"`
}

// Profiled returns the mean time per Run of each block (and of the pooling
// and classifier, as "head") since the plan was made or last reset. Blocks
// computed by one op (the stem and the depthwise layer after it) are one
// entry, their names joined with "+".
func (p *Plan) Profiled() []LayerTime {
	runs := time.Duration(max(p.gp.Runs, 1))
	var out []LayerTime
	var head LayerTime
	head.Name = "head"
	at := map[string]int{}
	for i, nd := range p.g.Nodes[1:] {
		var t time.Duration
		if i < len(p.gp.Times) {
			t = p.gp.Times[i] / runs
		}
		macs := p.g.NodeMACs(nd) * int64(p.N)
		b := p.block[i]
		if b == "head" {
			head.MACs += macs
			head.Time += t
			continue
		}
		if by := p.gp.ComputedBy(nd); by != nd {
			if k, ok := at[blockOf(by.Name)]; ok && blockOf(by.Name) != b {
				// Computed by an op of an earlier block: one entry.
				if !strings.HasSuffix(out[k].Name, "+"+b) {
					out[k].Name += "+" + b
				}
				out[k].MACs += macs
				out[k].Time += t
				at[b] = k
				continue
			}
		}
		k, ok := at[b]
		if !ok {
			k = len(out)
			at[b] = k
			out = append(out, LayerTime{Name: b})
		}
		out[k].MACs += macs
		out[k].Time += t
	}
	return append(out, head)
}

// ResetProfile clears the recorded layer times.
func (p *Plan) ResetProfile() {
	clear(p.gp.Times)
	p.gp.Runs = 0
}
