package model

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/nn"
)

// Layouts of a Plan's activations.
const (
	// LayoutBlocked keeps activations in 16-channel blocks (NCHW16c, see
	// kernel.BlockedLen): the stem reads the NCHW image and writes blocks;
	// depthwise and pointwise layers read and write blocks at full vector
	// width whatever the map size, and 1×1 layers need no packing at run
	// time. The default with SIMD kernels whenever every layer has a
	// blocked kernel.
	LayoutBlocked = "blocked"
	// LayoutNCHW runs every layer on NCHW planes through kernel.ConvOp
	// (packed GEMM for 1×1 and dense layers, direct depthwise kernels).
	LayoutNCHW = "nchw"
)

// Plan is a fused model prepared for repeated inference at one input shape
// (plan once, run many): every convolution's weights are packed once for the
// selected kernels and the activation buffers are allocated once (on the
// first Run with a given number of threads), so Run then allocates nothing.
// A Plan is not safe for concurrent use; make one per goroutine.
type Plan struct {
	N, C, H, W int
	// Layout is LayoutBlocked or LayoutNCHW.
	Layout string
	layers []planLayer
	lanes  []planLane // activation buffers per image in flight
	// From layer tail on (-1: none), a lane runs its images as a group,
	// layer by layer: each pointwise layer for all of them at once
	// (kernel.PointwiseOp.RunImages: its weights read once per group of
	// images that fit in L2 instead of once per image).
	tail   int
	segs   []planSeg // the layers from tail on, in segments
	logits []float32 // (N, classes)
	pooled []float32 // (N, C) pooled features; logits itself without a classifier
	linear *nn.Linear
	outC   int

	// Set for the duration of a batch-parallel Run.
	x        []float32
	laneTask func(t int)
	maxBuf   int // floats of the largest activation
	active   int // lanes of the current Run
	workers  int // thread cap of every op during the run (0: none)

	// Profile, when set, makes Run record the time of every layer.
	Profile bool
	times   []time.Duration
	runs    int
}

// planLane holds what one image needs while it runs through the network.
type planLane struct {
	bufA, bufB []float32 // ping-pong activations
	se         []seBuf   // by layer; empty for layers without SE
	// grpA and grpB are ping-pong buffers for each of the lane's images
	// from layer tail on (nil when the lane runs one image).
	grpA, grpB [][]float32
}

type seBuf struct{ mean, hid, gate []float32 }

// planSeg is a run of layers [from, to) of the group run that goes through
// g images at a time: each pointwise layer's weights are read once per g
// images, and the g images' activations stay in L2 from layer to layer.
type planSeg struct{ from, to, g int }

type planLayer struct {
	name   string
	op     *kernel.ConvOp // NCHW layout
	stem   *kernel.StemOp // blocked layout: exactly one of stem, stemDW, dw, pw
	stemDW *kernel.StemDWOp
	dw     *kernel.DepthwiseOp
	pw     *kernel.PointwiseOp
	// done: this layer's output was written by the layer before (a
	// stemDW op computes the stem and the depthwise layer after it).
	done             bool
	in, out          int // values per image
	outC, outH, outW int
	se               *planSE
	macs             int64
}

