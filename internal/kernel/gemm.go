package kernel

// Blocked, packed, parallel GEMM driver.
//
// C (m×n) = A (m×k) · B (k×n), row-major with leading dimensions, optionally
// plus the old C, plus a per-row bias, then ReLU; bias and ReLU are applied
// while the micro-tiles are written back, not in a second pass.
//
// The C matrix is cut into mc×nc tiles that are distributed over goroutines.
// For each tile and each kc-long slice of k, the worker packs its A block into
// mr-row panels and its B block into nr-column panels (zero-padded at the
// edges) and runs the micro-kernel over every mr×nr micro-tile. B can be a
// dense matrix or an implicit im2col view of an image, so convolutions never
// materialise the im2col matrix.

// Cache blocking. kcMax keeps an A panel (kc·mr) and a B panel (kc·nr) in L1;
// an mc×kc block of A and a kc×nc block of B fit in L2.
const (
	kcMax = 256
	mcMax = 64
	ncMax = 256
)

// bSource is the B operand, k×n: either dense (b[p*ldb+j]) or, if im2col is
// set, the im2col matrix of the image x (channels × inH × inW): row
// p = (ci·kh + ky)·kw + kx, column j = oy·outW + ox.
type bSource struct {
	b   []float32
	ldb int

	im2col            bool
	x                 []float32
	inH, inW, kk      int
	stride, pad, outW int
}

