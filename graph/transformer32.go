package graph

import (
	"math"
	"runtime"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/tensor"
)

// The transformer operators of the planner in float32 (MobileViT's blocks):
// Attention through the packed GEMM and kernel.Softmax, LayerNorm with the
// vector sums of the kernels, Unfold and Fold as tiled transposes, Linear
// over many rows in row blocks. Each is an op made once at
// plan time with its scratch, whose run allocates nothing and spreads its
// work over kernel.Threads() through kernel.Parallel with a func stored in
// the op; the float64 loops of ref.go stay the oracle they are tested
// against.

// transformerOp is one of this file's ops.
type transformerOp interface {
	// run computes y from x (the node's input and output values).
	run(x, y []float32)
	// workersCap returns the address of the op's Workers field.
	workersCap() *int
}

func (op *attnOp) workersCap() *int      { return &op.Workers }
func (op *layerNormOp) workersCap() *int { return &op.Workers }
func (op *patchOp) workersCap() *int     { return &op.Workers }
func (op *linearOp) workersCap() *int    { return &op.Workers }

// lowerTransformer returns the step of node nd: LayerNorm, Attention,
// Unfold, Fold, or Linear over more than one row.
func (p *Plan) lowerTransformer(nd *Node) func() {
	xs, ys := p.g.Shapes[nd.In[0]], p.g.Shapes[nd.Out]
	var op transformerOp
	switch nd.Kind {
	case LayerNorm:
		op = newLayerNormOp(nd, xs)
	case Attention:
		op = newAttnOp(nd, xs)
	case Unfold:
		op = newPatchOp(false, xs, nd.Patch)
	case Fold:
		op = newPatchOp(true, ys, nd.Patch)
	case Linear:
		op = newLinearOp(nd, xs, ys)
	default:
		panic("graph: no float32 transformer op for " + nd.Kind.String())
	}
	// A plan running images in lanes caps it at 1 for the run (lanes.go).
	p.sh.workers = append(p.sh.workers, op.workersCap())
	in, out := nd.In[0], nd.Out
	return func() { op.run(p.in(in, false), p.buf(out)) }
}

// minParallel is the number of multiply-adds (or elements moved) below
// which an op runs on the calling goroutine only (as the kernels' own
// threshold: a parallel pass costs a few microseconds).
var minParallel = 1 << 16

// workers returns how many chunks to cut tasks into for work units of
// work: 1 below minParallel, else up to kernel.Threads(), limit (the
// op's scratch slots) and wcap (the op's Workers field; 0: no cap).
func workers(tasks, work, limit, wcap int) int {
	if work < minParallel {
		return 1
	}
	if wcap > 0 {
		limit = min(limit, wcap)
	}
	return max(1, min(tasks, kernel.Threads(), limit))
}

// planSlots is how many per-worker scratch buffers an op keeps: one per
// thread the kernels may use when the plan is made (after a later
// SetThreads above it, the op runs on that many), no more than its tasks.
func planSlots(tasks int) int {
	return max(1, min(tasks, max(kernel.Threads(), runtime.GOMAXPROCS(0))))
}

// attnOp is multi-head self-attention in float32 on qkv (G, T, 3D) →
// (G, T, D). For each group and head (a task), on the head's columns of
// the qkv rows in place (no copies of q, k or v):
//
//	S = Q·Kᵀ              (T, T)   kernel.GemmStrided, Kᵀ read transposed
//	P = softmax(S/√(D/H)) rows     kernel.Softmax: max subtracted, vector exp
//	O = P·V               (T, D/H) written into the head's output columns
//
// The tasks are cut into one contiguous chunk per worker, each with its
// own (T, T) scratch for S. (Blocks of 48 query rows as tasks, with a
// smaller scratch, measured a quarter slower at T = 196: K and V are
// packed once per block.)
type attnOp struct {
	g, t, d, heads, hd int
	scale              float32
	slots              [][]float32 // by chunk: (T, T)
	x, y               []float32   // the current run's input and output
	chunks             int         // of the current run
	chunk              func(c int) // stored: Parallel allocates nothing
	// Workers caps the goroutines of a run (0: kernel.Threads()), as
	// the Workers field of the kernels' ops.
	Workers int
}

