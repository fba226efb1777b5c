package kernel

// Pure-Go twins of the generated assembly micro-kernels (_gen/gemm). Each
// computes one mr×nr tile of C from packed panels with the epilogue fused:
//
//	for i := 0; i < rows; i++ {
//		for j := 0; j < cols; j++ {
//			var s float32
//			for p := 0; p < kc; p++ {
//				s += a[p*mr+i] * b[p*nr+j]
//			}
//			if flags&flagAcc != 0 {
//				s += c[i*ldc+j]
//			}
//			if flags&flagBias != 0 {
//				s += bias[i]
//			}
//			if flags&flagReLU != 0 {
//				s = max(s, 0)
//			}
//			c[i*ldc+j] = s
//		}
//	}
//
// (The assembly sums the k products in order, one FMA each, so results
// agree to rounding of the fused multiply-add.)

// Epilogue flags of a micro-kernel call.
const (
	flagAcc  = 1 // add the old C
	flagBias = 2 // add bias[i] to row i
	flagReLU = 4 // clamp at zero
)

// gemmTileGo is the reference loop above for any mr×nr.
func gemmTileGo(mr, nr, kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	a = a[:kc*mr]
	b = b[:kc*nr]
	for i := 0; i < rows; i++ {
		row := c[i*ldc : i*ldc+cols]
		for j := range row {
			var s float32
			for p := 0; p < kc; p++ {
				s += a[p*mr+i] * b[p*nr+j]
			}
			if flags&flagAcc != 0 {
				s += row[j]
			}
			if flags&flagBias != 0 {
				s += bias[i]
			}
			if flags&flagReLU != 0 {
				s = max(s, 0)
			}
			row[j] = s
		}
	}
}

// gemm12x32Go is the twin of gemmAVX512x12x32: gemmTileGo with mr=12, nr=32.
func gemm12x32Go(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemmTileGo(12, 32, kc, a, b, c, ldc, bias, rows, cols, flags)
}

// gemm6x16Go is the twin of gemmAVX2x6x16: gemmTileGo with mr=6, nr=16.
func gemm6x16Go(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemmTileGo(6, 16, kc, a, b, c, ldc, bias, rows, cols, flags)
}

// gemm12x16Go is the twin of gemmAVX512x12x16: gemmTileGo with mr=12, nr=16.
func gemm12x16Go(kc int, a, b, c []float32, ldc int, bias []float32, rows, cols int, flags uint) {
	gemmTileGo(12, 16, kc, a, b, c, ldc, bias, rows, cols, flags)
}

// gemvGo is the twin of gemvAVX512: y[r] = Σ_{j<in} w[r*in+j]·x[j] for
// r < rows (four partial sums per row; the assembly keeps 32).
func gemvGo(w, x, y []float32, in, rows int) {
	x = x[:in]
	for r := range y[:rows] {
		row := w[r*in : r*in+in]
		var s0, s1, s2, s3 float32
		j := 0
		for ; j+4 <= in; j += 4 {
			q := row[j : j+4 : j+4]
			v := x[j : j+4 : j+4]
			s0 += q[0] * v[0]
			s1 += q[1] * v[1]
			s2 += q[2] * v[2]
			s3 += q[3] * v[3]
		}
		for ; j < in; j++ {
			s0 += row[j] * x[j]
		}
		y[r] = (s0 + s1) + (s2 + s3)
	}
}

// stemOCB is the number of output channels per block of the direct 3×3
// stride-2 kernels (the packed weight layout).
const stemOCB = 8

// conv3x3s2Go is the twin of conv3x3s2AVX512. It computes one output row of
// a dense 3×3 stride-2 convolution of a zero-padded input xp (channel ci,
// kernel row ky at xp[ci*chStride+ky*ldx:], padded column 2·ox+kx holding
// the input column 2·ox−1+kx) for ocb blocks of 8 output channels, with the
// weights packed as w[((blk*cin+ci)*9+ky*3+kx)*8+o] and bias b[blk*8+o]:
//
//	for blk < ocb, o < 8, ox < ow:
//		s := b[blk*8+o]
//		for ci < cin, ky < 3, kx < 3:
//			s += xp[ci*chStride+ky*ldx+2*ox+kx] * w[((blk*cin+ci)*9+ky*3+kx)*8+o]
//		if relu { s = max(s, 0) }
//		out[(blk*8+o)*ldo+ox] = s
func conv3x3s2Go(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, ocb, ow int, relu bool) {
	for blk := 0; blk < ocb; blk++ {
		for o := 0; o < stemOCB; o++ {
			oc := blk*stemOCB + o
			dst := out[oc*ldo : oc*ldo+ow]
			for ox := range dst {
				s := b[oc]
				for ci := 0; ci < cin; ci++ {
					wt := w[(blk*cin+ci)*9*stemOCB+o:]
					for ky := 0; ky < 3; ky++ {
						r := xp[ci*chStride+ky*ldx+2*ox:]
						r = r[:3]
						s += r[0] * wt[(ky*3)*stemOCB]
						s += r[1] * wt[(ky*3+1)*stemOCB]
						s += r[2] * wt[(ky*3+2)*stemOCB]
					}
				}
				if relu {
					s = max(s, 0)
				}
				dst[ox] = s
			}
		}
	}
}

// rowSumGo is the twin of rowSumAVX512: out[i] = scale·Σ_{j<hw} x[i*hw+j]
// for i < c.
func rowSumGo(x, out []float32, c, hw int, scale float32) {
	for i := range out[:c] {
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
		out[i] = (s0 + s1 + s2 + s3) * scale
	}
}

// scaleReLUGo is the twin of scaleReLUAVX512: x[i*hw+j] = max(x[i*hw+j]·g[i], 0)
// for i < c, j < hw.
func scaleReLUGo(x, g []float32, c, hw int) {
	for i, gv := range g[:c] {
		row := x[i*hw : i*hw+hw]
		for j, v := range row {
			row[j] = max(v*gv, 0)
		}
	}
}
