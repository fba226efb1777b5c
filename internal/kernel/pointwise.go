package kernel

import (
	"os"
	"strconv"
	"sync"
	"unsafe"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// Pointwise (1×1, stride 1, groups 1) convolution on blocked activations
// (NCHW16c, see blocked.go).
//
// It is a GEMM with the pixels as rows and the output channels as columns:
// out(hw, cout) = x(hw, cin) · Wᵀ(cin, cout). The micro-kernel (pwKernel)
// computes a tile of up to r pixels × nb output blocks of 16 channels:
// for every input channel it broadcasts that channel of each pixel (read in
// place from the blocked input: no packing at run time) and multiplies it by
// nb weight vectors of a panel packed once by NewPointwiseOp. The weight
// panels are cut along the input channels into chunks of kcb blocks that
// stay in L1 while the tiles of a pixel range go by; later chunks add to
// the partial sums in out, and the last one adds the bias and applies ReLU.

// pwKernel computes one tile of R pixels × NB output blocks (R and NB fixed
// per kernel) over kb input blocks; see pwTileGo for the exact loop.
type pwKernel func(x, w, out, bias []float32, kb, xstride, ostride int, flags uint)

// Epilogue flags of pwKernel (same bits as the GEMM micro-kernels).
const (
	pwAcc  = 1 // add the old out
	pwBias = 2 // add bias
	pwReLU = 4 // max(·, 0)
)

// pwMaxR and pwMaxNB bound the tile of every level.
const (
	pwMaxR  = 6
	pwMaxNB = 4
)

// pwImpl is the pointwise kernel set of one implementation level.
type pwImpl struct {
	level cpu.Level
	r, nb int // full tile: r pixels × nb output blocks
	kcb   int // input blocks per weight-panel chunk (panel chunk in L1)
	chunk int // bytes of input per pixel chunk (see chunkBytes)
	// kern[rows][nb] is the kernel for a tile of rows pixels and nb
	// output blocks, 1 ≤ rows ≤ r, 1 ≤ nb ≤ the level's nb.
	kern [pwMaxR + 1][pwMaxNB + 1]pwKernel
}

// pwTileGo is the portable twin of the assembly kernels pw<ISA>x<R>x<NB>
// with R = rows, NB = nb. It computes, for p < rows, v < nb, l < 16:
//
//	s := Σ_{k<kb, j<16} x[k*xstride + p*16 + j] · w[((k*16+j)*nb + v)*16 + l]
//	if flags&pwAcc != 0 { s += out[v*ostride + p*16 + l] }
//	if flags&pwBias != 0 { s += bias[v*16 + l] }
//	if flags&pwReLU != 0 { s = max(s, 0) }
//	out[v*ostride + p*16 + l] = s
//
// (the assembly sums in a different order, with FMAs).
func pwTileGo(rows, nb int, x, w, out, bias []float32, kb, xstride, ostride int, flags uint) {
	ws := nb * BlockC // weight row (one input channel) length
	for p := 0; p < rows; p++ {
		if p+4 <= rows {
			// Four pixels at a time share the weight loads.
			pwQuadGo(p, nb, x, w, out, bias, kb, xstride, ostride, flags)
			p += 3
			continue
		}
		for v := 0; v < nb; v++ {
			dst := out[v*ostride+p*BlockC : v*ostride+p*BlockC+BlockC]
			// Two halves of 8 lanes: 8 accumulators stay in registers.
			for h := 0; h < BlockC; h += 8 {
				var a0, a1, a2, a3, a4, a5, a6, a7 float32
				for k := 0; k < kb; k++ {
					xr := (*[BlockC]float32)(x[k*xstride+p*BlockC:])
					wk := w[k*BlockC*ws+v*BlockC+h:]
					for j, xv := range xr {
						wr := (*[8]float32)(wk[j*ws:])
						a0 += xv * wr[0]
						a1 += xv * wr[1]
						a2 += xv * wr[2]
						a3 += xv * wr[3]
						a4 += xv * wr[4]
						a5 += xv * wr[5]
						a6 += xv * wr[6]
						a7 += xv * wr[7]
					}
				}
				pwStore8(dst[h:], [8]float32{a0, a1, a2, a3, a4, a5, a6, a7}, bias, v*BlockC+h, flags)
			}
		}
	}
}

// pwStore8 applies the epilogue of pwTileGo to 8 lanes and stores them to
// d; b0 is their offset in bias.
func pwStore8(dst []float32, acc [8]float32, bias []float32, b0 int, flags uint) {
	d := (*[8]float32)(dst)
	if flags&pwAcc != 0 {
		for l := range acc {
			acc[l] += d[l]
		}
	}
	if flags&pwBias != 0 {
		b := (*[8]float32)(bias[b0:])
		for l := range acc {
			acc[l] += b[l]
		}
	}
	if flags&pwReLU != 0 {
		for l := range acc {
			acc[l] = max(acc[l], 0)
		}
	}
	*d = acc
}

// pwQuadGo computes pixels p..p+3 of pwTileGo, 8 output lanes at a time
// (a 4×8 register block as in microKernel: the accumulators live in a
// stack array, which the compiler schedules better than 32 locals).
func pwQuadGo(p, nb int, x, w, out, bias []float32, kb, xstride, ostride int, flags uint) {
	ws := nb * BlockC
	for v := 0; v < nb; v++ {
		for h := 0; h < BlockC; h += 8 {
			var acc [32]float32
			for k := 0; k < kb; k++ {
				xq := (*[4 * BlockC]float32)(x[k*xstride+p*BlockC:])
				wk := w[k*BlockC*ws+v*BlockC+h:]
				for j := 0; j < BlockC; j++ {
					wr := (*[8]float32)(wk[j*ws:])
					b0, b1, b2, b3 := wr[0], wr[1], wr[2], wr[3]
					b4, b5, b6, b7 := wr[4], wr[5], wr[6], wr[7]
					a0 := xq[0*BlockC+j]
					acc[0] += a0 * b0
					acc[1] += a0 * b1
					acc[2] += a0 * b2
					acc[3] += a0 * b3
					acc[4] += a0 * b4
					acc[5] += a0 * b5
					acc[6] += a0 * b6
					acc[7] += a0 * b7
					a1 := xq[1*BlockC+j]
					acc[8] += a1 * b0
					acc[9] += a1 * b1
					acc[10] += a1 * b2
					acc[11] += a1 * b3
					acc[12] += a1 * b4
					acc[13] += a1 * b5
					acc[14] += a1 * b6
					acc[15] += a1 * b7
					a2 := xq[2*BlockC+j]
					acc[16] += a2 * b0
					acc[17] += a2 * b1
					acc[18] += a2 * b2
					acc[19] += a2 * b3
					acc[20] += a2 * b4
					acc[21] += a2 * b5
					acc[22] += a2 * b6
					acc[23] += a2 * b7
					a3 := xq[3*BlockC+j]
					acc[24] += a3 * b0
					acc[25] += a3 * b1
					acc[26] += a3 * b2
					acc[27] += a3 * b3
					acc[28] += a3 * b4
					acc[29] += a3 * b5
					acc[30] += a3 * b6
					acc[31] += a3 * b7
				}
			}
			for q := 0; q < 4; q++ {
				o := v*ostride + (p+q)*BlockC + h
				pwStore8(out[o:o+8], [8]float32(acc[q*8:]), bias, v*BlockC+h, flags)
			}
		}
	}
}

// pwGoKernel returns pwTileGo for a fixed tile as a pwKernel.
func pwGoKernel(rows, nb int) pwKernel {
	return func(x, w, out, bias []float32, kb, xstride, ostride int, flags uint) {
		pwTileGo(rows, nb, x, w, out, bias, kb, xstride, ostride, flags)
	}
}

// pwGoKernels fills kern with pwTileGo for every tile shape.
func pwGoKernels() (kern [pwMaxR + 1][pwMaxNB + 1]pwKernel) {
	for r := 1; r <= pwMaxR; r++ {
		for nb := 1; nb <= pwMaxNB; nb++ {
			kern[r][nb] = pwGoKernel(r, nb)
		}
	}
	return kern
}

var pwPureGo = &pwImpl{level: cpu.PureGo, r: 4, nb: 1, kcb: 16, chunk: 256 << 10, kern: pwGoKernels()}

// pwKernels are this family's kernels by level (see levelSet).
var pwKernels = newLevelSet(pwPureGo, pwAsm[:])

// PointwiseOp is a 1×1 stride-1 convolution (groups 1) on blocked
// activations with bias and an activation fused: ReLU in the kernels'
// stores, any other one (see NewPointwiseOpAct) applied to each stretch of
// output a task has just finished (actPieceValues at a time, still in
// cache), instead of in a second pass over the whole map.
type PointwiseOp struct {
	// Workers, if > 0, caps the goroutines Run uses (never more than
	// Threads()); 0 means Threads(). Set it only while no Run is in flight.
	Workers int
	// After, if set, is data the ops after this one read from memory (a
	// squeeze-excitation's weights): it is prefetched into L2 while the
	// last group of output channels runs. Set it only while no Run is in
	// flight.
	After []float32

	cin, cout int
	cib, cob  int // input and output blocks
	relu      bool
	post      Activation // applied after the stores (not ReLU: relu)
	act       *actImpl
	im        *pwImpl
	// w holds the weights packed for im: output blocks in groups of im.nb
	// (the last group may be narrower), group of output blocks [ob0,
	// ob0+nb) at w[ob0*16*cib*16:], laid out [cib*16][nb*16]; padding
	// rows and columns are zero.
	w    []float32
	bias []float32 // cob*16, zero padded; nil without bias
	runs sync.Pool // *pwRun
}

// pwRun is the state of one Run and the task closure bound to it, allocated
// once and recycled through PointwiseOp.runs.
type pwRun struct {
	op     *PointwiseOp
	x, out [1][]float32 // the image, as groups takes it
	hw     int
	// Task grid: pixel chunks of pcTiles tiles × group chunks of gcGroups
	// weight groups; task t is pixel chunk t/nGC, group chunk t%nGC.
	pcTiles, gcGroups, nGC int
	// nPC pixel chunks over nTiles tiles; chunk pc covers tiles
	// [pc·nTiles/nPC, (pc+1)·nTiles/nPC), so chunk sizes differ by at
	// most one tile.
	nPC, nTiles int
	fn          func(s *scratch, t int)
}

// NewPointwiseOp packs the weights w (cout, cin) row-major and bias (cout,
// or nil) of a pointwise convolution, fusing ReLU if relu, for the kernel
// level selected at start-up. w and bias are not retained.
func NewPointwiseOp(cin, cout int, w, bias []float32, relu bool) *PointwiseOp {
	return NewPointwiseOpAct(cin, cout, w, bias, reluAct(relu))
}

// NewPointwiseOpAct is NewPointwiseOp fusing activation a.
func NewPointwiseOpAct(cin, cout int, w, bias []float32, a Activation) *PointwiseOp {
	checkAct(a)
	cin, cout = max(cin, 0), max(cout, 0)
	im := pwKernels.active
	relu, post := splitAct(a)
	op := &PointwiseOp{
		cin: cin, cout: cout,
		cib: Blocks(cin), cob: Blocks(cout),
		relu: relu, post: post, act: actKernels.active, im: im,
	}
	w = w[:cin*cout]
	kdim := op.cib * BlockC
	op.w = pwAligned(op.cob * BlockC * kdim)
	for ob0 := 0; ob0 < op.cob; ob0 += im.nb {
		nb := min(im.nb, op.cob-ob0)
		panel := op.w[ob0*BlockC*kdim : (ob0+nb)*BlockC*kdim]
		for o := ob0 * BlockC; o < min(cout, (ob0+nb)*BlockC); o++ {
			col := o - ob0*BlockC
			row := w[o*cin : (o+1)*cin]
			for i, v := range row {
				panel[i*nb*BlockC+col] = v
			}
		}
	}
	if bias != nil {
		op.bias = pwAligned(op.cob * BlockC)
		copy(op.bias, bias[:cout])
	}
	op.runs.New = func() any {
		r := new(pwRun)
		r.fn = func(_ *scratch, t int) { r.task(t) }
		return r
	}
	return op
}

// pwAligned returns a zeroed slice of n floats starting on a 64-byte
// boundary, so that no weight vector load splits a cache line.
func pwAligned(n int) []float32 {
	buf := make([]float32, n+BlockC)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf))) % 64 / 4)
	return buf[off : off+n : off+n]
}