func newAttnOp(n *Node, xs []int) *attnOp {
	op := &attnOp{g: xs[0], t: xs[1], d: xs[2] / 3, heads: n.Heads}
	op.hd = op.d / op.heads
	op.scale = float32(1 / math.Sqrt(float64(op.hd)))
	op.slots = make([][]float32, planSlots(op.g*op.heads))
	for i := range op.slots {
		op.slots[i] = make([]float32, op.t*op.t)
	}
	op.chunk = op.runChunk
	return op
}

// run computes y (G, T, D) from x (G, T, 3D).
func (op *attnOp) run(x, y []float32) {
	tasks := op.g * op.heads
	op.x, op.y = x, y
	op.chunks = workers(tasks, 2*tasks*op.t*op.t*op.hd, len(op.slots), op.Workers)
	kernel.Parallel(op.chunks, op.chunks, op.chunk)
	op.x, op.y = nil, nil
}

// runChunk computes the tasks of chunk c with scratch slot c.
func (op *attnOp) runChunk(c int) {
	tasks := op.g * op.heads
	s := op.slots[c]
	for task := c * tasks / op.chunks; task < (c+1)*tasks/op.chunks; task++ {
		op.head(task/op.heads, task%op.heads, s)
	}
}

// head computes head h of group gi with s (T, T) as scratch.
func (op *attnOp) head(gi, h int, s []float32) {
	t, d, hd := op.t, op.d, op.hd
	d3 := 3 * d
	base := op.x[gi*t*d3 : (gi+1)*t*d3]
	q, k, v := base[h*hd:], base[d+h*hd:], base[2*d+h*hd:]
	kernel.GemmStrided(t, t, hd, q, d3, k, d3, true, s, t, false, 1)
	for i := 0; i < t; i++ {
		kernel.Softmax(s[i*t:(i+1)*t], op.scale)
	}
	kernel.GemmStrided(t, hd, t, s, t, v, d3, false, op.y[gi*t*d+h*hd:], d, false, 1)
}

// layerNormOp normalises the rows of D values of x (..., D) in float32:
// mean and variance from two vector passes of kernel.SumSq (float32 lanes
// summed in float64; the second pass around the first's mean m0, so no
// cancellation), then the affine y = ((x − m0) − (mean − m0))·inv·γ + β in
// one pass. Rows are cut into
// one chunk per worker.
type layerNormOp struct {
	rows, d     int
	eps         float64
	gamma, beta []float32
	x, y        []float32
	chunks      int
	chunk       func(c int)
	// Workers caps the goroutines of a run (0: kernel.Threads()), as
	// the Workers field of the kernels' ops.
	Workers   int
	maxChunks int
}

func newLayerNormOp(n *Node, xs []int) *layerNormOp {
	d := xs[len(xs)-1]
	op := &layerNormOp{rows: tensor.NumelOf(xs) / d, d: d, eps: n.Eps, gamma: n.Tensors[0].Data, beta: n.Tensors[1].Data}
	op.maxChunks = planSlots(op.rows)
	op.chunk = op.runChunk
	return op
}

func (op *layerNormOp) run(x, y []float32) {
	op.x, op.y = x, y
	op.chunks = workers(op.rows, 4*op.rows*op.d, op.maxChunks, op.Workers)
	kernel.Parallel(op.chunks, op.chunks, op.chunk)
	op.x, op.y = nil, nil
}

