package kernel

import (
	"math"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// Softmax replaces x by softmax(scale·x): x[i] = e^(scale·(x[i]−m)) / Σⱼ
// e^(scale·(x[j]−m)) with m the row's maximum, so that no exponential
// overflows (attention's rows of probabilities). It works in float32 with
// the exponential of softmaxGo (relative error about 3e-7 plus the
// rounding of the exponent), in vector registers with AVX-512 or AVX2
// (_gen/softmax), and allocates nothing. An empty x is left alone.
func Softmax(x []float32, scale float32) {
	if len(x) == 0 {
		return
	}
	softmaxKernels.active.softmax(x, scale*math.Log2E)
}

// softmaxImpl is the softmax kernel of one level: x[i] = 2^((x[i]−m)·c),
// divided by their sum, for len(x) ≥ 1.
type softmaxImpl struct {
	level   cpu.Level
	softmax func(x []float32, c float32)
}

var softmaxPureGo = &softmaxImpl{level: cpu.PureGo, softmax: softmaxGo}

// softmaxKernels are this family's kernels by level (see levelSet).
var softmaxKernels = newLevelSet(softmaxPureGo, softmaxAsm[:])

// softmaxGo is the portable twin of the assembly kernels, the same three
// passes one element at a time.
func softmaxGo(x []float32, c float32) {
	m := x[0]
	for _, v := range x[1:] {
		if v > m { // not max(): its NaN and −0 handling is a chain of six instructions
			m = v
		}
	}
	var s0, s1 float32
	i := 0
	for ; i+1 < len(x); i += 2 {
		e0, e1 := exp2Neg((x[i]-m)*c), exp2Neg((x[i+1]-m)*c)
		x[i], x[i+1] = e0, e1
		s0 += e0
		s1 += e1
	}
	if i < len(x) {
		e := exp2Neg((x[i] - m) * c)
		x[i] = e
		s0 += e
	}
	inv := 1 / (s0 + s1)
	for i := range x {
		x[i] *= inv
	}
}

// exp2Neg returns 2^t for t ≤ 0 in float32 (relative error below 3e-7;
// under 2^−126, the smallest normal number, it returns 2^−126): t = n + f
// with n the nearest integer and |f| ≤ 1/2, 2^f = e^(f·ln2) by its Taylor
// polynomial of degree 6, 2^n put into the exponent bits. It inlines.
func exp2Neg(t float32) float32 {
	const (
		c1 = math.Ln2
		c2 = c1 * math.Ln2 / 2
		c3 = c2 * math.Ln2 / 3
		c4 = c3 * math.Ln2 / 4
		c5 = c4 * math.Ln2 / 5
		c6 = c5 * math.Ln2 / 6
	)
	if t < -126 {
		t = -126
	}
	n := int32(t - 0.5) // truncation of t − 1/2 ≤ 0 rounds t to nearest
	f := t - float32(n)
	p := ((((((c6*f+c5)*f+c4)*f+c3)*f+c2)*f+c1)*f + 1)
	return p * math.Float32frombits(uint32(n+127)<<23)
}
