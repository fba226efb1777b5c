package kernel

import (
	"math"
	"strconv"
	"sync"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// Activation kernels: the element-wise functions of the mobile CNN zoo
// (ReLU6, HardSwish, HardSigmoid, Sigmoid, SiLU, GELU), applied in place,
// plus the element-wise sum and per-channel scaling that surround them (a
// residual add, a squeeze-excitation gate).
//
// The assembly kernels (_gen/act, AVX-512 and AVX2+FMA) and their pure-Go
// twins below compute the same formulas; only the rounding of the fused
// multiply-adds differs. Against float64 math, over every float32 input:
// Sigmoid and SiLU within 3e-7 relative error wherever the result is a
// normal float32 (below about e^−87 they flush to ±0), GELU (the exact erf
// form of PyTorch's nn.GELU) within 2e-7·max(1, |x|) absolute, ReLU6,
// HardSigmoid and HardSwish within a float32 rounding or two. NaN stays NaN;
// ±Inf give the limits (SiLU(−Inf) = GELU(−Inf) = HardSwish(−Inf) = −0).

// Activation names an element-wise function.
type Activation uint8

// The activations.
const (
	ActNone        Activation = iota // identity
	ActReLU                          // max(x, 0)
	ActReLU6                         // min(max(x, 0), 6)
	ActHardSwish                     // x·ReLU6(x+3)/6
	ActHardSigmoid                   // ReLU6(x+3)/6
	ActSigmoid                       // 1/(1+e^−x)
	ActSiLU                          // x·sigmoid(x) (swish)
	ActGELU                          // x·Φ(x) = x/2·(1+erf(x/√2))
	numActs
)

// ActBF16, or'ed into an activation, rounds its results to the nearest
// bfloat16 (ties to even, as bf16 does; a NaN stays a NaN) after applying
// it: the values are then stored as a bfloat16 engine stores them, while
// the kernels keep reading float32. ActBF16 alone only rounds.
const ActBF16 Activation = 0x80

// Base is a without ActBF16.
func (a Activation) Base() Activation { return a &^ ActBF16 }

var actNames = [numActs]string{"none", "relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu"}

func (a Activation) String() string {
	if b := a.Base(); b < numActs {
		if a&ActBF16 != 0 {
			return actNames[b] + "+bf16"
		}
		return actNames[b]
	}
	return "activation(" + strconv.Itoa(int(a)) + ")"
}

// ZeroAtZero reports whether a(0) = 0, so that the zero padding channels
// of the blocked layout stay zero.
func (a Activation) ZeroAtZero() bool {
	b := a.Base()
	return b != ActSigmoid && b != ActHardSigmoid
}

// actFunc applies one activation in place to rows rows of cols values of
// x, row r starting at x[r*ld] (ld ≥ cols; x holds at least
// (rows−1)·ld + cols values when rows, cols > 0).
type actFunc func(x []float32, rows, cols, ld int)

// actImpl is the activation kernel set of one level.
type actImpl struct {
	level cpu.Level
	fn    [numActs]actFunc // by Activation; fn[ActNone] does nothing
	// bf16 rounds to bfloat16 (ActBF16); fnBF16[a] applies a then rounds
	// (made by composeBF16).
	bf16   actFunc
	fnBF16 [numActs]actFunc
	// add sets y[i] = x[i] + z[i] for i < len(x) (z and y at least as
	// long; y may be x or z).
	add func(x, z, y []float32)
	// mul16 sets y[i] = x[i]·gate[i%16] for i < len(x), a multiple of 16
	// (gate at least 16 long, y at least len(x); y may be x).
	mul16 func(gate, x, y []float32)
}

var actPureGo = &actImpl{
	level: cpu.PureGo,
	fn: [numActs]actFunc{
		ActNone: actNoneGo, ActReLU: actReLUGo, ActReLU6: actReLU6Go,
		ActHardSwish: actHardSwishGo, ActHardSigmoid: actHardSigmoidGo,
		ActSigmoid: actSigmoidGo, ActSiLU: actSiLUGo, ActGELU: actGELUGo,
	},
	add:   actAddGo,
	mul16: actMul16Go,
	bf16:  actBF16Go,
}

// actKernels are this family's kernels by level (see levelSet).
var actKernels = newLevelSet(actPureGo, actAsm[:])

func init() {
	actPureGo.composeBF16()
	for _, im := range actAsm {
		if im != nil {
			im.composeBF16()
		}
	}
}

// composeBF16 makes fnBF16: each activation followed by the rounding, on
// the same rows while they are in cache.
func (im *actImpl) composeBF16() {
	round := im.bf16
	im.fnBF16[ActNone] = round
	for a := ActNone + 1; a < numActs; a++ {
		f := im.fn[a]
		im.fnBF16[a] = func(x []float32, rows, cols, ld int) {
			f(x, rows, cols, ld)
			round(x, rows, cols, ld)
		}
	}
}

// get returns the kernel of a (checked by checkAct).
func (im *actImpl) get(a Activation) actFunc {
	if a&ActBF16 != 0 {
		return im.fnBF16[a.Base()]
	}
	return im.fn[a]
}

// checkAct panics on an activation out of range.
func checkAct(a Activation) {
	if a.Base() >= numActs {
		panic("kernel: unknown activation " + a.String())
	}
}

// regionAct applies a to rows rows of cols values of x, row r at x[r*ld:],
// after checking that x holds them.
func (im *actImpl) region(a Activation, x []float32, rows, cols, ld int) {
	if rows <= 0 || cols <= 0 || a == ActNone {
		return
	}
	if ld < cols || len(x) < (rows-1)*ld+cols {
		panic("kernel: activation region outside the slice")
	}
	im.get(a)(x, rows, cols, ld)
}

// ewMinTask is the least number of values an element-wise parallel task
// gets; slices shorter than two tasks run on the calling goroutine (a
// parallel region costs a hand-off to the pool's helpers and a wait for
// the slowest; on a busy machine, much more than the microseconds the
// split of a short element-wise pass could save).
const ewMinTask = 1 << 15

// ewChunk is how many values AddAct adds before activating them, so that
// they are still in L1.
const ewChunk = 1 << 12

// ewPlan splits n values into tasks of a multiple of 16 values for up to
// limit workers (0: Threads()).
func ewPlan(n, limit int) (nTasks, per, workers int) {
	w := Threads()
	if limit > 0 {
		w = min(w, limit)
	}
	if w <= 1 || n < 2*ewMinTask {
		return 1, n, 1
	}
	nTasks = min(ceilDiv(n, ewMinTask), 4*w)
	per = roundUp(ceilDiv(n, nTasks), 16)
	nTasks = ceilDiv(n, per)
	return nTasks, per, min(w, nTasks)
}

// ewJob is one parallel element-wise call, recycled through ewJobs so that
// nothing is allocated per call.
type ewJob struct {
	kind    int
	a       Activation
	im      *actImpl
	x, z, y []float32
	g       []float32 // gate (channel scaling)
	per     int       // values (activate, add) or channels/blocks (scaling) per task
	c, hw   int
	gbuf    []float32 // 16 per task: one block's gate, zero padded
	fn      func(t int)
}

const (
	ewActivate = iota
	ewAdd
	ewScale
	ewBlockedScale
)

var ewJobs = sync.Pool{New: func() any {
	j := new(ewJob)
	j.fn = j.task
	return j
}}

func (j *ewJob) task(t int) {
	switch j.kind {
	case ewActivate:
		x := j.x[t*j.per : min(len(j.x), (t+1)*j.per)]
		j.im.get(j.a)(x, 1, len(x), len(x))
	case ewAdd:
		lo, hi := t*j.per, min(len(j.y), (t+1)*j.per)
		for i := lo; i < hi; i += ewChunk {
			e := min(hi, i+ewChunk)
			y := j.y[i:e]
			j.im.add(j.x[i:e], j.z[i:e], y)
			j.im.get(j.a)(y, 1, len(y), len(y))
		}
	case ewScale:
		hw := j.hw
		scale := vecKernels.active.scale
		for ch := t * j.per; ch < min(j.c, (t+1)*j.per); ch++ {
			scale(j.g[ch], j.x[ch*hw:(ch+1)*hw], j.y[ch*hw:(ch+1)*hw])
		}
	case ewBlockedScale:
		n := j.hw * BlockC
		gb := j.gbuf[t*BlockC : (t+1)*BlockC]
		for cb := t * j.per; cb < min(Blocks(j.c), (t+1)*j.per); cb++ {
			k := copy(gb, j.g[cb*BlockC:min(j.c, (cb+1)*BlockC)])
			clear(gb[k:])
			j.im.mul16(gb, j.x[cb*n:(cb+1)*n], j.y[cb*n:(cb+1)*n])
		}
	}
}

// run runs the job's nTasks tasks on up to workers goroutines and recycles
// it.
func (j *ewJob) run(nTasks, workers int) {
	if workers <= 1 || nTasks <= 1 {
		for t := 0; t < nTasks; t++ {
			j.task(t)
		}
	} else {
		Parallel(nTasks, workers, j.fn)
	}
	j.x, j.z, j.y, j.g, j.im = nil, nil, nil, nil, nil
	ewJobs.Put(j)
}

// Activate applies a to every element of x in place, splitting long slices
// over Threads() goroutines.
func Activate(a Activation, x []float32) { ActivateLimit(a, x, 0) }

// ActivateLimit is Activate on at most limit goroutines (0: Threads()).
func ActivateLimit(a Activation, x []float32, limit int) {
	checkAct(a)
	if a == ActNone || len(x) == 0 {
		return
	}
	im := actKernels.active
	nTasks, per, workers := ewPlan(len(x), limit)
	if workers <= 1 {
		im.get(a)(x, 1, len(x), len(x))
		return
	}
	j := ewJobs.Get().(*ewJob)
	j.kind, j.a, j.im, j.x, j.per = ewActivate, a, im, x, per
	j.run(nTasks, workers)
}

// AddAct sets y[i] = a(x[i] + z[i]) for i < len(y); x and z must hold at
// least len(y) values, and y may be x or z. Long slices are split over
// Threads() goroutines; each adds and activates a few thousand values at a
// time, while they are in L1.
func AddAct(a Activation, x, z, y []float32) {
	checkAct(a)
	if len(x) < len(y) || len(z) < len(y) {
		vecShort("AddAct")
	}
	if len(y) == 0 {
		return
	}
	nTasks, per, workers := ewPlan(len(y), 0)
	j := ewJobs.Get().(*ewJob)
	j.kind, j.a, j.im, j.x, j.z, j.y, j.per = ewAdd, a, actKernels.active, x[:len(y)], z[:len(y)], y, per
	j.run(nTasks, workers)
}

// ScaleChannels sets y[ch*hw+i] = x[ch*hw+i]·g[ch] for ch < c, i < hw (the
// rescaling of squeeze-excitation on an NCHW map); y may be x. Large maps
// are split over Threads() goroutines by channels.
func ScaleChannels(c, hw int, x, g, y []float32) {
	if c <= 0 || hw <= 0 {
		return
	}
	x, g, y = x[:c*hw], g[:c], y[:c*hw]
	per := max(1, ewMinTask/hw)
	nTasks := ceilDiv(c, per)
	_, _, workers := ewPlan(c*hw, 0)
	j := ewJobs.Get().(*ewJob)
	j.kind, j.x, j.g, j.y, j.c, j.hw, j.per = ewScale, x, g, y, c, hw, per
	j.run(nTasks, workers)
}

// BlockedScaleChannels is ScaleChannels on blocked activations (see
// BlockedLen) of c channels and hw pixels: y = x·g[channel]; the padding
// channels of y are written as 0. y may be x.
func BlockedScaleChannels(c, hw int, x, g, y []float32) {
	if c <= 0 || hw <= 0 {
		return
	}
	n := BlockedLen(c, hw)
	x, g, y = x[:n], g[:c], y[:n]
	per := max(1, ewMinTask/(hw*BlockC))
	nTasks := ceilDiv(Blocks(c), per)
	_, _, workers := ewPlan(n, 0)
	j := ewJobs.Get().(*ewJob)
	j.kind, j.im, j.x, j.g, j.y, j.c, j.hw, j.per = ewBlockedScale, actKernels.active, x, g, y, c, hw, per
	if len(j.gbuf) < nTasks*BlockC {
		j.gbuf = make([]float32, nTasks*BlockC)
	}
	j.run(nTasks, workers)
}

// The pure-Go twins. Each takes the region of an actFunc and runs a
// row function over it; the arithmetic is that of the assembly (package
// comment of _gen/act) without fused multiply-adds.

func actRowsGo(x []float32, rows, cols, ld int, f func(row []float32)) {
	for r := 0; r < rows; r++ {
		f(x[r*ld : r*ld+cols])
	}
}

func actNoneGo([]float32, int, int, int) {}

// actBF16Go rounds to bfloat16 and back (bf16, bf16Float): the twin of
// the assembly rounding, bit for bit.
func actBF16Go(x []float32, rows, cols, ld int) {
	actRowsGo(x, rows, cols, ld, func(row []float32) {
		for i, v := range row {
			row[i] = bf16Float(bf16(v))
		}
	})
}

func actReLUGo(x []float32, rows, cols, ld int) { actRowsGo(x, rows, cols, ld, vecReLUGo) }

func actReLU6Go(x []float32, rows, cols, ld int) { actRowsGo(x, rows, cols, ld, relu6RowGo) }

func actHardSwishGo(x []float32, rows, cols, ld int) {
	actRowsGo(x, rows, cols, ld, hardSwishRowGo)
}

func actHardSigmoidGo(x []float32, rows, cols, ld int) {
	actRowsGo(x, rows, cols, ld, hardSigmoidRowGo)
}

func actSigmoidGo(x []float32, rows, cols, ld int) { actRowsGo(x, rows, cols, ld, sigmoidRowGo) }

func actSiLUGo(x []float32, rows, cols, ld int) { actRowsGo(x, rows, cols, ld, siluRowGo) }

func actGELUGo(x []float32, rows, cols, ld int) { actRowsGo(x, rows, cols, ld, geluRowGo) }

// The row functions use Go's min and max, which propagate NaN (as the
// assembly's MAXPS/MINPS with x as the second source do) and compile to
// branch-free code; they differ from the assembly only in the sign of a
// zero result (max(−0, 0) is +0 in Go, −0 in the assembly).

func relu6RowGo(x []float32) {
	for i, v := range x {
		x[i] = min(max(v, 0), 6)
	}
}

const inv6 = float32(1.0 / 6)

func hardSigmoidRowGo(x []float32) {
	for i, v := range x {
		x[i] = min(max(v+3, 0), 6) * inv6
	}
}

// hardSwishRowGo computes max(x, −3)·(ReLU6(x+3)·(1/6)): the clamp
// changes nothing but −Inf·0 (NaN) into −3·0, and scaling ReLU6 first
// keeps x·6 from overflowing for x near the float32 maximum.
func hardSwishRowGo(x []float32) {
	for i, v := range x {
		x[i] = max(v, -3) * (min(max(v+3, 0), 6) * inv6)
	}
}

func sigmoidRowGo(x []float32) {
	for i, v := range x {
		x[i] = sigmoid32(v)
	}
}

func siluRowGo(x []float32) {
	for i, v := range x {
		x[i] = silu32(v)
	}
}

func geluRowGo(x []float32) {
	for i, v := range x {
		x[i] = gelu32(v)
	}
}

// The constants of expNeg32 (Cody–Waite ln 2, Cephes' expf polynomial).
const (
	expLog2e = float32(1.44269504088896341)
	expMagic = float32(12582912) // 1.5·2²³: adding it rounds to an integer
	expLn2Hi = float32(0.693359375)
	expLn2Lo = float32(-2.12194440e-4)
	expClamp = float32(-104) // e^−104 is far below the smallest float32
)

// expNeg32 returns e^v for v ≤ 88 (NaN for NaN), flushing results below
// 2⁻¹²⁶ (v < about −87.3) to 0: n = round(v·log₂e) via the magic number,
// whose float bits hold n; r = v − n·ln2; e^r by a degree-5 minimax
// polynomial; 2ⁿ built from the biased exponent, clamped at 0.
func expNeg32(v float32) float32 {
	v = max(v, expClamp)
	s := v*expLog2e + expMagic
	n := s - expMagic
	r := v - n*expLn2Hi
	r = r - n*expLn2Lo
	q := float32(1.9875691500e-4)
	q = q*r + 1.3981999507e-3
	q = q*r + 8.3334519073e-3
	q = q*r + 4.1665795894e-2
	q = q*r + 1.6666665459e-1
	q = q*r + 5.0000001201e-1
	p := q*(r*r) + r + 1
	b := max(int32(math.Float32bits(s))-(0x4b400000-127), 0)
	return p * math.Float32frombits(uint32(b)<<23)
}

// signSelect returns neg if the sign bit of x is set, else pos, without a
// branch.
func signSelect(x, neg, pos float32) float32 {
	m := uint32(int32(math.Float32bits(x)) >> 31)
	return math.Float32frombits(math.Float32bits(neg)&m | math.Float32bits(pos)&^m)
}

// sigmoid32 returns 1/(1+e^−x) in float32 as the Sigmoid kernels do: e =
// e^−|x| (never overflows) and e/(1+e) for negative x, 1/(1+e) otherwise.
func sigmoid32(x float32) float32 {
	e := expNeg32(math.Float32frombits(math.Float32bits(x) | 1<<31)) // −|x|
	return signSelect(x, e, 1) / (1 + e)
}

// silu32 returns x·sigmoid(x) as the SiLU kernels do (the clamp turns
// −Inf·0 into −104·0).
func silu32(x float32) float32 {
	return max(x, expClamp) * sigmoid32(x)
}

// gelu32 returns x·Φ(x) = x/2·(1+erf(x/√2)) as the GELU kernels do:
// through h = erfc(|x|/√2)/2, x·(1−h) for x ≥ 0 and x·h below, so that the
// negative tail keeps its relative accuracy. erfc(z) = t·exp(−z² + P(t)),
// t = 1/(1+z/2), P of degree 9 (Numerical Recipes' erfcc, fractional error
// below 1.2e-7).
func gelu32(x float32) float32 {
	z := math.Float32frombits(math.Float32bits(x)&^(1<<31)) * float32(1/math.Sqrt2)
	t := 1 / (1 + 0.5*z)
	p := float32(0.17087277)
	p = p*t - 0.82215223
	p = p*t + 1.48851587
	p = p*t - 1.13520398
	p = p*t + 0.27886807
	p = p*t - 0.18628806
	p = p*t + 0.09678418
	p = p*t + 0.37409196
	p = p*t + 1.00002368
	p = p*t - 1.26551223
	h := t * expNeg32(p-z*z) * 0.5
	return max(x, expClamp) * signSelect(x, h, 1-h)
}

func actAddGo(x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	for i, v := range x {
		y[i] = v + z[i]
	}
}

func actMul16Go(gate, x, y []float32) {
	g := (*[BlockC]float32)(gate[:BlockC])
	y = y[:len(x)]
	for p := 0; p+BlockC <= len(x); p += BlockC {
		xv := (*[BlockC]float32)(x[p : p+BlockC])
		yv := (*[BlockC]float32)(y[p : p+BlockC])
		for j := range yv {
			yv[j] = xv[j] * g[j]
		}
	}
}

// reluAct is the activation of the convolution constructors' relu flag.
func reluAct(relu bool) Activation {
	if relu {
		return ActReLU
	}
	return ActNone
}

// splitAct splits the activation a convolution fuses into the ReLU its
// kernels apply in their stores and the activation applied after them.
func splitAct(a Activation) (relu bool, post Activation) {
	if a.Base() == ActReLU {
		return true, a & ActBF16
	}
	return false, a
}

// actPieceValues is about how many values a convolution stores before it
// activates them: 64 KiB, still in L2 (the activations are compute-bound,
// about a cycle per value for SiLU with AVX-512, so L2 serves them as well
// as L1; measured on one thread, pieces of 2–16 K values were within noise
// of each other and of a second pass for layers whose output fits in L2,
// pieces of 16 K and more a few per cent faster than smaller ones on
// 112×112 maps), and the call overhead is spread over many of them.
const actPieceValues = 16384

// actBlocked applies a to pixels [p0, p1) of channel blocks [b0, b1) of
// the blocked map out (c channels of hw pixels, see BlockedLen) in one
// call; where a(0) ≠ 0 it then sets the padding channels back to zero.
func actBlocked(im *actImpl, a Activation, out []float32, c, hw, b0, b1, p0, p1 int) {
	if a == ActNone || b0 >= b1 || p0 >= p1 {
		return
	}
	ld := hw * BlockC
	im.region(a, out[b0*ld+p0*BlockC:], b1-b0, (p1-p0)*BlockC, ld)
	if r := c % BlockC; r != 0 && !a.ZeroAtZero() && b1 == Blocks(c) {
		blk := out[(b1-1)*ld : b1*ld]
		for p := p0; p < p1; p++ {
			clear(blk[p*BlockC+r : (p+1)*BlockC])
		}
	}
}