func (op *layerNormOp) runChunk(c int) {
	d := op.d
	gamma, beta := op.gamma[:d], op.beta[:d]
	for r := c * op.rows / op.chunks; r < (c+1)*op.rows/op.chunks; r++ {
		row, out := op.x[r*d:(r+1)*d], op.y[r*d:(r+1)*d]
		s, _ := kernel.SumSq(row, 0)
		m0 := float32(s / float64(d))
		s, sq := kernel.SumSq(row, m0)
		mc := s / float64(d) // mean − m0
		v := max(sq/float64(d)-mc*mc, 0)
		inv := float32(1 / math.Sqrt(v+op.eps))
		// x − m0 is exact for x near m0 (Sterbenz); the mean's residual
		// goes in apart, so a row far from zero keeps its spread's digits.
		mc32 := float32(mc)
		for k, xv := range row {
			out[k] = ((xv-m0)-mc32)*inv*gamma[k] + beta[k]
		}
	}
}

// patchOp is Unfold ((C, H, W) → (P·P, N, C), N = H·W/P²; patch pixel
// (py, px) of patch (i, j) is row py·P+px, column i·(W/P)+j) or Fold, its
// inverse. Each is a transpose of channels and pixels: tokens are
// contiguous runs of C values, map rows contiguous runs of W, and nothing
// longer is contiguous on both sides. It is tiled by 8 channels: each map
// row of 8 channels is read along W while every token it meets gets 8
// adjacent values (one 32-byte run instead of 8 scattered stores), and the
// pixel → token offsets of a map row come from a table made at plan time
// instead of divisions. The tiles of 8 channels are cut into one chunk per
// worker.
type patchOp struct {
	fold       bool
	c, h, w, p int
	// tok[y·W + x] is the offset of pixel (y, x)'s token in the (P·P, N, C)
	// layout, in units of C.
	tok    []int32
	x, y   []float32
	chunks int
	chunk  func(c int)
	// Workers caps the goroutines of a run (0: kernel.Threads()), as
	// the Workers field of the kernels' ops.
	Workers   int
	maxChunks int
}

const patchTile = 8

