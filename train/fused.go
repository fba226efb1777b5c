package train

import "math"

// Block-level fused BatchNorm passes. A block sums the BatchNorms of its
// branches (and skip), all over rows of the same length m, so one sweep per
// channel handles every branch: the sum is written once (with the ReLU
// applied) instead of being read and written per branch, and in the backward
// pass the shared output gradient is read once per chunk for all branches.

// fuseChunk is the row chunk (values) the fused passes work on, small enough
// that the chunk of the sum or of the output gradient stays in L1.
const fuseChunk = 2048

// bnSrc is one BatchNorm of a block: its rows in src (C, m), x̂ written to
// xhat (may be src).
type bnSrc struct {
	bn        *bnT
	src, xhat []float32
}

// bnTrainForwardSum normalises every BatchNorm in ins with its batch
// statistics (like bnTrainForward, updating the running statistics but not
// num_batches_tracked), writes Σ γ·x̂+β (in the order of ins) to out, and
// clamps out at zero if relu.
func bnTrainForwardSum(ins []bnSrc, c, m int, out []float32, relu bool) {
	nb := len(ins)
	parFor(c, 3*nb*c*m, func(lo, hi int) {
		mf := make([]float32, nb)
		isf := make([]float32, nb)
		for ch := lo; ch < hi; ch++ {
			for k, in := range ins {
				bn := in.bn.bn
				row := in.src[ch*m : (ch+1)*m]
				shift := float64(row[0])
				s, sq := shiftedSums(row, shift)
				mean := shift + s/float64(m)
				q := max(0, sq-s*s/float64(m)) // Σ(x−mean)²
				v := q / float64(m)
				is := 1 / math.Sqrt(v+bn.Eps)
				in.bn.invstd[ch] = float32(is)
				mf[k], isf[k] = float32(mean), float32(is)
				unbiased := v
				if m > 1 {
					unbiased = q / float64(m-1)
				}
				rm, rv := bn.RunningMean.Data, bn.RunningVar.Data
				rm[ch] = float32((1-bnMomentum)*float64(rm[ch]) + bnMomentum*mean)
				rv[ch] = float32((1-bnMomentum)*float64(rv[ch]) + bnMomentum*unbiased)
			}
			o := out[ch*m : (ch+1)*m]
			for j0 := 0; j0 < m; j0 += fuseChunk {
				j1 := min(m, j0+fuseChunk)
				oc := o[j0:j1]
				for k, in := range ins {
					g, b := in.bn.bn.Weight.Data[ch], in.bn.bn.Bias.Data[ch]
					mk, ik := mf[k], isf[k]
					src := in.src[ch*m+j0 : ch*m+j1]
					dst := in.xhat[ch*m+j0 : ch*m+j1]
					src, dst = src[:len(oc)], dst[:len(oc)]
					if k == 0 {
						for i, x := range src {
							h := (x - mk) * ik
							dst[i] = h
							oc[i] = g*h + b
						}
						continue
					}
					for i, x := range src {
						h := (x - mk) * ik
						dst[i] = h
						oc[i] += g*h + b
					}
				}
				if relu {
					for i, v := range oc {
						oc[i] = max(v, 0)
					}
				}
			}
		}
	})
}

// bnGrad is one BatchNorm of a block in the backward pass: x̂ rows in xhat,
// the input gradient written to dz (may be xhat).
type bnGrad struct {
	bn       *bnT
	xhat, dz []float32
}

// bnBackwardSum is bnBackward for every BatchNorm in ins, which share the
// output gradient d (C, m). If y is not nil, d is first multiplied in place
// by the ReLU mask y > 0 (y the block's ReLU output).
func bnBackwardSum(ins []bnGrad, c, m int, d, y []float32) {
	nb := len(ins)
	parFor(c, 3*nb*c*m, func(lo, hi int) {
		sdx := make([]float64, nb)
		for ch := lo; ch < hi; ch++ {
			dr := d[ch*m : (ch+1)*m]
			if y != nil {
				reluMask(y[ch*m:(ch+1)*m], dr)
			}
			var sd float64
			clear(sdx)
			for j0 := 0; j0 < m; j0 += fuseChunk {
				j1 := min(m, j0+fuseChunk)
				dc := dr[j0:j1]
				for k, in := range ins {
					if k == 0 {
						s, sx := dotSums(dc, in.xhat[ch*m+j0:ch*m+j1])
						sd += s
						sdx[k] += sx
						continue
					}
					sdx[k] += dotF64(dc, in.xhat[ch*m+j0:ch*m+j1])
				}
			}
			for k, in := range ins {
				in.bn.gW.Data[ch] += float32(sdx[k])
				in.bn.gB.Data[ch] += float32(sd)
			}
			md := float32(sd / float64(m))
			for k, in := range ins {
				kf := in.bn.bn.Weight.Data[ch] * in.bn.invstd[ch]
				mdx := float32(sdx[k] / float64(m))
				xr := in.xhat[ch*m : (ch+1)*m]
				out := in.dz[ch*m : (ch+1)*m]
				xr, out = xr[:len(dr)], out[:len(dr)]
				for i, dv := range dr {
					out[i] = kf * (dv - md - xr[i]*mdx)
				}
			}
		}
	})
}

// dotF64 returns Σ a[i]·b[i] (b at least as long as a) in float64, in four
// interleaved partial sums.
func dotF64(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		p, q := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += float64(p[0]) * float64(q[0])
		s1 += float64(p[1]) * float64(q[1])
		s2 += float64(p[2]) * float64(q[2])
		s3 += float64(p[3]) * float64(q[3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// reluMask zeroes d where y is not positive (y >= 0; see reluBackward).
func reluMask(y, d []float32) {
	y = y[:len(d)]
	for i, v := range y {
		b := math.Float32bits(v)
		mask := uint32(int32(b|-b) >> 31) // all ones if b != 0
		d[i] = math.Float32frombits(math.Float32bits(d[i]) & mask)
	}
}