// pwPrefetch turns on software prefetching of the next weight chunk.
var pwPrefetch = os.Getenv("MOBILEONE_PWPREFETCH") != "0"

// pwPrefetchL2 turns on software prefetching of the next weight group into
// L2 (MOBILEONE_PWPREFETCHL2=0 turns it off).
var pwPrefetchL2 = os.Getenv("MOBILEONE_PWPREFETCHL2") != "0"

// l2Ahead returns what to prefetch into L2 while the group before g runs,
// with how many lines per tile get through it in tiles tiles: the weights
// of group g if g < end and the layer's weights are more than half the L2,
// op.After if g is past the layer's last group and last says this task has
// the last pixels (nil if L2 prefetching is off).
func (op *PointwiseOp) l2Ahead(g, end, tiles int, last bool) ([]float32, int) {
	if !pwPrefetchL2 {
		return nil, 0
	}
	if g >= end {
		if g < ceilDiv(op.cob, op.im.nb) || !last || len(op.After) == 0 {
			return nil, 0
		}
		return op.After, ceilDiv(ceilDiv(len(op.After), 16), max(tiles, 1))
	}
	if l2 := cpu.L2Bytes; l2 > 0 && 4*len(op.w) <= l2/2 {
		// The weights stay in L2 from run to run (S0's 1×1 layers, up
		// to 1 MB): prefetching them is only overhead.
		return nil, 0
	}
	kdim := op.cib * BlockC
	ob0 := g * op.im.nb
	nb := min(op.im.nb, op.cob-ob0)
	w := op.w[ob0*BlockC*kdim : (ob0+nb)*BlockC*kdim]
	return w, ceilDiv(ceilDiv(len(w), 16), max(tiles, 1))
}

