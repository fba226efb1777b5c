package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

// Vector kernels for the training code: dot products, AXPY, batch-norm
// statistics and application, ReLU and its gradient mask, on plain float32
// slices.
//
// Every function works on n = len(first slice) elements; the other slices
// must hold at least n elements, checked up front:
// a short slice panics before anything is read or written. Nothing beyond
// the n elements is read or written, lengths and alignments are arbitrary,
// and nothing is allocated. (The slices are passed on through a function
// value, so escape analysis lets them escape: a caller's stack array would
// move to the heap.) Where an output may alias an input, aliasing means the
// very same slice (same start); outputs must not otherwise overlap inputs.
//
// The reductions accumulate chunks of at most vecChunk elements in float32
// vector lanes (several independent accumulators) and add the chunk sums in
// float64, so their error stays that of a short float32 sum however long
// the input; the pure-Go twins accumulate in float64 throughout. Results
// depend on the kernel level only by rounding.

// vecChunk is the number of elements the assembly reductions accumulate in
// float32 before moving the partial sums to float64 (chunk in _gen/vec).
const vecChunk = 1024

// BNNorm modes, indexing vecImpl.bnNorm.
const (
	bnNormX     = iota // write xhat only
	bnNormStore        // also out = gamma·xhat + beta
	bnNormAcc          // also out += gamma·xhat + beta
)

// vecImpl is the vector kernel set of one level. Each kernel works on
// n = len(first slice) elements and trusts the other slices to be as long
// (Conv3Plane and Corr3Plane: see conv3.go); the exported wrappers make sure
// they are.
type vecImpl struct {
	level cpu.Level

	dot      func(a, b []float32) float64
	dotSums  func(d, x []float32, shift float32) (sd, sdx float64)
	sumSq    func(x []float32, shift float32) (s, sq float64)
	conv3    [2]func(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int) // set, add
	corr3    func(d, x, zrow []float32, y0, y1, h, width, s int) (g0, g1, g2, g3, g4, g5, g6, g7, g8 float32)
	dotAxpy  func(alpha float32, d, x, y []float32) float64
	maskSums func(y, d, x []float32, shift float32) (sd, sdx float64)
	axpy     func(alpha float32, x, y []float32)
	scale    func(alpha float32, x, y []float32)
	add      func(x, y []float32)
	relu     func(x []float32)
	reluMask func(y, d []float32)
	bnNorm   [3]func(src, xhat, out []float32, mean, invstd, gamma, beta float32)
	bnBack   func(d, xhat, out []float32, k, md, mean, mdx float32)
}

var vecPureGo = &vecImpl{
	level:    cpu.PureGo,
	dot:      vecDotGo,
	dotSums:  vecDotSumsGo,
	sumSq:    vecSumSqGo,
	conv3:    [2]func(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int){vecConv3Go, vecConv3AddGo},
	corr3:    vecCorr3Go,
	dotAxpy:  vecDotAxpyGo,
	maskSums: vecReLUMaskDotSumsGo,
	axpy:     vecAxpyGo,
	scale:    vecScaleGo,
	add:      vecAddGo,
	relu:     vecReLUGo,
	reluMask: vecReLUMaskGo,
	bnNorm:   [3]func(src, xhat, out []float32, mean, invstd, gamma, beta float32){vecBNNormGo, vecBNNormStoreGo, vecBNNormAccGo},
	bnBack:   vecBNBackGo,
}

// vecKernels are this family's kernels by level (see levelSet).
var vecKernels = newLevelSet(vecPureGo, vecAsm[:])

// Dot returns Σ a[i]·b[i] over len(a) elements; b must hold at least
// len(a). It accumulates like Dot64 and rounds the result to float32.
func Dot(a, b []float32) float32 {
	if len(b) < len(a) {
		vecShort("Dot")
	}
	b = b[:len(a)]
	return float32(vecKernels.active.dot(a, b))
}

// Dot64 returns Σ a[i]·b[i] over len(a) elements; b must hold at least
// len(a). Chunks of the sum are accumulated in float32 and added in
// float64, so the result stays close to a float64 reference even for
// millions of elements.
func Dot64(a, b []float32) float64 {
	if len(b) < len(a) {
		vecShort("Dot64")
	}
	b = b[:len(a)]
	return vecKernels.active.dot(a, b)
}

// DotAxpy returns Σ d[i]·x[i] (accumulated like Dot64) and adds alpha·d[i]
// to y[i], for i < len(d), reading d once: the weight and input gradients of
// one tap of a convolution. x and y must hold at least len(d) and must not
// overlap each other or d.
func DotAxpy(alpha float32, d, x, y []float32) float64 {
	if len(x) < len(d) || len(y) < len(d) {
		vecShort("DotAxpy")
	}
	x, y = x[:len(d)], y[:len(d)]
	return vecKernels.active.dotAxpy(alpha, d, x, y)
}

