package graph

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/tensor"
)

// Plan is a graph lowered onto the kernels for a batch of N images (plan
// once, run many): every convolution's weights are packed once
// (kernel.ConvOp: packed GEMM for dense and 1×1 layers, direct kernels for
// depthwise ones), activations are fused into the convolutions (ReLU into
// their stores, the others applied to each tile just stored), and every
// value gets a buffer from a pool sized once by liveness (a buffer is
// reused as soon as the last reader of its value has run). Run allocates
// nothing for the operators that have a planned implementation; Unplanned
// lists those that fall back to the reference code (correct, slow,
// allocating).
//
// One image runs with each operator spreading its work over
// kernel.Threads() threads; a batch in the blocked layout runs its images
// in parallel lanes, one per thread (lanes.go).
type Plan struct {
	g *Graph
	N int
	// Blocked says the plan keeps some values in the channel-blocked
	// layout (NCHW16c, see kernel.BlockedLen): the outputs of 1×1 and 3×3
	// depthwise convolutions and the activations, sums and SE that follow
	// them, on kernel.PointwiseOp and kernel.DepthwiseOp; every other
	// operator reads NCHW, converted where a value crosses over.
	Blocked bool
	blk     []bool // by value: stored blocked
	fuse    fusions
	sh      *shared   // the packed ops, shared with the lanes
	head    *Node     // the classifier run once per batch (head.go), or nil
	pooled  []float32 // (N, its input): the head's inputs
	lanes   []*Plan   // lanes[0] is the plan itself
	laneFn  func(lane int)
	runX    []float32   // the batch of a lane-parallel Run
	active  int         // lanes of that Run
	alt     [][]float32 // by value: a copy in the other layout (nil: none)
	steps   []func()
	stepOf  []int  // by step: the index in Nodes[1:] whose time it counts to
	stepCvt []bool // by step: a layout conversion (not the node's own step)
	// A lane's group run (lanes.go): the plans of its images, the steps
	// from the tail on in segments, and the current chunk of images
	// [g0, g1).
	images  []*Plan
	group   []func()
	segs    []groupSeg
	g0, g1  int
	bufOf   []int           // buffer index by value
	bufs    [][]float32     // the pool
	x       []float32       // current image's input
	out     []float32       // (N, output...)
	cropped map[*Node]*Node // Conv nodes run with a cropped kernel (trim.go)
	// Unplanned names the nodes that run on reference code.
	Unplanned []string

	// Profile, when set, makes Run add each node's time to Times (by
	// node, Nodes[1:] order; a layout conversion counts to the node that
	// made the value, the input's to the first node); Runs counts the
	// profiled runs.
	Profile bool
	Times   []time.Duration
	Runs    int
}

// NewPlan lowers g (finalised, weights loaded) for n images in the layout
// DefaultLayout chooses.
func NewPlan(g *Graph, n int) (*Plan, error) { return NewPlanLayout(g, n, "") }

// Layouts of a plan's values.
const (
	// LayoutBlocked keeps the values of the operators that have blocked
	// kernels in 16-channel blocks (see Plan.Blocked).
	LayoutBlocked = "blocked"
	// LayoutNCHW keeps every value in NCHW planes.
	LayoutNCHW = "nchw"
)

// NewPlanLayout is NewPlan in layout LayoutBlocked or LayoutNCHW ("": the
// default).
func NewPlanLayout(g *Graph, n int, layout string) (*Plan, error) {
	switch layout {
	case "":
		layout = DefaultLayout()
	case LayoutBlocked, LayoutNCHW:
	default:
		return nil, fmt.Errorf("plan: unknown layout %q (want %s or %s)", layout, LayoutBlocked, LayoutNCHW)
	}
	if !g.final {
		if err := g.Finalize(); err != nil {
			return nil, err
		}
	}
	if n < 1 {
		return nil, fmt.Errorf("plan: batch %d", n)
	}
	p := &Plan{g: g, N: n, out: make([]float32, n*tensor.NumelOf(g.OutputShape())), sh: &shared{ops: map[*Node]any{}, tail: -2}}
	p.Blocked = layout == LayoutBlocked
	p.cropConvs()
	p.chooseLayouts()
	p.planFusions()
	p.assignBuffers()
	p.findHead()
	p.lowerSteps()
	p.laneFn = p.runLane
	return p, nil
}

