// Package ref holds the naive, obviously-correct kernels that every fast
// kernel is tested against. They are kept forever as the oracle.
package ref

// Conv2D computes a 2-D convolution of one image, accumulating in float64.
//
//	x:    (inC, inH, inW)
//	w:    (outC, inC/groups, k, k)
//	bias: (outC) or nil
//	out:  (outC, outH, outW), outH = (inH+2*pad-k)/stride+1
//
// If relu is set, negative outputs are replaced by zero.
func Conv2D(inC, inH, inW, outC, k, stride, pad, groups int, x, w, bias, out []float32, relu bool) {
	outH := (inH+2*pad-k)/stride + 1
	outW := (inW+2*pad-k)/stride + 1
	cinG := inC / groups
	coutG := outC / groups
	for co := 0; co < outC; co++ {
		g := co / coutG
		for oy := 0; oy < outH; oy++ {
			for ox := 0; ox < outW; ox++ {
				var s float64
				if bias != nil {
					s = float64(bias[co])
				}
				for ci := 0; ci < cinG; ci++ {
					xc := (g*cinG + ci) * inH * inW
					wc := (co*cinG + ci) * k * k
					for ky := 0; ky < k; ky++ {
						iy := oy*stride - pad + ky
						if iy < 0 || iy >= inH {
							continue
						}
						for kx := 0; kx < k; kx++ {
							ix := ox*stride - pad + kx
							if ix < 0 || ix >= inW {
								continue
							}
							s += float64(x[xc+iy*inW+ix]) * float64(w[wc+ky*k+kx])
						}
					}
				}
				v := float32(s)
				if relu && v < 0 {
					v = 0
				}
				out[(co*outH+oy)*outW+ox] = v
			}
		}
	}
}

// Gemm computes c = a·b (+ c if accumulate) for row-major a (m×k), b (k×n),
// c (m×n), accumulating each dot product in float64.
func Gemm(m, n, k int, a, b, c []float32, accumulate bool) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			if accumulate {
				s = float64(c[i*n+j])
			}
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			c[i*n+j] = float32(s)
		}
	}
}