// pwMinTaskWork is the least work (multiply-adds) worth a parallel task.
const pwMinTaskWork = 1 << 17

// pwTasksPerWorker is how many tasks per worker a parallel Run aims for.
const pwTasksPerWorker = 4

// pwChunkOverride, if set (MOBILEONE_PWCHUNK=KiB), replaces every level's
// chunkBytes (for tuning on other machines).
var pwChunkOverride = func() int {
	if v, err := strconv.Atoi(os.Getenv("MOBILEONE_PWCHUNK")); err == nil && v > 0 {
		return v << 10
	}
	return 0
}()

// chunkBytes bounds the input read by one pixel chunk, so that it stays in
// L2 while every weight group goes by (each chunk streams all the weights
// of its groups once). AVX-512 takes half the L2 the OS reports when that is
// more than its default (measured on a 2 MiB-L2 Xeon, alternating runs: S4
// at batch 8 on one thread 3–4 % faster with 1024 KiB than with 640, S3
// level; 768–2048 KiB within noise of each other), up to pwChunkMax, when
// one worker runs the layer (batch 1 on one thread, and each lane of a
// batch); split across workers (batch-1 latency on two threads) it kept the
// default, which measured level or better there.
func (im *pwImpl) chunkBytes(workers int) int {
	if pwChunkOverride > 0 {
		return pwChunkOverride
	}
	if im.level == cpu.AVX512 && workers <= 1 {
		return pwChunkFor(im.chunk, cpu.L2Bytes)
	}
	return im.chunk
}