// newPatchOp makes Unfold (fold false) of the map shape cs = (C, H, W), or
// Fold back to it.
func newPatchOp(fold bool, cs []int, p int) *patchOp {
	op := &patchOp{fold: fold, c: cs[0], h: cs[1], w: cs[2], p: p}
	np := op.h * op.w / (p * p)
	op.tok = make([]int32, op.h*op.w)
	for y := 0; y < op.h; y++ {
		for x := 0; x < op.w; x++ {
			op.tok[y*op.w+x] = int32(((y%p)*p+x%p)*np + (y/p)*(op.w/p) + x/p)
		}
	}
	op.maxChunks = planSlots(ceilDiv(op.c, patchTile))
	op.chunk = op.runChunk
	return op
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func (op *patchOp) run(x, y []float32) {
	op.x, op.y = x, y
	tiles := ceilDiv(op.c, patchTile)
	op.chunks = workers(tiles, op.c*op.h*op.w, op.maxChunks, op.Workers)
	kernel.Parallel(op.chunks, op.chunks, op.chunk)
	op.x, op.y = nil, nil
}

func (op *patchOp) runChunk(ck int) {
	tiles := ceilDiv(op.c, patchTile)
	for tl := ck * tiles / op.chunks; tl < (ck+1)*tiles/op.chunks; tl++ {
		c0 := tl * patchTile
		if op.c-c0 >= patchTile {
			op.tile8(c0)
		} else {
			op.tileN(c0, op.c-c0)
		}
	}
}

// tile8 moves channels [c0, c0+8).
func (op *patchOp) tile8(c0 int) {
	c, hw, w := op.c, op.h*op.w, op.w
	m := op.x
	if op.fold {
		m = op.y
	}
	for yy := 0; yy < op.h; yy++ {
		o := c0*hw + yy*w
		r0, r1, r2, r3 := m[o:o+w], m[o+hw:o+hw+w], m[o+2*hw:o+2*hw+w], m[o+3*hw:o+3*hw+w]
		o += 4 * hw
		r4, r5, r6, r7 := m[o:o+w], m[o+hw:o+hw+w], m[o+2*hw:o+2*hw+w], m[o+3*hw:o+3*hw+w]
		tok := op.tok[yy*w : (yy+1)*w]
		if op.fold {
			for x, tk := range tok {
				t := op.x[int(tk)*c+c0 : int(tk)*c+c0+patchTile : int(tk)*c+c0+patchTile]
				r0[x], r1[x], r2[x], r3[x] = t[0], t[1], t[2], t[3]
				r4[x], r5[x], r6[x], r7[x] = t[4], t[5], t[6], t[7]
			}
			continue
		}
		for x, tk := range tok {
			t := op.y[int(tk)*c+c0 : int(tk)*c+c0+patchTile : int(tk)*c+c0+patchTile]
			t[0], t[1], t[2], t[3] = r0[x], r1[x], r2[x], r3[x]
			t[4], t[5], t[6], t[7] = r4[x], r5[x], r6[x], r7[x]
		}
	}
}

// tileN moves channels [c0, c0+n), n < 8, one at a time.
func (op *patchOp) tileN(c0, n int) {
	c, hw, w := op.c, op.h*op.w, op.w
	for ch := c0; ch < c0+n; ch++ {
		for yy := 0; yy < op.h; yy++ {
			o := ch*hw + yy*w
			tok := op.tok[yy*w : (yy+1)*w]
			if op.fold {
				row := op.y[o : o+w]
				for x, tk := range tok {
					row[x] = op.x[int(tk)*c+ch]
				}
				continue
			}
			row := op.x[o : o+w]
			for x, tk := range tok {
				op.y[int(tk)*c+ch] = row[x]
			}
		}
	}
}

// linearOp is Linear over many rows, x (R, In) → (R, Out): the rows cut
// into one chunk per worker, each chunk in blocks of up to linearBlock rows
// whose product x·Wᵀ (kernel.GemmStrided, W read transposed while packing)
// gets its bias and activation while it is still in cache.
type linearOp struct {
	rows, in, out int
	w, b          []float32
	act           Activation
	x, y          []float32
	chunks        int
	chunk         func(c int)
	// Workers caps the goroutines of a run (0: kernel.Threads()), as
	// the Workers field of the kernels' ops.
	Workers   int
	maxChunks int
}

// linearBlock is the most rows of a block: the packed GEMM's own row
// tile with AVX-512 (so W is packed no more often than in one GEMM of all
// the rows), and a product of 192 rows by a few hundred outputs stays in
// L2 for the bias and activation pass.
const linearBlock = 192

func newLinearOp(n *Node, xs, ys []int) *linearOp {
	op := &linearOp{in: xs[len(xs)-1], out: ys[len(ys)-1], w: n.w, b: n.b, act: n.Act}
	op.rows = tensor.NumelOf(xs) / op.in
	op.maxChunks = planSlots(ceilDiv(op.rows, linearBlock))
	op.chunk = op.runChunk
	return op
}

func (op *linearOp) run(x, y []float32) {
	op.x, op.y = x, y
	op.chunks = workers(ceilDiv(op.rows, linearBlock), op.rows*op.in*op.out, op.maxChunks, op.Workers)
	kernel.Parallel(op.chunks, op.chunks, op.chunk)
	op.x, op.y = nil, nil
}

func (op *linearOp) runChunk(c int) {
	in, out := op.in, op.out
	r0, r1 := c*op.rows/op.chunks, (c+1)*op.rows/op.chunks
	// equal blocks, whole micro-tiles of 12 (AVX-512), 6 (AVX2) or 4 rows
	per := (ceilDiv(r1-r0, ceilDiv(r1-r0, linearBlock)) + 11) / 12 * 12
	for r := r0; r < r1; r += per {
		n := min(per, r1-r)
		y := op.y[r*out : (r+n)*out]
		kernel.GemmStrided(n, out, in, op.x[r*in:], in, op.w, in, true, y, out, false, 1)
		if op.b != nil {
			for i := 0; i < n; i++ {
				kernel.Add(op.b, y[i*out:(i+1)*out])
			}
		}
		actF32(y, op.act)
	}
}