// lowerSteps makes the plan's steps, in node order.
func (p *Plan) lowerSteps() {
	g := p.g
	if in := g.Nodes[0].Out; p.alt[in] != nil {
		p.steps = append(p.steps, p.convert(in))
		p.stepOf = append(p.stepOf, 0)
		p.stepCvt = append(p.stepCvt, true)
	}
	for i, nd := range g.Nodes[1:] {
		if nd == p.head {
			continue // once per batch, after the images (head.go)
		}
		p.steps = append(p.steps, p.lower(nd))
		p.stepOf = append(p.stepOf, i)
		p.stepCvt = append(p.stepCvt, false)
		// A value some reader needs in the other layout is converted once,
		// right after it is made (its time counts to the node).
		if a := p.alt[nd.Out]; a != nil {
			p.steps = append(p.steps, p.convert(nd.Out))
			p.stepOf = append(p.stepOf, i)
			p.stepCvt = append(p.stepCvt, true)
		}
	}
}

// DefaultLayout is LayoutBlocked with SIMD kernels (where the blocked
// kernels are the fast ones) and LayoutNCHW with the pure-Go ones (S0: 64
// against 53 ms on one thread of the reference machine);
// MOBILEONE_LAYOUT=blocked|nchw overrides it.
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

// zeroAtZero: activations with f(0) = 0 keep the blocked layout's padding
// channels zero.
func zeroAtZero(a Activation) bool {
	switch a.Base() {
	case None, ReLU, ReLU6, HardSwish, SiLU, GELU:
		return true
	}
	return false
}

// chooseLayouts decides which values are stored blocked, and which need a
// copy in the other layout for some reader.
func (p *Plan) chooseLayouts() {
	g := p.g
	p.blk = make([]bool, len(g.Shapes))
	p.alt = make([][]float32, len(g.Shapes))
	if !p.Blocked {
		return
	}
	readers := make([][]*Node, len(g.Shapes))
	for _, n := range g.Nodes[1:] {
		for _, v := range n.In {
			readers[v] = append(readers[v], n)
		}
	}
	for _, n := range g.Nodes[1:] {
		switch {
		case p.convKindOf(n) != convNCHW:
			p.blk[n.Out] = zeroAtZero(n.Act)
		case (n.Kind == MaxPool || n.Kind == AvgPool) && !p.blk[n.In[0]]:
			// Pooling an NCHW map for a blocked convolution writes blocks.
			for _, r := range readers[n.Out] {
				if k := p.convKindOf(r); k == convPW || k == convDW || k == convDense {
					p.blk[n.Out] = true
				}
			}
		case n.Kind == Act || n.Kind == Add || n.Kind == SE || blockedLayoutOp(n.Kind):
			all := zeroAtZero(n.Act)
			for _, v := range n.In {
				all = all && p.blk[v]
			}
			p.blk[n.Out] = all
		case n.Kind == Upsample && len(g.Shapes[n.Out]) == 3:
			// blocked in, blocked out, unless an output of the graph
			// (it would need a conversion of the large map)
			p.blk[n.Out] = p.blk[n.In[0]] && n.Out != g.Output && !slices.Contains(g.Outs, n.Out)
		}
	}
	// Readers that need the other layout.
	need := func(v Value, blocked bool) {
		if p.blk[v] != blocked && p.alt[v] == nil {
			s := g.Shapes[v]
			if blocked {
				p.alt[v] = make([]float32, kernel.BlockedLen(s[0], s[1]*s[2]))
			} else {
				p.alt[v] = make([]float32, tensor.NumelOf(s))
			}
		}
	}
	for _, n := range g.Nodes[1:] {
		k := p.convKindOf(n)
		for _, v := range n.In {
			switch {
			case (k == convPW || k == convDW || k == convDense || k == convDWDil) && zeroAtZero(n.Act):
				need(v, true)
			case n.Kind == GlobalAvgPool:
				// reads either layout
			case p.blk[n.Out] && (n.Kind == MaxPool || n.Kind == AvgPool):
				// reads either layout
			case p.blk[n.Out] && (n.Kind == Act || n.Kind == Add || n.Kind == SE || n.Kind == Upsample || blockedLayoutOp(n.Kind)):
				// inputs blocked by construction
			default:
				need(v, false)
			}
		}
	}
	need(g.Output, false)
	for _, v := range g.Outs {
		need(v, false)
	}
}