type planSE struct {
	c, hidden int
	w1, b1    []float32
	w2, b2    []float32
	planeSize int
	blocked   bool
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
func DefaultLayout() string {
	switch os.Getenv("MOBILEONE_LAYOUT") {
	case LayoutNCHW:
		return LayoutNCHW
	case LayoutBlocked:
		return LayoutBlocked
	}
	if kernel.Vectorized() {
		return LayoutBlocked
	}
	return LayoutNCHW
}

// blockedOK reports whether every layer of the fused model m has a blocked
// kernel: a dense 3×3 pad-1 stem, then depthwise 3×3 pad-1 and 1×1
// stride-1 layers.
func blockedOK(m *Model) bool {
	for i, nb := range m.Blocks() {
		f := nb.Block.Fused
		c := kernel.Conv{InC: f.InC, InH: 8, InW: 8, OutC: f.OutC, K: f.K, Stride: f.Stride, Pad: f.Pad, Groups: f.Groups}
		switch {
		case i == 0 && kernel.StemBlockedOK(c):
		case i > 0 && kernel.DepthwiseBlockedOK(c):
		case i > 0 && isPointwise(c):
		default:
			return false
		}
	}
	return true
}

func isPointwise(c kernel.Conv) bool {
	return c.K == 1 && c.Stride == 1 && c.Pad == 0 && max(c.Groups, 1) == 1
}

// NewPlanLayout is NewPlan with the activation layout chosen by the caller:
// LayoutNCHW, or LayoutBlocked, which falls back to NCHW for a model with a
// layer the blocked kernels do not cover; "" means DefaultLayout().
func NewPlanLayout(m *Model, n, h, w int, layout string) (*Plan, error) {
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
	if layout == LayoutBlocked && !blockedOK(m) {
		layout = LayoutNCHW
	}
	blocked := layout == LayoutBlocked
	p := &Plan{N: n, C: m.Config.InChannels, H: h, W: w, Layout: layout, linear: m.Linear}
	convs := make([]kernel.Conv, 0, len(m.Blocks()))
	ch, hh, ww := m.Config.InChannels, h, w
	for i, nb := range m.Blocks() {
		b := nb.Block
		f := b.Fused
		c := kernel.Conv{InC: ch, InH: hh, InW: ww, OutC: f.OutC, K: f.K, Stride: f.Stride, Pad: f.Pad, Groups: f.Groups}
		convs = append(convs, c)
		oh, ow := c.OutH(), c.OutW()
		if oh < 1 || ow < 1 {
			return nil, fmt.Errorf("plan: input %d×%d is too small for %s", h, w, nb.Name)
		}
		relu := b.SE == nil // with SE, ReLU follows the gate
		l := planLayer{
			name: nb.Name, in: ch * hh * ww, out: f.OutC * oh * ow, outC: f.OutC, outH: oh, outW: ow,
			macs: int64(f.MACs(hh, ww)),
		}
		switch {
		case !blocked:
			l.op = kernel.NewConvOp(c, f.Weight.Data, f.Bias.Data, relu)
		case i == 0:
			l.stem = kernel.NewStemOp(c, f.Weight.Data, f.Bias.Data, relu)
			l.out = kernel.BlockedLen(f.OutC, oh*ow)
		case isPointwise(c):
			l.pw = kernel.NewPointwiseOp(ch, f.OutC, f.Weight.Data, f.Bias.Data, relu)
			l.in, l.out = kernel.BlockedLen(ch, hh*ww), kernel.BlockedLen(f.OutC, oh*ow)
		default:
			l.dw = kernel.NewDepthwiseOp(c, f.Weight.Data, f.Bias.Data, relu)
			l.in, l.out = kernel.BlockedLen(ch, hh*ww), kernel.BlockedLen(f.OutC, oh*ow)
		}
		if b.SE != nil {
			s := b.SE
			l.se = &planSE{c: s.C, hidden: s.Hidden, w1: s.Reduce.Weight.Data, b1: s.Reduce.Bias.Data,
				w2: s.Expand.Weight.Data, b2: s.Expand.Bias.Data, planeSize: oh * ow, blocked: blocked}
			l.macs += int64(s.MACs())
		}
		p.layers = append(p.layers, l)
		ch, hh, ww = f.OutC, oh, ow
	}
	if blocked && stemDWFusion && len(p.layers) > 1 {
		// The stem and a stride-2 depthwise layer after it run as one op:
		// the stem's output, the largest activation, stays in L2.
		l0, l1 := &p.layers[0], &p.layers[1]
		b0, b1 := m.Blocks()[0].Block, m.Blocks()[1].Block
		if l0.stem != nil && l1.dw != nil && l0.se == nil && l1.se == nil && kernel.StemDWOK(convs[0], convs[1]) {
			f0, f1 := b0.Fused, b1.Fused
			l0.stemDW = kernel.NewStemDWOp(convs[0], f0.Weight.Data, f0.Bias.Data, true,
				convs[1], f1.Weight.Data, f1.Bias.Data, true)
			l0.stem, l1.dw, l1.done = nil, nil, true
			l0.out, l1.in = 0, 0 // the stem's output is never in a buffer
		}
	}
	if blocked && sePrefetch {
		p.packSE()
	}
	maxBuf := 0
	for _, l := range p.layers {
		maxBuf = max(maxBuf, l.out)
	}
	p.outC = ch
	p.maxBuf = maxBuf
	p.tail = p.groupFrom(batchFrom)
	p.segs = p.segments()
	p.laneTask = p.runLane
	if m.Linear != nil {
		p.logits = make([]float32, n*m.Linear.Out)
		p.pooled = make([]float32, n*ch)
	} else {
		p.logits = make([]float32, n*ch)
		p.pooled = p.logits
	}
	p.times = make([]time.Duration, len(p.layers)+1)
	return p, nil
}

// Outputs is the number of values Run returns per image.
func (p *Plan) Outputs() int { return len(p.logits) / p.N }

// Run computes the logits (N, classes) — or pooled features (N, C) for a
// model without classifier — of x: (N, C, H, W) flattened. The returned
// slice belongs to the plan and is overwritten by the next Run.
//
// With more than one image and more than one thread (kernel.Threads), the
// blocked layout runs whole images in parallel, each on one thread (no
// synchronisation between layers); otherwise images run one after another
// and every layer spreads its work over the threads. (Running a thread's
// images layer by layer, so that each layer's weights are read once per
// group of images, measured no faster here.) The classifier then runs once
// for the whole batch (see classify).
func (p *Plan) Run(x []float32) ([]float32, error) {
	per := p.C * p.H * p.W
	if len(x) != p.N*per {
		return nil, fmt.Errorf("plan: input has %d values, want %d (%d×%d×%d×%d)", len(x), p.N*per, p.N, p.C, p.H, p.W)
	}
	lanes := 1
	if p.Layout == LayoutBlocked && !p.Profile {
		lanes = min(p.N, kernel.Threads())
	}
	p.ensureLanes(lanes)
	p.x = x
	if lanes > 1 {
		p.setWorkers(1)
		kernel.Parallel(lanes, lanes, p.laneTask)
		p.setWorkers(0)
	} else {
		p.runLane(0)
	}
	p.x = nil
	p.classify()
	if p.Profile {
		p.runs++
	}
	return p.logits, nil
}

// classify applies the classifier to the pooled features of the whole
// batch at once, so its weights (8 MB in S3/S4) are read once per Run, not
// once per image; the logits are bit-identical to per-image ones.
func (p *Plan) classify() {
	if p.linear == nil {
		return
	}
	var t0 time.Time
	if p.Profile {
		t0 = time.Now()
	}
	kernel.LinearBatchLimit(p.N, p.linear.In, p.linear.Out, p.pooled, p.linear.Weight.Data, p.linear.Bias.Data, p.logits, 0)
	if p.Profile {
		p.times[len(p.layers)] += time.Since(t0)
	}
}

// ensureLanes makes sure n lanes have buffers (allocated on the first Run
// with that many threads; Run allocates nothing after that).
func (p *Plan) ensureLanes(n int) {
	p.active = n
	per := ceilDiv(p.N, n) // images per lane
	if len(p.lanes) >= n && (p.tail < 0 || per < 2 || len(p.lanes[0].grpA) >= per) {
		return
	}
	p.lanes = make([]planLane, n)
	for i := range p.lanes {
		ln := &p.lanes[i]
		ln.bufA = make([]float32, p.maxBuf)
		ln.bufB = make([]float32, p.maxBuf)
		ln.se = make([]seBuf, len(p.layers))
		for li, l := range p.layers {
			if l.se != nil {
				ln.se[li] = seBuf{mean: make([]float32, l.se.c), hid: make([]float32, l.se.hidden), gate: make([]float32, l.se.c)}
			}
		}
		if p.tail >= 0 && per > 1 {
			size := 0
			for _, l := range p.layers[p.tail-1:] {
				size = max(size, l.out)
			}
			ln.grpA, ln.grpB = make([][]float32, per), make([][]float32, per)
			for k := range per {
				ln.grpA[k], ln.grpB[k] = make([]float32, size), make([]float32, size)
			}
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// runLane runs images lane, lane+lanes, ... of p.x on the calling
// goroutine: one by one through the network, or, when the lane has group
// buffers and its ops run on this goroutine alone, one by one up to layer
// tail and from there as a group, layer by layer.
func (p *Plan) runLane(lane int) {
	ln := &p.lanes[lane]
	if ln.grpA == nil || (p.active == 1 && kernel.Threads() > 1) {
		for i := lane; i < p.N; i += p.active {
			p.pool(p.runLayers(ln, p.x, i, len(p.layers), nil), i)
		}
		return
	}
	k := 0
	for i := lane; i < p.N; i += p.active {
		p.runLayers(ln, p.x, i, p.tail, ln.grpA[k])
		k++
	}
	src, dst := ln.grpA[:k], ln.grpB[:k]
	for _, sg := range p.segs {
		for c0 := 0; c0 < k; c0 += sg.g {
			s, d := src[c0:min(k, c0+sg.g)], dst[c0:min(k, c0+sg.g)]
			for li := sg.from; li < sg.to; li++ {
				p.runGroupLayer(ln, li, s, d)
				s, d = d, s
			}
		}
		if (sg.to-sg.from)%2 == 1 {
			src, dst = dst, src
		}
	}
	last := &p.layers[len(p.layers)-1]
	k = 0
	for i := lane; i < p.N; i += p.active {
		p.pool(src[k][:last.out], i)
		k++
	}
}

// packSE copies the squeeze-excitation weights that follow each 1×1 layer
// (its own SE's, then the next depthwise layer's) into one buffer per 1×1
// layer, which that layer prefetches into L2 while its last output channels
// run (kernel.PointwiseOp.After): at batch 1 they would otherwise come from
// memory right when the SE needs them (0.4 MB per block in S4).
func (p *Plan) packSE() {
	for li := range p.layers {
		l := &p.layers[li]
		if l.pw == nil {
			continue
		}
		var ses []*planSE
		if l.se != nil {
			ses = append(ses, l.se)
		}
		if li+1 < len(p.layers) && p.layers[li+1].dw != nil && p.layers[li+1].se != nil {
			ses = append(ses, p.layers[li+1].se)
		}
		n := 0
		for _, s := range ses {
			n += len(s.w1) + len(s.b1) + len(s.w2) + len(s.b2)
		}
		if n == 0 {
			continue
		}
		buf := make([]float32, 0, n)
		for _, s := range ses {
			for _, part := range []*[]float32{&s.w1, &s.b1, &s.w2, &s.b2} {
				at := len(buf)
				buf = append(buf, *part...)
				*part = buf[at:len(buf):len(buf)]
			}
		}
		l.pw.After = buf
	}
}

// runGroupLayer runs layer li on the images whose inputs are src, writing
// dst.
func (p *Plan) runGroupLayer(ln *planLane, li int, src, dst [][]float32) {
	l := &p.layers[li]
	var t0 time.Time
	if p.Profile {
		t0 = time.Now()
	}
	if l.pw != nil {
		l.pw.RunImages(src, l.outH*l.outW, dst)
	} else {
		for j := range src {
			l.dw.Run(src[j][:l.in], dst[j][:l.out])
		}
	}
	if l.se != nil {
		for _, out := range dst {
			l.se.apply(out[:l.out], &ln.se[li], p.workers)
		}
	}
	if p.Profile {
		p.times[li] += time.Since(t0)
	}
}

// segments cuts the layers from tail on into runs of equal group size: a
// pointwise layer's is kernel.PointwiseOp.ImagesPerChunk, a depthwise
// layer takes the next pointwise layer's (all the images if none follows).
func (p *Plan) segments() []planSeg {
	if p.tail < 0 {
		return nil
	}
	g := make([]int, len(p.layers))
	next := p.N
	for li := len(p.layers) - 1; li >= p.tail; li-- {
		if l := &p.layers[li]; l.pw != nil {
			next = l.pw.ImagesPerChunk(l.outH * l.outW)
		}
		g[li] = next
	}
	var segs []planSeg
	for li := p.tail; li < len(p.layers); li++ {
		if n := len(segs); n > 0 && segs[n-1].g == g[li] {
			segs[n-1].to = li + 1
			continue
		}
		segs = append(segs, planSeg{from: li, to: li + 1, g: g[li]})
	}
	return segs
}

// groupFrom is the first layer of the group run: the layer named by from
// (MOBILEONE_BATCHFROM; "" or "auto" chooses, "last" means the last layer,
// "off" none), or -1 if that layer or one after it has no blocked depthwise
// or pointwise op of its own, or if it is too early.
func (p *Plan) groupFrom(from string) int {
	t := -1
	switch from {
	case "off", "0":
		return -1
	case "last":
		t = len(p.layers) - 1
	case "", "auto":
		// The first pointwise layer whose weights outweigh one image's
		// input: from there on, reading the weights once per group of
		// images saves more than the group's activations cost in cache.
		// (S3 at batch 8 on one thread, alternating runs on a 2 MiB-L2
		// Xeon: from stage3.1, where this puts it, min 163–170 ms against
		// 175–176 with only the last layer grouped and 170–171 from
		// stage3.0.)
		for i, l := range p.layers {
			if i >= 2 && l.pw != nil && p.layers[i-1].outC*l.outC > l.in {
				t = i
				break
			}
		}
	default:
		for i, l := range p.layers {
			if l.name == from {
				t = i
			}
		}
	}
	if t < 2 || p.layers[t-1].stemDW != nil || p.layers[t-1].done {
		return -1
	}
	for _, l := range p.layers[t:] {
		if l.done || (l.pw == nil && l.dw == nil) {
			return -1
		}
	}
	return t
}

// setWorkers caps the threads of every blocked op (0: kernel.Threads()).
func (p *Plan) setWorkers(n int) {
	p.workers = n
	for i := range p.layers {
		l := &p.layers[i]
		switch {
		case l.stem != nil:
			l.stem.Workers = n
		case l.stemDW != nil:
			l.stemDW.Workers = n
		case l.pw != nil:
			l.pw.Workers = n
		case l.dw != nil:
			l.dw.Workers = n
		}
	}
}

// runLayers runs layers [0, end) on image i of x with lane ln's buffers and
// returns the output of the last of them, written to final if that is not
// nil (pool then gives the features; Run applies the classifier to the
// whole batch after).
func (p *Plan) runLayers(ln *planLane, x []float32, i, end int, final []float32) []float32 {
	per := p.C * p.H * p.W
	src := x[i*per : (i+1)*per]
	dst := ln.bufA
	for li := range p.layers[:end] {
		l := &p.layers[li]
		var t0 time.Time
		if p.Profile {
			t0 = time.Now()
		}
		out := dst[:l.out]
		if li == end-1 && final != nil {
			out = final[:l.out]
		}
		in := src[:l.in]
		switch {
		case l.done:
		case l.stemDW != nil:
			// Writes the next layer's output, in the other buffer.
			next := ln.bufA
			if &dst[0] == &ln.bufA[0] {
				next = ln.bufB
			}
			l.stemDW.Run(in, next[:p.layers[li+1].out])
		case l.op != nil:
			l.op.Run(in, out)
		case l.stem != nil:
			l.stem.Run(in, out)
		case l.pw != nil:
			l.pw.Run(in, l.outH*l.outW, out)
		default:
			l.dw.Run(in, out)
		}
		if l.se != nil {
			l.se.apply(out, &ln.se[li], p.workers)
		}
		if p.Profile {
			p.times[li] += time.Since(t0)
		}
		src = out
		if &dst[0] == &ln.bufA[0] {
			dst = ln.bufB
		} else {
			dst = ln.bufA
		}
	}
	return src
}

// pool writes the pooled features of image i from src, the output of the
// last layer.
func (p *Plan) pool(src []float32, i int) {
	var t0 time.Time
	if p.Profile {
		t0 = time.Now()
	}
	last := &p.layers[len(p.layers)-1]
	pooled := p.pooled[i*p.outC : (i+1)*p.outC]
	if p.Layout == LayoutBlocked {
		kernel.BlockedAvgPoolLimit(p.outC, last.outH*last.outW, src[:last.out], pooled, p.workers)
	} else {
		kernel.GlobalAvgPool(p.outC, last.outH*last.outW, src[:last.out], pooled)
	}
	if p.Profile {
		p.times[len(p.layers)] += time.Since(t0)
	}
}

// apply computes x *= sigmoid(W2·relu(W1·mean(x) + b1) + b2) per channel, then ReLU.
func (s *planSE) apply(x []float32, b *seBuf, workers int) {
	hw := s.planeSize
	if s.blocked {
		kernel.BlockedAvgPoolLimit(s.c, hw, x, b.mean, workers)
	} else {
		kernel.GlobalAvgPool(s.c, hw, x, b.mean)
	}
	kernel.LinearLimit(s.c, s.hidden, b.mean, s.w1, s.b1, b.hid, 1)
	for j, v := range b.hid {
		b.hid[j] = max(v, 0)
	}
	kernel.LinearLimit(s.hidden, s.c, b.hid, s.w2, s.b2, b.gate, 1)
	for ch, v := range b.gate {
		b.gate[ch] = float32(1 / (1 + math.Exp(-float64(v))))
	}
	if s.blocked {
		kernel.BlockedScaleReLULimit(s.c, hw, x, b.gate, workers)
	} else {
		kernel.ScaleChannelsReLU(s.c, hw, x, b.gate)
	}
}

// sePrefetch enables packSE (MOBILEONE_SEPREFETCH=0 turns it off, for
// comparisons).
var sePrefetch = os.Getenv("MOBILEONE_SEPREFETCH") != "0"

// batchFrom names the first layer a lane runs for its images as a group
// (see groupFrom): MOBILEONE_BATCHFROM=off turns the group run off,
// =stage3.0 (say) starts it there, for comparisons.
var batchFrom = os.Getenv("MOBILEONE_BATCHFROM")

// stemDWFusion enables the fused stem + depthwise op (MOBILEONE_STEMDW=0
// turns it off, for comparisons).
var stemDWFusion = os.Getenv("MOBILEONE_STEMDW") != "0"

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
		lt := LayerTime{Name: l.name, MACs: l.macs * int64(p.N), Time: p.times[i] / time.Duration(runs)}
		if l.done && len(out) > 0 {
			// Computed by the op of the layer before: one entry for both.
			prev := &out[len(out)-1]
			prev.Name += "+" + lt.Name
			prev.MACs += lt.MACs
			prev.Time += lt.Time
			continue
		}
		out = append(out, lt)
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