// ReLUMaskDotSums is ReLUMask(y, d) followed by DotSums(d, x), in one pass:
// it zeroes d[i] where y[i] == 0 and returns Σ d[i] and Σ d[i]·x[i] over
// len(y) elements. d and x must hold at least len(y).
func ReLUMaskDotSums(y, d, x []float32) (sd, sdx float64) {
	return ReLUMaskDotSumsShift(y, d, x, 0)
}

// ReLUMaskDotSumsShift is ReLUMaskDotSums with Σ d[i]·(x[i]−shift) as the
// second sum (x − shift rounded to float32 first): a BatchNorm backward
// pass's Σ d·x̂ from its input x and batch mean without forming x̂.
func ReLUMaskDotSumsShift(y, d, x []float32, shift float32) (sd, sdx float64) {
	if len(d) < len(y) || len(x) < len(y) {
		vecShort("ReLUMaskDotSums")
	}
	d, x = d[:len(y)], x[:len(y)]
	return vecKernels.active.maskSums(y, d, x, shift)
}

// Axpy computes y[i] += alpha·x[i] for i < len(x); y must hold at least
// len(x) and may be x itself.
func Axpy(alpha float32, x, y []float32) {
	if len(y) < len(x) {
		vecShort("Axpy")
	}
	y = y[:len(x)]
	vecKernels.active.axpy(alpha, x, y)
}

// SumSq returns s = Σ (x[i]−shift) and sq = Σ (x[i]−shift)², the shift
// subtracted in float32 before squaring and summing (accumulated like
// Dot64). With shift close to the mean, mean = shift + s/n and
// variance = sq/n − (s/n)² are accurate.
func SumSq(x []float32, shift float32) (s, sq float64) {
	return vecKernels.active.sumSq(x, shift)
}

// DotSums returns sd = Σ d[i] and sdx = Σ d[i]·x[i] over len(d) elements
// (accumulated like Dot64); x must hold at least len(d).
func DotSums(d, x []float32) (sd, sdx float64) {
	return DotSumsShift(d, x, 0)
}

// DotSumsShift is DotSums with Σ d[i]·(x[i]−shift) as the second sum
// (x − shift rounded to float32 first).
func DotSumsShift(d, x []float32, shift float32) (sd, sdx float64) {
	if len(x) < len(d) {
		vecShort("DotSums")
	}
	x = x[:len(d)]
	return vecKernels.active.dotSums(d, x, shift)
}

// BNNorm normalizes src with batch-norm statistics: for i < len(src),
// h = (src[i]−mean)·invstd, xhat[i] = h and out[i] = gamma·h + beta, or
// out[i] += gamma·h + beta if accumulate. xhat must hold at least len(src)
// and may be src itself. out may be nil, then only xhat is written;
// otherwise it must hold at least len(src) and overlap neither src nor
// xhat.
func BNNorm(src, xhat, out []float32, mean, invstd, gamma, beta float32, accumulate bool) {
	if len(xhat) < len(src) || out != nil && len(out) < len(src) {
		vecShort("BNNorm")
	}
	xhat = xhat[:len(src)]
	mode := bnNormX
	if out != nil {
		out = out[:len(src)]
		mode = bnNormStore
		if accumulate {
			mode = bnNormAcc
		}
	}
	vecKernels.active.bnNorm[mode](src, xhat, out, mean, invstd, gamma, beta)
}

// BNBackApply computes the input gradient of batch norm,
// out[i] = k·(d[i] − md − xhat[i]·mdx) for i < len(d), where typically
// k = gamma·invstd, md = mean(d) and mdx = mean(d·xhat). xhat and out must
// hold at least len(d); out may be xhat or d itself.
func BNBackApply(d, xhat, out []float32, k, md, mdx float32) {
	BNBackApplySrc(d, xhat, out, k, md, 0, mdx)
}

// BNBackApplySrc is BNBackApply from the BatchNorm's input src and batch
// mean instead of x̂: out[i] = k·(d[i] − md − (src[i]−mean)·mdx), with
// typically k = gamma·invstd, md = mean(d) and mdx = mean(d·x̂)·invstd.
// src and out must hold at least len(d); out may be src or d itself.
func BNBackApplySrc(d, src, out []float32, k, md, mean, mdx float32) {
	if len(src) < len(d) || len(out) < len(d) {
		vecShort("BNBackApply")
	}
	src, out = src[:len(d)], out[:len(d)]
	vecKernels.active.bnBack(d, src, out, k, md, mean, mdx)
}