// convert returns the step that copies value v into its other layout.
func (p *Plan) convert(v Value) func() {
	s := p.g.Shapes[v]
	c, hw := s[0], s[1]*s[2]
	if p.blk[v] {
		return func() { kernel.FromBlocked(c, hw, p.buf(v), p.alt[v]) }
	}
	return func() { kernel.ToBlocked(c, hw, p.buf(v), p.alt[v]) }
}

// in returns value v in the layout a reader wants.
func (p *Plan) in(v Value, blocked bool) []float32 {
	if p.blk[v] == blocked {
		return p.buf(v)
	}
	return p.alt[v]
}

// assignBuffers gives every value a buffer of the pool: a buffer whose
// value has had its last reader is free for the next value that fits
// (or grows to fit).
func (p *Plan) assignBuffers() {
	g := p.g
	last := make([]int, len(g.Shapes)) // index of the last node reading each value
	for i, nd := range g.Nodes {
		for _, v := range nd.In {
			last[v] = i
		}
	}
	last[g.Output] = len(g.Nodes)
	for _, v := range g.Outs {
		last[v] = len(g.Nodes)
	}
	p.bufOf = make([]int, len(g.Shapes))
	var size []int
	var free []int
	busyUntil := map[int]int{} // buffer -> node index after which it is free
	for i, nd := range g.Nodes {
		// free the buffers whose values were last read before this node
		for b, until := range busyUntil {
			if until < i {
				free = append(free, b)
				delete(busyUntil, b)
			}
		}
		if i == 0 {
			p.bufOf[nd.Out] = -1 // the input is read in place
			continue
		}
		if p.fuse.inPlace[nd] {
			b := p.bufOf[nd.In[0]]
			p.bufOf[nd.Out] = b
			busyUntil[b] = last[nd.Out]
			continue
		}
		need := tensor.NumelOf(g.Shapes[nd.Out])
		if p.blk[nd.Out] {
			s := g.Shapes[nd.Out]
			need = kernel.BlockedLen(s[0], s[1]*s[2])
		}
		best := -1
		for k, b := range free {
			if best < 0 || (size[b] >= need) && (size[free[best]] < need || size[b] < size[free[best]]) {
				best = k
			}
		}
		var b int
		if best >= 0 {
			b = free[best]
			free = append(free[:best], free[best+1:]...)
			size[b] = max(size[b], need)
		} else {
			b = len(size)
			size = append(size, need)
		}
		p.bufOf[nd.Out] = b
		busyUntil[b] = last[nd.Out]
	}
	p.bufs = make([][]float32, len(size))
	for i, s := range size {
		p.bufs[i] = make([]float32, s)
	}
}

// buf returns the current storage of value v.
func (p *Plan) buf(v Value) []float32 {
	if p.bufOf[v] < 0 {
		return p.x
	}
	s := p.g.Shapes[v]
	if p.blk[v] {
		return p.bufs[p.bufOf[v]][:kernel.BlockedLen(s[0], s[1]*s[2])]
	}
	return p.bufs[p.bufOf[v]][:tensor.NumelOf(s)]
}

// Run computes the outputs of x: (N, C, H, W) flattened; the returned
// slice (N, output...) belongs to the plan.
func (p *Plan) Run(x []float32) ([]float32, error) {
	per := tensor.NumelOf(p.g.InputShape())
	if len(x) != p.N*per {
		return nil, fmt.Errorf("plan: input has %d values, want %d", len(x), p.N*per)
	}
	lanes := 1
	if p.Blocked && !p.Profile && p.N > 1 {
		lanes = min(p.N, kernel.Threads())
	}
	// Lanes, or on one thread one lane with a group run.
	if lanes > 1 || (p.N > 1 && p.Blocked && !p.Profile && p.tailStep() >= 0) {
		p.ensureLanes(lanes)
		p.runX, p.active = x, lanes
		p.sh.setWorkers(1)
		kernel.Parallel(lanes, lanes, p.laneFn)
		p.sh.setWorkers(0)
		p.runX = nil
		p.runHead()
		return p.out, nil
	}
	for i := 0; i < p.N; i++ {
		p.runImage(x, i, p.out)
	}
	p.x = nil
	p.runHead()
	if p.Profile {
		p.Runs++
	}
	return p.out, nil
}

