// Package kernel holds the compute kernels (convolution, GEMM, pooling). It is
// the only package that knows how the arithmetic is done; model and layer code
// call it through these functions and never see the implementation.
//
// The kernels are pure Go. Gemm and pointwise / general convolutions go
// through one blocked, packed GEMM driver (gemm.go) whose innermost loop is a
// single mr×nr micro-kernel (microkernel.go); depthwise convolutions have a
// direct kernel (depthwise.go). Work is spread over up to Threads()
// goroutines. The naive kernels in package ref are the test oracle.
package kernel

// Conv describes a 2-D convolution of one image in NCHW layout with a square
// kernel.
type Conv struct {
	InC, InH, InW int
	OutC          int
	K             int
	Stride, Pad   int
	Groups        int
}

// OutH is the output height.
func (c Conv) OutH() int { return (c.InH+2*c.Pad-c.K)/c.Stride + 1 }

// OutW is the output width.
func (c Conv) OutW() int { return (c.InW+2*c.Pad-c.K)/c.Stride + 1 }

// Conv2D computes out = conv(x, w) + bias for one image, then ReLU if relu.
//
//	x:    (InC, InH, InW)
//	w:    (OutC, InC/Groups, K, K)
//	bias: (OutC) or nil
//	out:  (OutC, OutH, OutW)
//
// Only out[:OutC*OutH*OutW] is written.
func Conv2D(c Conv, x, w, bias, out []float32, relu bool) {
	groups := max(c.Groups, 1)
	c.Groups = groups
	oh, ow := c.OutH(), c.OutW()
	if c.OutC <= 0 || oh <= 0 || ow <= 0 {
		return
	}
	if groups == c.InC && groups == c.OutC && groups > 1 {
		depthwise(c, x, w, bias, out, relu)
		return
	}
	cinG, coutG := c.InC/groups, c.OutC/groups
	kdim := cinG * c.K * c.K
	plane, oplane := c.InH*c.InW, oh*ow
	pointwise := c.K == 1 && c.Stride == 1 && c.Pad == 0
	for g := 0; g < groups; g++ {
		job := gemmJob{
			m: coutG, n: oplane, k: kdim,
			a: w[g*coutG*kdim:], lda: kdim,
			c: out[g*coutG*oplane:], ldc: oplane,
			relu: relu,
		}
		if bias != nil {
			job.bias = bias[g*coutG : (g+1)*coutG]
		}
		xg := x[g*cinG*plane : (g+1)*cinG*plane]
		if pointwise {
			// out(OutC, H·W) = W(OutC, InC) · X(InC, H·W)
			job.b = bSource{b: xg, ldb: plane}
		} else {
			job.b = bSource{
				im2col: true, x: xg,
				inH: c.InH, inW: c.InW, kk: c.K,
				stride: c.Stride, pad: c.Pad, outW: ow,
			}
		}
		job.run()
	}
}

// Gemm computes c = a·b (+ c if accumulate); a: (m, k), b: (k, n), c: (m, n),
// all row-major.
func Gemm(m, n, k int, a, b, c []float32, accumulate bool) {
	job := gemmJob{
		m: m, n: n, k: k,
		a: a, lda: k,
		b: bSource{b: b, ldb: n},
		c: c, ldc: n,
		accumulate: accumulate,
	}
	job.run()
}

// GlobalAvgPool computes out[i] = mean(x[i*hw : (i+1)*hw]) for i < c.
func GlobalAvgPool(c, hw int, x, out []float32) {
	if c <= 0 {
		return
	}
	out = out[:c]
	inv := 1 / float32(hw)
	for i := range out {
		row := x[i*hw : i*hw+hw]
		var s0, s1, s2, s3 float32
		j := 0
		for ; j+4 <= len(row); j += 4 {
			q := row[j : j+4 : j+4]
			s0 += q[0]
			s1 += q[1]
			s2 += q[2]
			s3 += q[3]
		}
		for ; j < len(row); j++ {
			s0 += row[j]
		}
		out[i] = (s0 + s1 + s2 + s3) * inv
	}
}

// Linear computes y = W·x + bias for one input vector: w is (out, in)
// row-major, x (in), bias (out) or nil, y (out).
func Linear(in, out int, x, w, bias, y []float32) {
	if out <= 0 {
		return
	}
	x = x[:in]
	y = y[:out]
	per := max(1, (1<<14)/max(1, in))
	nTasks := ceilDiv(out, per)
	if workers := workersFor(nTasks, in*out); workers > 1 {
		parallelFor(nTasks, workers, func(_ *scratch, t int) {
			linearRows(in, x, w, bias, y, t*per, min(out, (t+1)*per))
		})
		return
	}
	linearRows(in, x, w, bias, y, 0, out)
}

// linearRows computes y[o] for o in [o0, o1).
func linearRows(in int, x, w, bias, y []float32, o0, o1 int) {
	for o := o0; o < o1; o++ {
		row := w[o*in : o*in+in]
		var s0, s1, s2, s3 float32
		j := 0
		for ; j+4 <= in; j += 4 {
			r := row[j : j+4 : j+4]
			v := x[j : j+4 : j+4]
			s0 += r[0] * v[0]
			s1 += r[1] * v[1]
			s2 += r[2] * v[2]
			s3 += r[3] * v[3]
		}
		for ; j < in; j++ {
			s0 += row[j] * x[j]
		}
		s := s0 + s1 + s2 + s3
		if bias != nil {
			s += bias[o]
		}
		y[o] = s
	}
}