// pwChunkMax caps the L2-derived chunk size.
const pwChunkMax = 2 << 20

// pwChunkFor is the pixel-chunk size for a level whose default is def on a
// core with l2 bytes of L2 (0 if unknown).
func pwChunkFor(def, l2 int) int {
	return max(def, min(l2/2, pwChunkMax))
}

// Run computes out = act(conv1×1(x) + bias), act the fused activation.
//
//	x:   BlockedLen(cin, hw) floats
//	out: BlockedLen(cout, hw) floats; padding channels are written as 0.
//
// Run may be called concurrently on different buffers; it allocates
// nothing in steady state and uses up to Threads() workers.
func (op *PointwiseOp) Run(x []float32, hw int, out []float32) {
	if hw <= 0 || op.cob == 0 {
		return
	}
	x = x[:BlockedLen(op.cin, hw)]
	out = out[:BlockedLen(op.cout, hw)]
	if op.cib == 0 {
		op.biasOnly(hw, out)
		return
	}
	im := op.im
	nTiles := ceilDiv(hw, im.r)
	nGroups := ceilDiv(op.cob, im.nb)
	kdim := op.cib * BlockC
	tileWork := im.r * im.nb * BlockC * kdim // per tile and group

	// Serial layout: pixel chunks whose input fits im.chunkBytes(workers), all
	// groups per task.
	work := hw * kdim * op.cob * BlockC
	workers := workersForLimit(nTiles*nGroups, work, op.Workers)
	pcTiles := max(1, im.chunkBytes(workers)/(4*kdim*im.r))
	pcTiles = min(pcTiles, nTiles)
	gcGroups := nGroups
	if workers > 1 {
		// About four tasks per worker (dynamic hand-out balances them),
		// none smaller than pwMinTaskWork: split the groups first when the
		// weights outweigh the input (each pixel chunk reads all weights of
		// its groups), else the pixels.
		target := pwTasksPerWorker * workers
		maxTasks := max(1, (nTiles*nGroups*tileWork)/pwMinTaskWork)
		target = min(target, maxTasks, nTiles*nGroups)
		nPC := ceilDiv(nTiles, pcTiles)
		if nPC < target {
			wBytes, xBytes := op.cob*BlockC*kdim, hw*kdim
			if wBytes > xBytes {
				nGC := min(nGroups, ceilDiv(target, nPC))
				gcGroups = ceilDiv(nGroups, nGC)
				nGC = ceilDiv(nGroups, gcGroups)
				if nPC*nGC < target {
					pcTiles = min(pcTiles, ceilDiv(nTiles, ceilDiv(target, nGC)))
				}
			} else {
				pcTiles = min(pcTiles, ceilDiv(nTiles, target))
				nPC = ceilDiv(nTiles, pcTiles)
				if nPC < target {
					nGC := min(nGroups, ceilDiv(target, nPC))
					gcGroups = ceilDiv(nGroups, nGC)
				}
			}
		}
	}
	// Static schedule (see staticSchedule): every worker gets one
	// contiguous run of pixel chunks, all output groups, so it reads the
	// rows the same core wrote in the layer before.
	static := staticSchedule && workers > 1 && nTiles >= 16
	//
	// When the weights are more than twice the input (the 14×14 maps of
	// S1–S4 at batch 1), the workers split the output groups instead:
	// each reads the whole input (half of it from the other core) but
	// only its share of the weights, and the shares are equal (a pixel
	// split of 196 pixels leaves one worker a partial tile more).
	// Measured at two threads, alternating: S1–S4 2–5 % faster; S0
	// (weights 1.3× the input) and 28×28 maps were slower that way.
	nPC := ceilDiv(nTiles, pcTiles)
	if static {
		serial := min(nTiles, max(1, im.chunkBytes(workers)/(4*kdim*im.r)))
		nPC = min(roundUp(ceilDiv(nTiles, serial), workers), nTiles)
		pcTiles, gcGroups = ceilDiv(nTiles, nPC), nGroups
		if op.cob*BlockC > 2*hw && nGroups >= 2*workers {
			nPC, pcTiles = 1, nTiles
			gcGroups = ceilDiv(nGroups, workers)
		}
	}
	nGC := ceilDiv(nGroups, gcGroups)
	nTasks := nPC * nGC
	r := op.runs.Get().(*pwRun)
	r.op, r.x[0], r.out[0], r.hw = op, x, out, hw
	r.pcTiles, r.gcGroups, r.nGC = pcTiles, gcGroups, nGC
	r.nPC, r.nTiles = nPC, nTiles
	if static {
		parallelForStatic(nTasks, min(workers, nTasks), r.fn)
	} else {
		parallelFor(nTasks, min(workers, nTasks), r.fn)
	}
	*r = pwRun{fn: r.fn} // drop references to x and out
	op.runs.Put(r)
}