// runImage runs image i of x through the steps and copies its output to
// out.
func (p *Plan) runImage(x []float32, i int, out []float32) {
	per := p.perIn()
	p.x = x[i*per : (i+1)*per]
	if p.Profile {
		if p.Times == nil {
			p.Times = make([]time.Duration, len(p.g.Nodes)-1)
		}
		for k, s := range p.steps {
			t0 := time.Now()
			s()
			p.Times[p.stepOf[k]] += time.Since(t0)
		}
	} else {
		for _, s := range p.steps {
			s()
		}
	}
	p.finishImage(i, out)
}

// perIn is the number of input values per image.
func (p *Plan) perIn() int { return tensor.NumelOf(p.g.InputShape()) }

// finishImage copies image i's output (or the head's input) out of the
// plan's buffers.
func (p *Plan) finishImage(i int, out []float32) {
	if p.head != nil {
		d := len(p.pooled) / p.N
		copy(p.pooled[i*d:(i+1)*d], p.in(p.head.In[0], false))
		return
	}
	outPer := len(out) / p.N
	copy(out[i*outPer:(i+1)*outPer], p.in(p.g.Output, false))
}

// lower returns the step that computes node nd.
func (p *Plan) lower(nd *Node) func() {
	g := p.g
	in, out := nd.In, nd.Out
	xs, ys := g.Shapes[in[0]], g.Shapes[out]
	if p.fuse.done[nd] {
		return func() {} // computed by the node before
	}
	if bs := p.lowerBlocked(nd); bs != nil {
		return bs
	}
	switch nd.Kind {
	case Conv:
		nd := p.conv(nd)
		if nd.Dilation == 1 && nd.K == nd.KW && nd.Pad == nd.PadW {
			c := kernel.Conv{InC: xs[0], InH: xs[1], InW: xs[2], OutC: ys[0], K: nd.K, Stride: nd.Stride, Pad: nd.Pad, Groups: nd.Groups}
			w, b := nd.ConvWeights()
			op := shareOp(p, nd, func() *kernel.ConvOp { return kernel.NewConvOpAct(c, w, b, kact(nd.Act)) }) // activation fused
			return func() { op.Run(p.in(in[0], false), p.buf(out)) }
		}
		if run := p.dilatedNCHW(nd, xs, ys); run != nil {
			return func() {
				y := p.buf(out)
				run(p.in(in[0], false), y)
				actF32(y, nd.Act)
			}
		}
		// Non-square: the reference loops (no kernel yet).
		p.Unplanned = append(p.Unplanned, nd.Name+" (dilated or non-square Conv)")
		return func() {
			y := p.buf(out)
			refConv(nd, p.in(in[0], false), xs, y, ys)
			actF32(y, nd.Act)
		}
	case Linear:
		d, o := xs[len(xs)-1], ys[len(ys)-1]
		if tensor.NumelOf(xs) > d { // many rows
			return p.lowerTransformer(nd)
		}
		w, b := nd.w, nd.b
		return func() {
			y := p.buf(out)
			kernel.Linear(d, o, p.in(in[0], false), w, b, y)
			actF32(y, nd.Act)
		}
	case Act:
		return func() {
			y, x := p.buf(out), p.in(in[0], false)
			if &y[0] != &x[0] {
				copy(y, x)
			}
			actF32(y, nd.Act)
		}
	case Add:
		return func() {
			x, z, y := p.in(in[0], false), p.in(in[1], false), p.buf(out)
			kernel.AddAct(kact(nd.Act), x, z, y)
		}
	case Concat:
		return func() {
			y := p.buf(out)
			at := 0
			for _, v := range in {
				at += copy(y[at:], p.in(v, false))
			}
		}
	case Shuffle:
		c, hw := xs[0], xs[1]*xs[2]
		per := c / nd.Groups
		return func() {
			x, y := p.in(in[0], false), p.buf(out)
			for gi := 0; gi < nd.Groups; gi++ {
				for j := 0; j < per; j++ {
					copy(y[(j*nd.Groups+gi)*hw:(j*nd.Groups+gi+1)*hw], x[(gi*per+j)*hw:(gi*per+j+1)*hw])
				}
			}
		}
	case Split:
		hw := tensor.NumelOf(xs[1:])
		return func() { copy(p.buf(out), p.in(in[0], false)[nd.From*hw:nd.To*hw]) }
	case MaxPool, AvgPool:
		return func() { pool32(nd, p.in(in[0], false), xs, p.buf(out), ys) }
	case GlobalAvgPool:
		return func() { kernel.GlobalAvgPool(xs[0], xs[1]*xs[2], p.in(in[0], false), p.buf(out)) }
	case SE:
		c, hw := xs[0], xs[1]*xs[2]
		mean, hid, gate := make([]float32, c), make([]float32, nd.Hidden), make([]float32, c)
		w1, b1, w2, b2 := p.seWeights(nd)
		return func() {
			x, y := p.in(in[0], false), p.buf(out)
			kernel.GlobalAvgPool(c, hw, x, mean)
			kernel.Linear(c, nd.Hidden, mean, w1, b1, hid)
			actF32(hid, nd.Act)
			kernel.Linear(nd.Hidden, c, hid, w2, b2, gate)
			actF32(gate, nd.Gate)
			kernel.ScaleChannels(c, hw, x, gate, y)
		}
	case Upsample:
		u := newUpsampler(nd, xs, ys, false)
		return func() { u.run(p.in(in[0], false), p.buf(out)) }
	case LayerNorm, Attention, Unfold, Fold:
		return p.lowerTransformer(nd)
	case DyReLU, DyShiftMax:
		sc := newDynScratch(nd, xs[0])
		return func() { dynamic32(nd, p.in(in[0], false), xs, p.buf(out), sc) }
	}
	// The reference implementation, through a value map of this plan's
	// buffers: correct, not fast, allocating.
	p.Unplanned = append(p.Unplanned, nd.Name+" ("+nd.Kind.String()+")")
	return func() {
		vals := make([][]float32, len(g.Shapes))
		for _, v := range in {
			vals[v] = p.in(v, false)
		}
		copy(p.buf(out), g.refNode(nd, vals))
	}
}

