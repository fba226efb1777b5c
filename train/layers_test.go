package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// maxRel returns max|a−b| / max(max|b|, tiny).
func maxRel(a []float32, b []float64) float64 {
	var d, s float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-b[i]))
		s = math.Max(s, math.Abs(b[i]))
	}
	return d / math.Max(s, 1e-12)
}

// fdCheck compares grad (the analytic gradient of f with respect to v)
// with central differences f(v±h) at up to n coordinates (the largest
// gradients plus a few others), relative to max|grad|.
func fdCheck(t *testing.T, what string, f func() float64, v, grad []float32, h, tol float64, n int) {
	t.Helper()
	fdCheckSkip(t, what, f, v, grad, h, tol, n, nil, false)
}

// fdCheckSkip is fdCheck that leaves out the coordinates where skip is
// true. With oneSided, the one-sided differences (f(v+h)−f(v))/h and
// (f(v)−f(v−h))/h are accepted too: in a ReLU network a unit may change
// sign within ±h, and then only the side without the kink is a derivative.
func fdCheckSkip(t *testing.T, what string, f func() float64, v, grad []float32, h, tol float64, n int, skip func(int) bool, oneSided bool) {
	t.Helper()
	var gmax float64
	for _, g := range grad {
		gmax = math.Max(gmax, math.Abs(float64(g)))
	}
	if gmax == 0 {
		t.Errorf("%s: gradient is all zero", what)
		return
	}
	step := max(1, len(v)/n)
	var worst float64
	for i := 0; i < len(v); i += step {
		if skip != nil && skip(i) {
			continue
		}
		old := v[i]
		v[i] = old + float32(h)
		fp := f()
		v[i] = old - float32(h)
		fm := f()
		v[i] = old
		hp, hm := float64(old+float32(h))-float64(old), float64(old)-float64(old-float32(h)) // the steps taken
		fd := (fp - fm) / (hp + hm)
		e := math.Abs(fd-float64(grad[i])) / gmax
		if oneSided && e > tol {
			f0 := f()
			for _, d := range []float64{(fp - f0) / hp, (f0 - fm) / hm} {
				if ed := math.Abs(d-float64(grad[i])) / gmax; ed < e {
					e, fd = ed, d
				}
			}
		}
		worst = math.Max(worst, e)
		if e > tol {
			t.Errorf("%s[%d]: finite difference %.6g, backward %.6g (error %.2g of max %.3g)", what, i, fd, grad[i], e, gmax)
			return
		}
	}
	t.Logf("%s: worst finite-difference error %.2g of max |grad| %.3g", what, worst, gmax)
}

// ---------------------------------------------------------------------------
// naive float64 references (the trainer's layout, (C, H, W, N))
// ---------------------------------------------------------------------------

func naiveConvForward(c convOp, x *act, w []float32) []float64 {
	oh, ow := c.outSize(x.H, x.W)
	cinG := c.Cin
	if c.DW {
		cinG = 1
	}
	kk := c.K * c.K
	z := make([]float64, c.Cout*x.N*oh*ow)
	for o := 0; o < c.Cout; o++ {
		for n := 0; n < x.N; n++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					var s float64
					for cg := 0; cg < cinG; cg++ {
						ci := cg
						if c.DW {
							ci = o % c.Cin
						}
						for ky := 0; ky < c.K; ky++ {
							for kx := 0; kx < c.K; kx++ {
								iy, ix := oy*c.S-c.P+ky*c.dil(), ox*c.S-c.P+kx*c.dil()
								if iy < 0 || iy >= x.H || ix < 0 || ix >= x.W {
									continue
								}
								s += float64(w[(o*cinG+cg)*kk+ky*c.K+kx]) * float64(x.Data[x.at(ci, n, iy, ix)])
							}
						}
					}
					z[((o*oh+oy)*ow+ox)*x.N+n] = s
				}
			}
		}
	}
	return z
}

func naiveConvBackward(c convOp, x *act, w, dz []float32) (dw, dx []float64) {
	oh, ow := c.outSize(x.H, x.W)
	cinG := c.Cin
	if c.DW {
		cinG = 1
	}
	kk := c.K * c.K
	dw = make([]float64, len(w))
	dx = make([]float64, len(x.Data))
	for o := 0; o < c.Cout; o++ {
		for n := 0; n < x.N; n++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					g := float64(dz[((o*oh+oy)*ow+ox)*x.N+n])
					for cg := 0; cg < cinG; cg++ {
						ci := cg
						if c.DW {
							ci = o % c.Cin
						}
						for ky := 0; ky < c.K; ky++ {
							for kx := 0; kx < c.K; kx++ {
								iy, ix := oy*c.S-c.P+ky*c.dil(), ox*c.S-c.P+kx*c.dil()
								if iy < 0 || iy >= x.H || ix < 0 || ix >= x.W {
									continue
								}
								xi := x.at(ci, n, iy, ix)
								wi := (o*cinG+cg)*kk + ky*c.K + kx
								dw[wi] += g * float64(x.Data[xi])
								dx[xi] += g * float64(w[wi])
							}
						}
					}
				}
			}
		}
	}
	return dw, dx
}