// task computes pixel chunk t/nGC × group chunk t%nGC.
func (r *pwRun) task(t int) {
	op, hw := r.op, r.hw
	im := op.im
	pc, gc := t/r.nGC, t%r.nGC
	p0 := pc * r.nTiles / r.nPC * im.r
	p1 := min(hw, (pc+1)*r.nTiles/r.nPC*im.r)
	g0 := gc * r.gcGroups
	g1 := min(ceilDiv(op.cob, im.nb), g0+r.gcGroups)
	op.groups(r.x[:], r.out[:], hw, p0, p1, g0, g1)
}

// groups computes output groups [g0, g1) of pixels [p0, p1) (p0 a multiple
// of the tile height) of every image xs[i] into outs[i]: for every weight
// group, every chunk of input blocks (its weights in L1), every image,
// every tile. Run calls it with one image, RunImages with several.
func (op *PointwiseOp) groups(xs, outs [][]float32, hw, p0, p1, g0, g1 int) {
	im := op.im
	kdim := op.cib * BlockC
	stride := hw * BlockC
	kcb := im.kcb
	tiles := ceilDiv(p1-p0, im.r) * len(xs) // per weight chunk
	nIn, nOut := BlockedLen(op.cin, hw), BlockedLen(op.cout, hw)
	var last uint
	if op.bias != nil {
		last |= pwBias
	}
	if op.relu {
		last |= pwReLU
	}
	for g := g0; g < g1; g++ {
		ob0 := g * im.nb
		nb := min(im.nb, op.cob-ob0)
		panel := op.w[ob0*BlockC*kdim : (ob0+nb)*BlockC*kdim]
		var bias []float32
		if op.bias != nil {
			bias = op.bias[ob0*BlockC : (ob0+nb)*BlockC]
		}
		// The next group's weights go to L2 over this group's tiles.
		ahead, aheadPer := op.l2Ahead(g+1, g1, ceilDiv(op.cib, kcb)*tiles, p1 == hw)
		for k0 := 0; k0 < op.cib; k0 += kcb {
			kb := min(kcb, op.cib-k0)
			var flags uint
			if k0 > 0 {
				flags = pwAcc
			}
			if k0+kb == op.cib {
				flags |= last
			}
			wk := panel[k0*BlockC*nb*BlockC : (k0+kb)*BlockC*nb*BlockC]
			// While the tiles run on this weight chunk (from L1), pull
			// the next one (this group's next chunk, or the next
			// group's first) in, a slice per tile.
			var next []float32
			if k0+kb < op.cib {
				next = panel[(k0+kb)*BlockC*nb*BlockC : min(op.cib, k0+2*kb)*BlockC*nb*BlockC]
			} else if g+1 < g1 {
				nob := (g + 1) * im.nb
				nnb := min(im.nb, op.cob-nob)
				next = op.w[nob*BlockC*kdim : nob*BlockC*kdim+min(op.cib, kcb)*BlockC*nnb*BlockC]
			}
			per := ceilDiv(ceilDiv(len(next), 16), tiles) // lines per tile
			post := ActNone                               // the activation after the last chunk
			if k0+kb == op.cib {
				post = op.post
			}
			// Pixels per activation call: actPieceValues of its nb
			// blocks.
			actPixels := max(im.r, actPieceValues/(nb*BlockC))
			for i, x := range xs {
				xk := x[:nIn][k0*stride : (k0+kb)*stride]
				ob := outs[i][:nOut][ob0*stride : (ob0+nb)*stride]
				from := p0 // first pixel not activated yet
				for p := p0; p < p1; p += im.r {
					rows := min(im.r, p1-p)
					xt := xk[p*BlockC : (kb-1)*stride+(p+rows)*BlockC]
					ot := ob[p*BlockC : (nb-1)*stride+(p+rows)*BlockC]
					if n := min(per, len(next)/16); n > 0 && pwPrefetch {
						prefetchLines(next, n)
						next = next[n*16:]
					}
					if n := min(aheadPer, len(ahead)/16); n > 0 {
						prefetchLinesL2(ahead, n)
						ahead = ahead[n*16:]
					}
					im.kern[rows][nb](xt, wk, ot, bias, kb, stride, stride, flags)
					if post != ActNone && (p+rows-from >= actPixels || p+rows == p1) {
						actBlocked(op.act, post, outs[i][:nOut], op.cout, hw, ob0, ob0+nb, from, p+rows)
						from = p + rows
					}
				}
			}
		}
	}
}

// biasOnly writes the output of a convolution without input channels:
// the bias, activated, zero in the padding channels.
func (op *PointwiseOp) biasOnly(hw int, out []float32) {
	for cb := 0; cb < op.cob; cb++ {
		blk := out[cb*hw*BlockC : (cb+1)*hw*BlockC]
		var b [BlockC]float32
		if op.bias != nil {
			copy(b[:], op.bias[cb*BlockC:])
		}
		if op.relu {
			for j := range b {
				b[j] = max(b[j], 0)
			}
		}
		for p := 0; p < hw; p++ {
			copy(blk[p*BlockC:], b[:])
		}
	}
	actBlocked(op.act, op.post, out, op.cout, hw, 0, op.cob, 0, hw)
}