// dilatedNCHW runs a dilated convolution of an NCHW plan (the pure-Go
// kernels') on the blocked kernels that have one, converting its input and
// output (the NCHW GEMMs have no dilation); nil if none has it. The
// activation is left to the caller.
func (p *Plan) dilatedNCHW(nd *Node, xs, ys []int) func(x, y []float32) {
	if nd.Dilation == 1 || nd.K != nd.KW || nd.Pad != nd.PadW {
		return nil
	}
	c := p.kernelConv(nd)
	w, b := nd.ConvWeights()
	var run func(x, y []float32)
	switch {
	case kernel.DepthwiseDilatedOK(c, nd.Dilation):
		run = kernel.NewDepthwiseDilatedOp(c, nd.Dilation, w, b, false).Run
	case kernel.DenseBlockedOK(c, nd.Dilation):
		run = kernel.NewDenseOp(c, nd.Dilation, w, b, false).Run
	default:
		return nil
	}
	hw, ohw := xs[1]*xs[2], ys[1]*ys[2]
	xb, yb := make([]float32, kernel.BlockedLen(xs[0], hw)), make([]float32, kernel.BlockedLen(ys[0], ohw))
	return func(x, y []float32) {
		kernel.ToBlocked(xs[0], hw, x, xb)
		run(xb, yb)
		kernel.FromBlocked(ys[0], ohw, yb, y)
	}
}

