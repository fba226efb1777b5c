package kernel

// RunImages computes outs[i] = conv1×1(xs[i]) + bias (then ReLU if the op
// fuses it) for several images of hw pixels each, on the calling goroutine,
// with every chunk of weights applied to all the images while it is in L1:
// the weights are read once for the whole group of images instead of once
// per image. That is what the late layers of a batch need, where the
// weights (up to 7 MB in S3/S4's last layer) are many times one image's
// input (150 KB at 7×7×768) but the inputs of a few images together still
// fit in L2. Each image's output is bit-identical to Run's (the tiles and
// the order of the sums are the same).
//
// xs[i] and outs[i] are laid out as for Run; len(outs) must be len(xs).
func (op *PointwiseOp) RunImages(xs [][]float32, hw int, outs [][]float32) {
	if len(xs) != len(outs) {
		panic("kernel: RunImages: inputs and outputs differ in number")
	}
	if hw <= 0 || op.cob == 0 || len(xs) == 0 {
		return
	}
	if op.cib == 0 {
		for _, out := range outs {
			op.biasOnly(hw, out[:BlockedLen(op.cout, hw)])
		}
		return
	}
	im := op.im
	kdim := op.cib * BlockC
	stride := hw * BlockC
	kcb := im.kcb
	nTiles := ceilDiv(hw, im.r)
	var last uint
	if op.bias != nil {
		last |= pwBias
	}
	if op.relu {
		last |= pwReLU
	}
	for i := range xs {
		xs[i] = xs[i][:BlockedLen(op.cin, hw)]
		outs[i] = outs[i][:BlockedLen(op.cout, hw)]
	}
	nGroups := ceilDiv(op.cob, im.nb)
	for g := 0; g < nGroups; g++ {
		ob0 := g * im.nb
		nb := min(im.nb, op.cob-ob0)
		panel := op.w[ob0*BlockC*kdim : (ob0+nb)*BlockC*kdim]
		var bias []float32
		if op.bias != nil {
			bias = op.bias[ob0*BlockC : (ob0+nb)*BlockC]
		}
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
			// The next weight chunk comes in a slice per tile while this
			// one runs over the tiles of every image (as in Run).
			var next []float32
			if k0+kb < op.cib {
				next = panel[(k0+kb)*BlockC*nb*BlockC : min(op.cib, k0+2*kb)*BlockC*nb*BlockC]
			} else if g+1 < nGroups {
				nob := (g + 1) * im.nb
				nnb := min(im.nb, op.cob-nob)
				next = op.w[nob*BlockC*kdim : nob*BlockC*kdim+min(op.cib, kcb)*BlockC*nnb*BlockC]
			}
			per := ceilDiv(ceilDiv(len(next), 16), nTiles*len(xs)) // lines per tile
			for i, x := range xs {
				xk := x[k0*stride : (k0+kb)*stride]
				ob := outs[i][ob0*stride : (ob0+nb)*stride]
				for p := 0; p < hw; p += im.r {
					rows := min(im.r, hw-p)
					xt := xk[p*BlockC : (kb-1)*stride+(p+rows)*BlockC]
					ot := ob[p*BlockC : (nb-1)*stride+(p+rows)*BlockC]
					if n := min(per, len(next)/16); n > 0 && pwPrefetch {
						prefetchLines(next, n)
						next = next[n*16:]
					}
					im.kern[rows][nb](xt, wk, ot, bias, kb, stride, stride, flags)
				}
			}
		}
	}
}