// gemmJob is one GEMM with its fused epilogue.
type gemmJob struct {
	m, n, k    int
	a          []float32
	lda        int
	b          bSource
	c          []float32
	ldc        int
	bias       []float32 // per row of C, or nil
	relu       bool
	accumulate bool // add to the existing contents of C
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// run executes the job on up to Threads() goroutines.
func (g *gemmJob) run() {
	m, n, k := g.m, g.n, g.k
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 {
		g.epilogueOnly()
		return
	}
	// Split k into equal slices no longer than kcMax.
	nk := ceilDiv(k, kcMax)
	kc := roundUp(ceilDiv(k, nk), 4)

	mc := min(mcMax, roundUp(m, mr))
	nc := min(ncMax, roundUp(n, nr))
	work := m * n * k
	workers := Threads()
	if work < minParallelWork {
		workers = 1
	}
	// Make enough tasks for dynamic load balancing when running in parallel.
	if workers > 1 {
		want := 4 * workers
		for ceilDiv(m, mc)*ceilDiv(n, nc) < want && (mc > 16 || nc > 64) {
			if nc > 64 && (nc >= 2*mc || mc <= 16) {
				nc = roundUp(nc/2, nr)
			} else {
				mc = roundUp(mc/2, mr)
			}
		}
	}
	tilesM, tilesN := ceilDiv(m, mc), ceilDiv(n, nc)
	nTasks := tilesM * tilesN
	if workers <= 1 || nTasks == 1 {
		s := getScratch()
		for t := 0; t < nTasks; t++ {
			g.task(s, t, tilesM, mc, nc, kc)
		}
		putScratch(s)
		return
	}
	// The closure (and this copy of the job) only reach the heap on the
	// parallel path, so serial calls do not allocate.
	job := *g
	parallelFor(nTasks, min(workers, nTasks), func(s *scratch, t int) {
		job.task(s, t, tilesM, mc, nc, kc)
	})
}

// task computes C tile number t; tiles are numbered column-major so that
// neighbouring tasks share the same B block.
func (g *gemmJob) task(s *scratch, t, tilesM, mc, nc, kc int) {
	it, jt := t%tilesM, t/tilesM
	i0, j0 := it*mc, jt*nc
	g.tile(s, i0, min(mc, g.m-i0), j0, min(nc, g.n-j0), kc)
}

// tile computes C[i0:i0+rows, j0:j0+cols].
func (g *gemmJob) tile(s *scratch, i0, rows, j0, cols, kc int) {
	pr := roundUp(rows, mr)
	pc := roundUp(cols, nr)
	s.a = grow(s.a, pr*kc)
	s.b = grow(s.b, pc*kc)
	var acc [mr * nr]float32
	for p0 := 0; p0 < g.k; p0 += kc {
		kb := min(kc, g.k-p0)
		first, last := p0 == 0, p0+kb >= g.k
		packA(s.a, g.a, g.lda, i0, rows, p0, kb)
		if g.b.im2col {
			packBIm2col(s.b, &g.b, p0, kb, j0, cols)
		} else {
			packBDense(s.b, g.b.b, g.b.ldb, p0, kb, j0, cols)
		}
		for jp := 0; jp < cols; jp += nr {
			bp := s.b[jp*kb : (jp+nr)*kb]
			w := min(nr, cols-jp)
			for ip := 0; ip < rows; ip += mr {
				ap := s.a[ip*kb : (ip+mr)*kb]
				microKernel(kb, ap, bp, &acc)
				g.store(&acc, i0+ip, min(mr, rows-ip), j0+jp, w, first, last)
			}
		}
	}
}

// store writes a rows×cols micro-tile to C at (i, j). On the first k slice it
// starts from the bias (and the old C if accumulating); later slices add to C.
// On the last slice it applies ReLU.
func (g *gemmJob) store(acc *[mr * nr]float32, i, rows, j, cols int, first, last bool) {
	load := !first || g.accumulate
	relu := last && g.relu
	for r := 0; r < rows; r++ {
		var bv float32
		if first && g.bias != nil {
			bv = g.bias[i+r]
		}
		off := (i+r)*g.ldc + j
		dst := g.c[off : off+cols]
		src := acc[r*nr : r*nr+cols]
		switch {
		case load && relu:
			for q, v := range src {
				v += dst[q] + bv
				v = max(v, 0)
				dst[q] = v
			}
		case load:
			for q, v := range src {
				dst[q] += v + bv
			}
		case relu:
			for q, v := range src {
				v += bv
				v = max(v, 0)
				dst[q] = v
			}
		default:
			for q, v := range src {
				dst[q] = v + bv
			}
		}
	}
}

// epilogueOnly handles k == 0: C = (C or 0) + bias, then ReLU.
func (g *gemmJob) epilogueOnly() {
	for i := 0; i < g.m; i++ {
		var bv float32
		if g.bias != nil {
			bv = g.bias[i]
		}
		row := g.c[i*g.ldc : i*g.ldc+g.n]
		for j := range row {
			v := bv
			if g.accumulate {
				v += row[j]
			}
			if g.relu && v < 0 {
				v = 0
			}
			row[j] = v
		}
	}
}

// packA packs rows [i0, i0+rows) × columns [p0, p0+kc) of a into dst as
// consecutive mr-row panels; panel q holds element (q·mr+r, p) at p·mr+r.
// Rows beyond the matrix are zero.
func packA(dst, a []float32, lda, i0, rows, p0, kc int) {
	for ip := 0; ip < rows; ip += mr {
		panel := dst[ip*kc : (ip+mr)*kc]
		if ip+mr <= rows {
			o := (i0+ip)*lda + p0
			s0 := a[o : o+kc]
			s1 := a[o+lda : o+lda+kc]
			s2 := a[o+2*lda : o+2*lda+kc]
			s3 := a[o+3*lda : o+3*lda+kc]
			for p := range s0 {
				d := panel[p*mr : p*mr+mr : p*mr+mr]
				d[0], d[1], d[2], d[3] = s0[p], s1[p], s2[p], s3[p]
			}
			continue
		}
		for r := 0; r < mr; r++ {
			if ip+r < rows {
				o := (i0+ip+r)*lda + p0
				for p, v := range a[o : o+kc] {
					panel[p*mr+r] = v
				}
			} else {
				for p := 0; p < kc; p++ {
					panel[p*mr+r] = 0
				}
			}
		}
	}
}

// packBDense packs rows [p0, p0+kc) × columns [j0, j0+cols) of b into dst as
// consecutive nr-column panels; panel q holds element (p, q·nr+c) at p·nr+c.
// Columns beyond the matrix are zero.
func packBDense(dst, b []float32, ldb, p0, kc, j0, cols int) {
	for jp := 0; jp < cols; jp += nr {
		panel := dst[jp*kc : (jp+nr)*kc]
		w := min(nr, cols-jp)
		o := p0*ldb + j0 + jp
		if w == nr {
			for p := 0; p < kc; p++ {
				s := b[o : o+nr : o+nr]
				d := panel[p*nr : p*nr+nr : p*nr+nr]
				d[0], d[1], d[2], d[3] = s[0], s[1], s[2], s[3]
				d[4], d[5], d[6], d[7] = s[4], s[5], s[6], s[7]
				o += ldb
			}
			continue
		}
		for p := 0; p < kc; p++ {
			d := panel[p*nr : p*nr+nr]
			copy(d, b[o:o+w])
			clear(d[w:])
			o += ldb
		}
	}
}

// packBIm2col packs the same block as packBDense, but of the implicit im2col
// matrix described by src.
func packBIm2col(dst []float32, src *bSource, p0, kc, j0, cols int) {
	inH, inW, kk := src.inH, src.inW, src.kk
	plane := inH * inW
	x := src.x
	var cy, cx [nr]int
	for jp := 0; jp < cols; jp += nr {
		panel := dst[jp*kc : (jp+nr)*kc]
		for c := 0; c < nr; c++ {
			if jp+c < cols {
				j := j0 + jp + c
				cy[c] = (j/src.outW)*src.stride - src.pad
				cx[c] = (j%src.outW)*src.stride - src.pad
			} else {
				cy[c], cx[c] = -1<<30, -1<<30 // always out of range: zero
			}
		}
		ci, r := p0/(kk*kk), p0%(kk*kk)
		ky, kx := r/kk, r%kk
		for p := 0; p < kc; p++ {
			xc := x[ci*plane : ci*plane+plane]
			d := panel[p*nr : p*nr+nr : p*nr+nr]
			for c := range d {
				iy, ix := cy[c]+ky, cx[c]+kx
				var v float32
				if uint(iy) < uint(inH) && uint(ix) < uint(inW) {
					v = xc[iy*inW+ix]
				}
				d[c] = v
			}
			if kx++; kx == kk {
				kx = 0
				if ky++; ky == kk {
					ky = 0
					ci++
				}
			}
		}
	}
}