// lowerBlocked returns the step of a node that works on blocked values, or
// nil.
func (p *Plan) lowerBlocked(nd *Node) func() {
	g := p.g
	in, out := nd.In, nd.Out
	xs, ys := g.Shapes[in[0]], g.Shapes[out]
	if nd.Kind == GlobalAvgPool && p.blk[in[0]] {
		return func() { kernel.BlockedAvgPoolLimit(xs[0], xs[1]*xs[2], p.buf(in[0]), p.buf(out), p.sh.limit) }
	}
	if !p.blk[out] {
		return nil
	}
	if blockedLayoutOp(nd.Kind) {
		return p.lowerBlockedLayout(nd)
	}
	post := nd.Act
	switch nd.Kind {
	case Conv:
		// The ops fuse the activation: ReLU in their stores, the others
		// applied to each tile right after it is stored.
		kind := p.convKindOf(nd)
		orig := nd // the fusions are by the graph's node
		nd := p.conv(nd)
		w, b := nd.ConvWeights()
		relu := nd.Act == ReLU
		if relu {
			post = None // in the stores
		}
		act := kact(nd.Act)
		c := p.kernelConv(nd)
		if d := p.fuse.stemDW[orig]; d != nil {
			dw, db := d.ConvWeights()
			op := shareOp(p, nd, func() *kernel.StemDWOp {
				return kernel.NewStemDWOp(c, w, b, relu, p.kernelConv(d), dw, db, d.Act == ReLU)
			})
			return func() { op.Run(p.in(in[0], false), p.buf(d.Out)) }
		}
		if kind == convStem {
			op := shareOp(p, nd, func() *kernel.StemOp { return kernel.NewStemOpAct(c, w, b, act) })
			return func() { op.Run(p.in(in[0], false), p.buf(out)) }
		}
		if kind == convDWDil {
			op := shareOp(p, nd, func() *kernel.DepthwiseDilatedOp { return kernel.NewDepthwiseDilatedOp(c, nd.Dilation, w, b, relu) })
			return func() {
				y := p.buf(out)
				op.Run(p.in(in[0], true), y)
				actF32(y, post)
			}
		}
		if kind == convDense {
			op := shareOp(p, nd, func() *kernel.DenseOp { return kernel.NewDenseOp(c, nd.Dilation, w, b, relu) })
			return func() {
				y := p.buf(out)
				op.Run(p.in(in[0], true), y)
				actF32(y, post)
			}
		}
		if kind == convPW {
			op := shareOp(p, nd, func() *kernel.PointwiseOp { return kernel.NewPointwiseOpAct(xs[0], ys[0], w, b, act) })
			op.After = p.fuse.seAfter[orig]
			hw := xs[1] * xs[2]
			return func() { op.Run(p.in(in[0], true), hw, p.buf(out)) }
		}
		op := shareOp(p, nd, func() *kernel.DepthwiseOp { return kernel.NewDepthwiseOpAct(c, w, b, act) })
		return func() { op.Run(p.in(in[0], true), p.buf(out)) }
	case Act:
		return func() {
			y, x := p.buf(out), p.buf(in[0])
			if &y[0] != &x[0] {
				copy(y, x)
			}
			actF32(y, post)
		}
	case Upsample:
		u := newUpsampler(nd, xs, ys, true)
		return func() { u.run(p.buf(in[0]), p.buf(out)) }
	case Add:
		return func() {
			x, z, y := p.buf(in[0]), p.buf(in[1]), p.buf(out)
			kernel.AddAct(kact(post), x, z, y) // padding: act(0+0) = 0
		}
	case SE:
		c, hw := xs[0], xs[1]*xs[2]
		mean, hid, gate := make([]float32, c), make([]float32, nd.Hidden), make([]float32, c)
		w1, b1, w2, b2 := p.seWeights(nd)
		fusedReLU := p.fuse.seReLU[nd]
		return func() {
			x, y := p.buf(in[0]), p.buf(out)
			kernel.BlockedAvgPoolLimit(c, hw, x, mean, p.sh.limit)
			kernel.LinearLimit(c, nd.Hidden, mean, w1, b1, hid, p.sh.limit)
			actF32(hid, nd.Act)
			kernel.LinearLimit(nd.Hidden, c, hid, w2, b2, gate, p.sh.limit)
			actF32(gate, nd.Gate)
			if fusedReLU {
				kernel.BlockedScaleReLULimit(c, hw, y, gate, p.sh.limit) // in place: y is x
				return
			}
			// y = x · gate per channel; the padding channels stay zero.
			kernel.BlockedScaleChannels(c, hw, x, gate, y)
		}
	}
	return nil
}