// naiveBN returns y = γ·x̂ + β (batch statistics) and, given dy, the
// gradients of x, γ, β, all in float64.
func naiveBN(z, gamma, beta, dy []float32, c, m int, eps float64) (y, dz, dg, db []float64) {
	y, dz = make([]float64, c*m), make([]float64, c*m)
	dg, db = make([]float64, c), make([]float64, c)
	for ch := 0; ch < c; ch++ {
		row := z[ch*m : (ch+1)*m]
		var mean, v float64
		for _, x := range row {
			mean += float64(x)
		}
		mean /= float64(m)
		for _, x := range row {
			v += (float64(x) - mean) * (float64(x) - mean)
		}
		v /= float64(m)
		is := 1 / math.Sqrt(v+eps)
		var sd, sdx float64
		for i, x := range row {
			xh := (float64(x) - mean) * is
			y[ch*m+i] = float64(gamma[ch])*xh + float64(beta[ch])
			sd += float64(dy[ch*m+i])
			sdx += float64(dy[ch*m+i]) * xh
		}
		dg[ch], db[ch] = sdx, sd
		for i, x := range row {
			xh := (float64(x) - mean) * is
			dz[ch*m+i] = float64(gamma[ch]) * is * (float64(dy[ch*m+i]) - sd/float64(m) - xh*sdx/float64(m))
		}
	}
	return
}

// ---------------------------------------------------------------------------
// convolution
// ---------------------------------------------------------------------------