// ReLU sets x[i] = max(x[i], 0) in place. NaN stays NaN and −0 stays −0 (as
// in the fused ReLU of the convolution kernels).
func ReLU(x []float32) {
	vecKernels.active.relu(x)
}

// ReLUMask applies the ReLU derivative to the gradient d given the ReLU
// output y: d[i] = 0 where y[i] == 0 (either zero), unchanged where y[i] > 0
// or y[i] is NaN, for i < len(y). d must hold at least len(y).
func ReLUMask(y, d []float32) {
	if len(d) < len(y) {
		vecShort("ReLUMask")
	}
	d = d[:len(y)]
	vecKernels.active.reluMask(y, d)
}

// Scale sets y[i] = alpha·x[i] for i < len(x); y must hold at least len(x)
// and may be x itself.
func Scale(alpha float32, x, y []float32) {
	if len(y) < len(x) {
		vecShort("Scale")
	}
	y = y[:len(x)]
	vecKernels.active.scale(alpha, x, y)
}

// Add computes y[i] += x[i] for i < len(x); y must hold at least len(x) and
// may be x itself.
func Add(x, y []float32) {
	if len(y) < len(x) {
		vecShort("Add")
	}
	y = y[:len(x)]
	vecKernels.active.add(x, y)
}

// vecShort panics on behalf of fn, one of whose slices is shorter than
// the first allows. (Slicing alone would check only the capacity.) Kept
// out of line: the wrappers' fast path stays short.
//
//go:noinline
func vecShort(fn string) {
	panic("kernel." + fn + ": slice shorter than the first one's length")
}

// The pure-Go twins of the kernels in _gen/vec: same contract (n = length
// of the first slice, the others at least as long), float64 accumulation
// in the reductions, four independent accumulators for latency.

func vecDotGo(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

func vecDotSumsGo(d, x []float32, shift float32) (sd, sdx float64) {
	x = x[:len(d)]
	var s0, s1, p0, p1 float64
	i := 0
	for ; i+2 <= len(d); i += 2 {
		d0, d1 := float64(d[i]), float64(d[i+1])
		s0 += d0
		s1 += d1
		p0 += d0 * float64(x[i]-shift)
		p1 += d1 * float64(x[i+1]-shift)
	}
	for ; i < len(d); i++ {
		s0 += float64(d[i])
		p0 += float64(d[i]) * float64(x[i]-shift)
	}
	return s0 + s1, p0 + p1
}

func vecSumSqGo(x []float32, shift float32) (s, sq float64) {
	var s0, s1, q0, q1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		v0, v1 := float64(x[i]-shift), float64(x[i+1]-shift)
		s0 += v0
		s1 += v1
		q0 += v0 * v0
		q1 += v1 * v1
	}
	for ; i < len(x); i++ {
		v := float64(x[i] - shift)
		s0 += v
		q0 += v * v
	}
	return s0 + s1, q0 + q1
}

func vecDotAxpyGo(alpha float32, d, x, y []float32) float64 {
	s := vecDotGo(d, x)
	vecAxpyGo(alpha, d, y)
	return s
}

func vecReLUMaskDotSumsGo(y, d, x []float32, shift float32) (sd, sdx float64) {
	vecReLUMaskGo(y, d)
	return vecDotSumsGo(d[:len(y)], x, shift)
}

func vecAxpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

func vecScaleGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = alpha * v
	}
}

func vecAddGo(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += v
	}
}

func vecReLUGo(x []float32) {
	for i, v := range x {
		if v < 0 { // NaN and −0 kept
			x[i] = 0
		}
	}
}

func vecReLUMaskGo(y, d []float32) {
	d = d[:len(y)]
	for i, v := range y {
		if v == 0 {
			d[i] = 0
		}
	}
}

func vecBNNormGo(src, xhat, _ []float32, mean, invstd, _, _ float32) {
	xhat = xhat[:len(src)]
	for i, v := range src {
		xhat[i] = (v - mean) * invstd
	}
}

func vecBNNormStoreGo(src, xhat, out []float32, mean, invstd, gamma, beta float32) {
	xhat, out = xhat[:len(src)], out[:len(src)]
	for i, v := range src {
		h := (v - mean) * invstd
		xhat[i] = h
		out[i] = gamma*h + beta
	}
}

func vecBNNormAccGo(src, xhat, out []float32, mean, invstd, gamma, beta float32) {
	xhat, out = xhat[:len(src)], out[:len(src)]
	for i, v := range src {
		h := (v - mean) * invstd
		xhat[i] = h
		out[i] += gamma*h + beta
	}
}

func vecBNBackGo(d, xhat, out []float32, k, md, mean, mdx float32) {
	xhat, out = xhat[:len(d)], out[:len(d)]
	for i, v := range d {
		out[i] = k * (v - md - (xhat[i]-mean)*mdx)
	}
}