// kernelAct maps the graph's activations to the kernels'.
var kernelAct = [...]kernel.Activation{
	None: kernel.ActNone, ReLU: kernel.ActReLU, ReLU6: kernel.ActReLU6,
	HardSwish: kernel.ActHardSwish, HardSigmoid: kernel.ActHardSigmoid,
	SiLU: kernel.ActSiLU, GELU: kernel.ActGELU, Sigmoid: kernel.ActSigmoid,
}

// kact is the kernels' activation of a, with the bfloat16 rounding.
func kact(a Activation) kernel.Activation {
	k := kernelAct[a.Base()]
	if a&BF16 != 0 {
		k |= kernel.ActBF16
	}
	return k
}

// actF32 applies a in place in float32 with the kernels' vector
// activations (the same functions as act64, within a few float32
// roundings), split over kernel.Threads() for large maps.
func actF32(x []float32, a Activation) {
	kernel.Activate(kact(a), x)
}

// pool32 is max or average pooling in float32 (average over K², padding
// counted, as PyTorch's count_include_pad=True).
func pool32(n *Node, x []float32, xs []int, out []float32, ys []int) {
	h, w, oh, ow := xs[1], xs[2], ys[1], ys[2]
	inv := 1 / float32(n.K*n.K)
	for c := 0; c < xs[0]; c++ {
		xc := x[c*h*w : (c+1)*h*w]
		for oy := 0; oy < oh; oy++ {
			y0, y1 := max(oy*n.Stride-n.Pad, 0), min(oy*n.Stride-n.Pad+n.K, h)
			for ox := 0; ox < ow; ox++ {
				x0, x1 := max(ox*n.Stride-n.Pad, 0), min(ox*n.Stride-n.Pad+n.K, w)
				if n.Kind == MaxPool {
					m := xc[y0*w+x0]
					for iy := y0; iy < y1; iy++ {
						for _, v := range xc[iy*w+x0 : iy*w+x1] {
							m = max(m, v)
						}
					}
					out[(c*oh+oy)*ow+ox] = m
				} else {
					var s float32
					for iy := y0; iy < y1; iy++ {
						for _, v := range xc[iy*w+x0 : iy*w+x1] {
							s += v
						}
					}
					out[(c*oh+oy)*ow+ox] = s * inv
				}
			}
		}
	}
}

// dynamic32 is DyReLU or DyShiftMax with the coefficients computed as the
// reference does (dynTheta) and applied in float32, channel by channel.
func dynamic32(n *Node, x []float32, xs []int, out []float32, sc *dynScratch) {
	c, hw := xs[0], xs[1]*xs[2]
	dynTheta(n, x, c, hw, sc)
	th := sc.theta
	if n.Kind == DyReLU {
		for ch := 0; ch < c; ch++ {
			t := th[:4]
			if n.PerChannel {
				t = th[ch*4 : ch*4+4]
			}
			a0, a1, b0, b1 := float32(1+t[0]), float32(t[1]), float32(0.5*t[2]), float32(0.5*t[3])
			xr, yr := x[ch*hw:(ch+1)*hw], out[ch*hw:(ch+1)*hw]
			for i, v := range xr {
				yr[i] = max(a0*v+b0, a1*v+b1)
			}
		}
		return
	}
	step := c / n.Groups
	for ch := 0; ch < c; ch++ {
		a00, a01 := float32(1+th[ch]), float32(th[c+ch])
		a10, a11 := float32(th[2*c+ch]), float32(th[3*c+ch])
		xr, sr := x[ch*hw:(ch+1)*hw], x[((ch+step)%c)*hw:((ch+step)%c+1)*hw]
		yr := out[ch*hw : (ch+1)*hw]
		for i, v := range xr {
			w := sr[i]
			yr[i] = max(a00*v+a01*w, a10*v+a11*w)
		}
	}
}