func TestConvBackward(t *testing.T) {
	cases := []struct {
		name   string
		op     convOp
		n, h   int
		center []bool
	}{
		{"dense3x3_s2", convOp{Cin: 3, Cout: 5, K: 3, S: 2, P: 1}, 2, 7, nil},
		{"dense3x3_s1", convOp{Cin: 4, Cout: 6, K: 3, S: 1, P: 1}, 2, 5, nil},
		{"dense1x1_s2", convOp{Cin: 3, Cout: 4, K: 1, S: 2, P: 0}, 2, 5, nil},
		{"pointwise", convOp{Cin: 6, Cout: 10, K: 1, S: 1, P: 0}, 3, 4, nil},
		{"depthwise_s1", convOp{Cin: 4, Cout: 4, K: 3, S: 1, P: 1, DW: true}, 2, 6, nil},
		{"depthwise_s2", convOp{Cin: 4, Cout: 4, K: 3, S: 2, P: 1, DW: true}, 2, 7, nil},
		{"depthwise_s2_even", convOp{Cin: 3, Cout: 3, K: 3, S: 2, P: 1, DW: true}, 3, 6, nil},
		{"depthwise_1x1_s1", convOp{Cin: 3, Cout: 3, K: 3, S: 1, P: 1, DW: true}, 2, 1, nil},
		{"depthwise_branches3_centre", convOp{Cin: 4, Cout: 12, K: 3, S: 1, P: 1, DW: true}, 2, 5, []bool{false, false, true}},
		{"depthwise_branches2_s2_centre", convOp{Cin: 4, Cout: 8, K: 3, S: 2, P: 1, DW: true}, 2, 5, []bool{false, true}},
		// planes of ≥ 32 KB: the row-ordered passes
		{"depthwise_rows_s1", convOp{Cin: 2, Cout: 6, K: 3, S: 1, P: 1, DW: true}, 64, 12, []bool{false, true, false}},
		{"depthwise_rows_s2", convOp{Cin: 2, Cout: 4, K: 3, S: 2, P: 1, DW: true}, 64, 24, []bool{false, true}},
		// dilation (DeepLabV3's atrous convolutions and dilated backbone stages)
		{"dense3x3_d2", convOp{Cin: 3, Cout: 5, K: 3, S: 1, P: 2, D: 2}, 2, 7, nil},
		{"dense3x3_d3_p1", convOp{Cin: 4, Cout: 3, K: 3, S: 1, P: 1, D: 3}, 2, 8, nil},
		{"dense3x3_d6_beyond", convOp{Cin: 2, Cout: 3, K: 3, S: 1, P: 6, D: 6}, 2, 4, nil}, // every tap but the centre in the padding
		{"dense3x3_s2_d2", convOp{Cin: 3, Cout: 4, K: 3, S: 2, P: 2, D: 2}, 2, 9, nil},
		{"dense5x5_d2_p3", convOp{Cin: 2, Cout: 3, K: 5, S: 1, P: 3, D: 2}, 1, 9, nil},
		{"depthwise_d2", convOp{Cin: 4, Cout: 4, K: 3, S: 1, P: 2, D: 2, DW: true}, 2, 6, nil},
		{"depthwise_d4_branches_centre", convOp{Cin: 3, Cout: 9, K: 3, S: 1, P: 4, D: 4, DW: true}, 2, 7, []bool{false, false, true}},
		{"depthwise_s2_d2", convOp{Cin: 3, Cout: 6, K: 3, S: 2, P: 2, D: 2, DW: true}, 2, 9, []bool{false, true}},
		{"depthwise_rows_d2", convOp{Cin: 2, Cout: 6, K: 3, S: 1, P: 2, D: 2, DW: true}, 64, 12, []bool{false, true, false}},
	}
	for ci, cc := range cases {
		t.Run(cc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(ci), 5))
			op := cc.op
			op.CenterOnly = cc.center
			x := &act{C: op.Cin, N: cc.n, H: cc.h, W: cc.h + 1, Data: randVec(r, op.Cin*cc.n*cc.h*(cc.h+1), 1)}
			cinG := op.Cin
			if op.DW {
				cinG = 1
			}
			kk := op.K * op.K
			w := randVec(r, op.Cout*cinG*kk, 0.5)
			for b, c := range cc.center { // centre-only branches: zero-padded 1×1 kernels
				if c {
					for o := b * op.Cin; o < (b+1)*op.Cin; o++ {
						for t := 0; t < kk; t++ {
							if t != kk/2 {
								w[o*kk+t] = 0
							}
						}
					}
				}
			}
			oh, ow := op.outSize(x.H, x.W)
			// PyTorch's Conv2d output size: ⌊(H + 2P − D·(K−1) − 1)/S⌋ + 1.
			d := max(1, op.D)
			if wh, ww := (x.H+2*op.P-d*(op.K-1)-1)/op.S+1, (x.W+2*op.P-d*(op.K-1)-1)/op.S+1; oh != wh || ow != ww {
				t.Fatalf("output %dx%d, PyTorch's formula gives %dx%d", oh, ow, wh, ww)
			}
			zn := op.Cout * cc.n * oh * ow
			rz := randVec(r, zn, 1)
			var ws convWork
			z := make([]float32, zn)
			op.forward(x, w, z, &ws)
			zref := naiveConvForward(op, x, w)
			if e := maxRel(z, zref); e > 1e-5 {
				t.Errorf("forward error %.2g", e)
			}
			dw := make([]float32, len(w))
			dx := make([]float32, len(x.Data))
			op.backward(x, w, rz, dw, dx, &ws)
			dwRef, dxRef := naiveConvBackward(op, x, w, rz)
			// Centre-only branches (zero-padded 1×1 kernels) only have a
			// gradient at the centre tap; the others are reported as 0.
			offCentre := func(i int) bool {
				b := i / kk / op.Cin
				return b < len(cc.center) && cc.center[b] && i%kk != kk/2
			}
			for i := range dwRef {
				if offCentre(i) {
					dwRef[i] = 0
				}
			}
			if e := maxRel(dw, dwRef); e > 1e-5 {
				t.Errorf("weight gradient differs from the naive one: %.2g", e)
			}
			if e := maxRel(dx, dxRef); e > 1e-5 {
				t.Errorf("input gradient differs from the naive one: %.2g", e)
			}
			// dx accumulates into the buffer.
			dx2 := make([]float32, len(x.Data))
			for i := range dx2 {
				dx2[i] = 1
			}
			op.backward(x, w, rz, dw, dx2, &ws)
			for i := range dx2 {
				dx2[i]--
			}
			if e := maxRel(dx2, dxRef); e > 1e-5 {
				t.Errorf("input gradient does not accumulate: %.2g", e)
			}
			// With overwrite, dx is set whatever it held.
			for i := range dx2 {
				dx2[i] = 7
			}
			op.backwardTo(x, w, rz, dw, dx2, &ws, true)
			if e := maxRel(dx2, dxRef); e > 1e-5 {
				t.Errorf("input gradient with overwrite: %.2g", e)
			}
			loss := func() float64 {
				op.forward(x, w, z, &ws)
				return dot64(z, rz)
			}
			fdCheckSkip(t, "dW", loss, w, dw, 1e-2, 1e-3, 40, offCentre, false)
			fdCheck(t, "dX", loss, x.Data, dx, 1e-2, 1e-3, 40)
		})
	}
}

// ---------------------------------------------------------------------------
// BatchNorm (training mode)
// ---------------------------------------------------------------------------

func TestBatchNormBackward(t *testing.T) {
	// (With 2 values per channel, x̂ = ±1 and the exact input gradient is
	// only an eps effect: float32 cancellation dominates, so m starts at 3.)
	for _, m := range []int{3, 5, 64} {
		t.Run(fmt.Sprint("m", m), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(m), 9))
			const c = 3
			z := randVec(r, c*m, 2)
			for i := range z {
				z[i] += float32(i / m) // per-channel offsets
			}
			gamma, beta := randVec(r, c, 1), randVec(r, c, 0.3)
			rm, rv := randVec(r, c, 0.1), []float32{1, 2, 0.5}
			dy := randVec(r, c*m, 1)
			bn := bnParams{gamma: gamma, beta: beta, rmean: rm, rvar: rv, eps: 1e-5}
			fwd := func(update bool) ([]float32, []float32, []float32) {
				xh := append([]float32(nil), z...)
				sum := make([]float32, c*m)
				is := make([]float32, c)
				bnTrainForward(bn, xh, m, sum, is, update)
				return xh, sum, is
			}
			rm0, rv0 := append([]float32(nil), rm...), append([]float32(nil), rv...)
			xh, y, is := fwd(true)
			yRef, dzRef, dgRef, dbRef := naiveBN(z, gamma, beta, dy, c, m, 1e-5)
			if e := maxRel(y, yRef); e > 1e-5 {
				t.Errorf("forward error %.2g", e)
			}
			// running statistics: momentum 0.1, unbiased variance
			for ch := 0; ch < c; ch++ {
				var mean, q float64
				for _, v := range z[ch*m : (ch+1)*m] {
					mean += float64(v)
				}
				mean /= float64(m)
				for _, v := range z[ch*m : (ch+1)*m] {
					q += (float64(v) - mean) * (float64(v) - mean)
				}
				wantM := 0.9*float64(rm0[ch]) + 0.1*mean
				wantV := 0.9*float64(rv0[ch]) + 0.1*q/float64(m-1)
				if math.Abs(float64(rm[ch])-wantM) > 1e-6*(1+math.Abs(wantM)) || math.Abs(float64(rv[ch])-wantV) > 1e-6*(1+wantV) {
					t.Errorf("channel %d: running mean/var %v %v, want %v %v", ch, rm[ch], rv[ch], wantM, wantV)
				}
			}
			dg, db, dz := make([]float32, c), make([]float32, c), make([]float32, c*m)
			bnBackward(gamma, is, xh, dy, m, dg, db, dz)
			if e := maxRel(dz, dzRef); e > 1e-5 {
				t.Errorf("input gradient differs from the naive one: %.2g", e)
			}
			if e := maxRel(dg, dgRef); e > 1e-5 {
				t.Errorf("gamma gradient differs: %.2g", e)
			}
			if e := maxRel(db, dbRef); e > 1e-5 {
				t.Errorf("beta gradient differs: %.2g", e)
			}
			loss := func() float64 {
				_, y, _ := fwd(false)
				return dot64(y, dy)
			}
			fdCheck(t, "dX", loss, z, dz, 1e-2, 5e-3, 60)
			fdCheck(t, "dGamma", loss, gamma, dg, 1e-2, 1e-3, 10)
			fdCheck(t, "dBeta", loss, beta, db, 1e-2, 1e-3, 10)
		})
	}
}

// ---------------------------------------------------------------------------
// ReLU, SE
// ---------------------------------------------------------------------------

func TestReLUBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	x := randVec(r, 5000, 1)
	for i, v := range x { // keep away from the kink
		if math.Abs(float64(v)) < 0.05 {
			x[i] = 0.5
		}
	}
	x[7] = 0 // the kink itself: PyTorch's gradient is 0 there
	dy := randVec(r, len(x), 1)
	y := append([]float32(nil), x...)
	reluInPlace(y)
	d := append([]float32(nil), dy...)
	reluBackward(y, d)
	if d[7] != 0 {
		t.Errorf("gradient at 0 is %v, want 0", d[7])
	}
	loss := func() float64 {
		y := append([]float32(nil), x...)
		reluInPlace(y)
		return dot64(y, dy)
	}
	x[7] = 1 // the finite difference is not defined at the kink
	d[7] = dy[7]
	fdCheck(t, "dX", loss, x, d, 1e-2, 1e-3, 200)
}

func TestSEBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	const c, hid, n, hw = 8, 3, 3, 5
	p := &seParams{c: c, hid: hid, wr: randVec(r, hid*c, 0.7), br: randVec(r, hid, 0.2),
		we: randVec(r, c*hid, 0.7), be: randVec(r, c, 0.2),
		gwr: make([]float32, hid*c), gbr: make([]float32, hid), gwe: make([]float32, c*hid), gbe: make([]float32, c)}
	s := randVec(r, c*n*hw, 1)
	for i := range s {
		s[i] += 0.5
	}
	dy := randVec(r, len(s), 1)
	out := make([]float32, len(s))
	p.forward(s, n, hw, out)
	// naive forward
	for ch := 0; ch < c; ch++ {
		for b := 0; b < n; b++ {
			var mean [c]float64
			for cc := 0; cc < c; cc++ {
				for i := 0; i < hw; i++ {
					mean[cc] += float64(s[(cc*hw+i)*n+b]) / hw
				}
			}
			var h [hid]float64
			for j := range h {
				h[j] = float64(p.br[j])
				for cc := 0; cc < c; cc++ {
					h[j] += float64(p.wr[j*c+cc]) * mean[cc]
				}
				h[j] = math.Max(h[j], 0)
			}
			a := float64(p.be[ch])
			for j := range h {
				a += float64(p.we[ch*hid+j]) * h[j]
			}
			g := 1 / (1 + math.Exp(-a))
			for i := 0; i < hw; i++ {
				k := (ch*hw+i)*n + b
				if d := math.Abs(float64(out[k]) - float64(s[k])*g); d > 1e-5 {
					t.Fatalf("forward (%d,%d,%d): %v, want %v", ch, b, i, out[k], float64(s[k])*g)
				}
			}
		}
	}
	ds := append([]float32(nil), dy...)
	p.backward(s, ds, n, hw)
	loss := func() float64 {
		o := make([]float32, len(s))
		p.forward(s, n, hw, o)
		return dot64(o, dy)
	}
	fdCheck(t, "dS", loss, s, ds, 1e-2, 2e-3, 60)
	fdCheck(t, "dWreduce", loss, p.wr, p.gwr, 1e-2, 2e-3, 30)
	fdCheck(t, "dBreduce", loss, p.br, p.gbr, 1e-2, 2e-3, 10)
	fdCheck(t, "dWexpand", loss, p.we, p.gwe, 1e-2, 2e-3, 30)
	fdCheck(t, "dBexpand", loss, p.be, p.gbe, 1e-2, 2e-3, 10)
}

func TestTranspose(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, sz := range [][2]int{{1, 1}, {3, 5}, {37, 70}, {64, 129}} {
		a := randVec(r, sz[0]*sz[1], 1)
		b := make([]float32, len(a))
		transpose(a, sz[0], sz[1], b)
		for i := 0; i < sz[0]; i++ {
			for j := 0; j < sz[1]; j++ {
				if b[j*sz[0]+i] != a[i*sz[1]+j] {
					t.Fatalf("%v: (%d,%d) wrong", sz, i, j)
				}
			}
		}
	}
}

// TestConvActiveTaps checks which taps a dense convolution keeps: those
// that read at least one input pixel (the rest read only padding and are
// left out of the im2col matrix; TestConvBackward's dilated cases check
// the results against the naive loops).
func TestConvActiveTaps(t *testing.T) {
	for _, c := range []struct {
		op   convOp
		h, w int
		want []int
	}{
		{convOp{Cin: 2, Cout: 3, K: 3, S: 1, P: 1}, 4, 5, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{convOp{Cin: 2, Cout: 3, K: 3, S: 1, P: 6, D: 6}, 4, 5, []int{4}},                             // ASPP rate 6 on a 4×5 map
		{convOp{Cin: 2, Cout: 3, K: 3, S: 1, P: 4, D: 4}, 3, 6, []int{3, 4, 5}},                       // rows out, columns in
		{convOp{Cin: 2, Cout: 3, K: 3, S: 1, P: 24, D: 24}, 32, 20, []int{1, 4, 7}},                   // columns out
		{convOp{Cin: 1, Cout: 1, K: 3, S: 1, P: 36, D: 36}, 40, 40, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}}, // corners reach
	} {
		var ws convWork
		st := c.op.spanTable(&ws, c.h, c.w, 2)
		if !slices.Equal(st.active, c.want) {
			t.Errorf("%+v on %dx%d: active taps %v, want %v", c.op, c.h, c.w, st.active, c.want)
		}
	}
}
