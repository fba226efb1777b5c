package kernel

import "sync"

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

// Cache blocking of the pure-Go kernel. kcMax keeps an A panel (kc·mr) and a B panel (kc·nr) in L1;
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
	// trans: b holds Bᵀ (n×k, row-major with ldb), so column j of B is
	// row j of b.
	trans bool

	im2col            bool
	x                 []float32
	inH, inW, kk      int
	stride, pad, outW int
}

// gemmJob is one GEMM with its fused epilogue.
type gemmJob struct {
	m, n, k int
	a       []float32
	lda     int
	aTrans  bool // a holds Aᵀ (k×m, row-major with lda)
	// ap, if set, is A already packed for impl by packAAll: the k slices
	// of kcFor(impl, k), each as mr-row panels of all roundUp(m, mr) rows.
	ap   []float32
	b    bSource
	c    []float32
	ldc  int
	bias []float32 // per row of C, or nil
	relu bool
	// post, if not ActNone, is applied (by act) to each panel of C a
	// tile has finished, right after the micro-kernels stored it.
	post       Activation
	act        *actImpl
	accumulate bool // add to the existing contents of C
	impl       *gemmImpl
	// prepack: when several tasks would pack the same A (or B) block,
	// pack the whole operand once, in parallel, before the tiles run
	// (dense operands only; set by Gemm, GemmNT and GemmTN).
	prepack bool
	bpk     []float32 // B packed by prepackB, or nil
	limit   int       // at most this many workers (0: Threads())

	// Task grid, set by plan.
	kc, mc, nc, tilesM, nTasks, workers int
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// kcFor returns the k slice length used by im for a GEMM of depth k: equal
// slices no longer than im.kcMax.
func kcFor(im *gemmImpl, k int) int {
	nk := ceilDiv(k, im.kcMax)
	return ceilDiv(k, nk)
}

// plan chooses the k slice and the task grid. C is cut into mc×nc tiles;
// each task packs B one kc×nr panel at a time and sweeps it over all its
// mr-row panels of A, so B packing is amortised over up to mcMax rows.
func (g *gemmJob) plan() {
	im := g.impl
	m, n, k := g.m, g.n, g.k
	g.kc = kcFor(im, k)
	mc := min(im.mcMax, roundUp(m, im.mr))
	// Balance the rows over the row blocks.
	if tm := ceilDiv(m, mc); tm > 1 {
		mc = roundUp(ceilDiv(m, tm), im.mr)
	}
	nc := roundUp(n, im.nr)
	workers := workersForLimit(1<<30, m*n*k, g.limit)
	if workers > 1 {
		// Enough tasks for dynamic load balancing: split columns first
		// (A is shared, so this costs nothing extra), then rows.
		want := 3 * workers
		for ceilDiv(m, mc)*ceilDiv(n, nc) < want {
			if nc >= 2*im.nr && (nc >= 4*im.nr || mc <= 2*im.mr) {
				nc = roundUp(ceilDiv(nc, 2), im.nr)
			} else if mc >= 2*im.mr {
				mc = roundUp(ceilDiv(mc, 2), im.mr)
			} else {
				break
			}
		}
	}
	g.mc, g.nc = mc, nc
	g.tilesM = ceilDiv(m, mc)
	g.nTasks = g.tilesM * ceilDiv(n, nc)
	g.workers = min(workers, g.nTasks)
}

// run executes the job on up to Threads() goroutines.
func (g *gemmJob) run() {
	if g.m <= 0 || g.n <= 0 {
		return
	}
	if g.k <= 0 {
		g.epilogueOnly()
		return
	}
	if g.impl == nil {
		g.impl = active.Load()
	}
	g.plan()
	if g.workers <= 1 {
		s := getScratch()
		for t := 0; t < g.nTasks; t++ {
			g.task(s, t)
		}
		putScratch(s)
		return
	}
	// The closure (and this copy of the job) only reach the heap on the
	// parallel path, so serial calls do not allocate.
	job := *g
	if job.prepack && !job.b.im2col {
		var bufA, bufB *[]float32
		if job.ap == nil && job.nTasks > job.tilesM {
			bufA = getPackBuf(roundUp(job.m, job.impl.mr) * job.k)
			job.ap = *bufA
			job.prepackA()
		}
		if job.tilesM > 1 {
			bufB = getPackBuf(roundUp(job.n, job.impl.nr) * job.k)
			job.bpk = *bufB
			job.prepackB()
		}
		parallelFor(job.nTasks, job.workers, job.task)
		putPackBuf(bufA)
		putPackBuf(bufB)
		return
	}
	parallelFor(job.nTasks, job.workers, job.task)
}

// packBufs recycles the buffers of prepacked operands: a few buffers kept
// across calls (a sync.Pool would drop them at every GC, and these are
// megabytes), handed out to the first request they are large enough for.
var packBufs struct {
	sync.Mutex
	free []*[]float32
}

func getPackBuf(n int) *[]float32 {
	packBufs.Lock()
	defer packBufs.Unlock()
	best := -1
	for i, b := range packBufs.free {
		if cap(*b) >= n && (best < 0 || cap(*b) < cap(*packBufs.free[best])) {
			best = i
		}
	}
	if best < 0 {
		if len(packBufs.free) == 0 {
			b := make([]float32, n)
			return &b
		}
		best = 0 // replace the smallest buffer by a large enough one
		for i, b := range packBufs.free {
			if cap(*b) < cap(*packBufs.free[best]) {
				best = i
			}
		}
		*packBufs.free[best] = make([]float32, n)
	}
	b := packBufs.free[best]
	packBufs.free = append(packBufs.free[:best], packBufs.free[best+1:]...)
	*b = (*b)[:n]
	return b
}

func putPackBuf(b *[]float32) {
	if b == nil {
		return
	}
	packBufs.Lock()
	if len(packBufs.free) < 4 {
		packBufs.free = append(packBufs.free, b)
	}
	packBufs.Unlock()
}

// prepackA packs all of A into g.ap in the layout of packAAll, one mr-row
// panel of one k slice per task.
func (g *gemmJob) prepackA() {
	im := g.impl
	mr, kc := im.mr, g.kc
	mPad := roundUp(g.m, mr)
	panels := mPad / mr
	slices := ceilDiv(g.k, kc)
	parallelFor(slices*panels, g.workers, func(_ *scratch, t int) {
		p0, ip := t/panels*kc, t%panels*mr
		kb := min(kc, g.k-p0)
		dst := g.ap[p0*mPad+ip*kb : p0*mPad+(ip+mr)*kb]
		if g.aTrans {
			packAT(dst, g.a, g.lda, ip, min(mr, g.m-ip), p0, kb, mr)
		} else {
			packA(dst, g.a, g.lda, ip, min(mr, g.m-ip), p0, kb, mr)
		}
	})
}

// prepackB packs all of B into g.bpk: k slice p0 at p0·nPad, the panel of
// columns from j at p0·nPad + j·kb, each as packB would for a tile.
func (g *gemmJob) prepackB() {
	im := g.impl
	nr, kc := im.nr, g.kc
	nPad := roundUp(g.n, nr)
	panels := nPad / nr
	slices := ceilDiv(g.k, kc)
	parallelFor(slices*panels, g.workers, func(_ *scratch, t int) {
		p0, j := t/panels*kc, t%panels*nr
		kb := min(kc, g.k-p0)
		g.packB(g.bpk[p0*nPad+j*kb:p0*nPad+(j+nr)*kb], p0, kb, j, min(nr, g.n-j))
	})
}

// packB packs rows [p0, p0+kb) × columns [j, j+w) of B into one panel for
// the kernel tile() uses for w columns; it returns the panel width.
func (g *gemmJob) packB(bp []float32, p0, kb, j, w int) int {
	im := g.impl
	pnr := im.nr
	if w <= im.nrN {
		pnr = im.nrN
	}
	bp = bp[:pnr*kb]
	switch {
	case g.b.im2col:
		packBIm2col(bp, &g.b, p0, kb, j, w, pnr)
	case g.b.trans:
		packRows(bp, g.b.b, g.b.ldb, j, w, p0, kb, pnr)
	default:
		packBDense(bp, g.b.b, g.b.ldb, p0, kb, j, w, pnr)
	}
	return pnr
}

// task computes C tile number t; tiles are numbered column-major so that
// neighbouring tasks share the same B block.
func (g *gemmJob) task(s *scratch, t int) {
	it, jt := t%g.tilesM, t/g.tilesM
	i0, j0 := it*g.mc, jt*g.nc
	g.tile(s, i0, min(g.mc, g.m-i0), j0, min(g.nc, g.n-j0))
}

// tile computes C[i0:i0+rows, j0:j0+cols].
func (g *gemmJob) tile(s *scratch, i0, rows, j0, cols int) {
	im := g.impl
	mr, nr, kc := im.mr, im.nr, g.kc
	kernel := im.kernel
	pr := roundUp(rows, mr)
	mPad := roundUp(g.m, mr)
	if g.ap == nil {
		s.a = grow(s.a, pr*kc)
	}
	s.b = grow(s.b, nr*kc)
	for p0 := 0; p0 < g.k; p0 += kc {
		kb := min(kc, g.k-p0)
		var flags uint
		if p0 > 0 || g.accumulate {
			flags |= flagAcc
		}
		bias := g.bias
		if p0 == 0 && bias != nil {
			flags |= flagBias
		} else {
			bias = nil
		}
		if p0+kb >= g.k && g.relu {
			flags |= flagReLU
		}
		var ap []float32
		if g.ap != nil {
			o := p0*mPad + i0*kb
			ap = g.ap[o : o+pr*kb]
		} else {
			ap = s.a[:pr*kb]
			if g.aTrans {
				packAT(ap, g.a, g.lda, i0, rows, p0, kb, mr)
			} else {
				packA(ap, g.a, g.lda, i0, rows, p0, kb, mr)
			}
		}
		nPad := roundUp(g.n, nr)
		// A dense B is packed a group of panels at a time, reading each
		// of its rows along the group's columns: one panel at a time
		// would read kb rows of nr values far apart, a pattern the
		// hardware prefetchers do not follow, and wait for memory.
		group := 1
		dense := g.bpk == nil && !g.b.im2col && !g.b.trans
		if dense {
			group = max(1, min(ceilDiv(cols, nr), tileBBytes/(4*nr*kb)))
			s.b = grow(s.b, group*nr*kb)
		}
		for jg := 0; jg < cols; jg += group * nr {
			gw := min(group*nr, cols-jg)
			full := gw / nr // panels of nr columns
			if dense {
				packBDenseGroup(s.b, g.b.b, g.b.ldb, p0, kb, j0+jg, full, nr)
				if gw > full*nr {
					g.packB(s.b[full*nr*kb:], p0, kb, j0+jg+full*nr, gw-full*nr)
				}
			}
			for jp := jg; jp < jg+gw; jp += nr {
				w := min(nr, cols-jp)
				k := kernel
				if w <= im.nrN {
					k = im.kernelN
				}
				var bp []float32
				switch {
				case g.bpk != nil:
					bp = g.bpk[p0*nPad+(j0+jp)*kb:]
				case dense:
					bp = s.b[(jp-jg)*kb:]
				default:
					bp = s.b[:nr*kb]
					g.packB(bp, p0, kb, j0+jp, w)
				}
				for ip := 0; ip < rows; ip += mr {
					var bs []float32
					if bias != nil {
						bs = bias[i0+ip:]
					}
					off := (i0+ip)*g.ldc + j0 + jp
					k(kb, ap[ip*kb:], bp, g.c[off:], g.ldc, bs, min(mr, rows-ip), w, flags)
				}
				if g.post != ActNone && p0+kb >= g.k {
					g.act.region(g.post, g.c[i0*g.ldc+j0+jp:], rows, w, g.ldc)
				}
			}
		}
	}
}

// tileBBytes bounds the packed B panels a tile keeps at once (in L2).
const tileBBytes = 256 << 10

// packBDenseGroup packs panels full nr-column panels of b, rows [p0,
// p0+kc) from column j on, into dst one after the other (panel q at
// q·nr·kc, element (p, c) at p·nr+c), reading b row by row.
func packBDenseGroup(dst, b []float32, ldb, p0, kc, j, panels, nr int) {
	if panels == 0 {
		return
	}
	span := nr * kc
	for p := 0; p < kc; p++ {
		row := b[(p0+p)*ldb+j : (p0+p)*ldb+j+panels*nr]
		d := dst[p*nr:]
		switch nr { // fixed-size copies for the kernels' panel widths
		case 32:
			for q := 0; q < panels; q++ {
				*(*[32]float32)(d[q*span:]) = *(*[32]float32)(row[q*32:])
			}
		case 16:
			for q := 0; q < panels; q++ {
				*(*[16]float32)(d[q*span:]) = *(*[16]float32)(row[q*16:])
			}
		case 8:
			for q := 0; q < panels; q++ {
				*(*[8]float32)(d[q*span:]) = *(*[8]float32)(row[q*8:])
			}
		default:
			for q := 0; q < panels; q++ {
				copy(d[q*span:q*span+nr], row[q*nr:q*nr+nr])
			}
		}
	}
}

// epilogueOnly handles k == 0: C = (C or 0) + bias, then ReLU or post.
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
	if g.post != ActNone {
		g.act.region(g.post, g.c, g.m, g.n, g.ldc)
	}
}

// packA packs rows [i0, i0+rows) × columns [p0, p0+kc) of a into dst as
// consecutive mr-row panels; panel q holds element (q·mr+r, p) at p·mr+r.
// Rows beyond the matrix are zero.
func packA(dst, a []float32, lda, i0, rows, p0, kc, mr int) {
	for ip := 0; ip < rows; ip += mr {
		packRows(dst[ip*kc:(ip+mr)*kc], a, lda, i0+ip, min(mr, rows-ip), p0, kc, mr)
	}
}

// packAT is packA for a matrix given transposed (a holds Aᵀ, k×m): every
// row of a panel is a contiguous run of Aᵀ.
func packAT(dst, at []float32, lda, i0, rows, p0, kc, mr int) {
	for ip := 0; ip < rows; ip += mr {
		panel := dst[ip*kc : (ip+mr)*kc]
		w := min(mr, rows-ip)
		o := p0*lda + i0 + ip
		switch {
		case w == mr && mr == 12:
			for p := 0; p < kc; p++ {
				// element by element: a 48-byte array copy is a memmove call
				s := at[o : o+12 : o+12]
				d := panel[p*12 : p*12+12 : p*12+12]
				d[0], d[1], d[2], d[3] = s[0], s[1], s[2], s[3]
				d[4], d[5], d[6], d[7] = s[4], s[5], s[6], s[7]
				d[8], d[9], d[10], d[11] = s[8], s[9], s[10], s[11]
				o += lda
			}
		case w == mr && mr == 6:
			for p := 0; p < kc; p++ {
				*(*[6]float32)(panel[p*6:]) = *(*[6]float32)(at[o:])
				o += lda
			}
		case w == mr && mr == 4:
			for p := 0; p < kc; p++ {
				*(*[4]float32)(panel[p*4:]) = *(*[4]float32)(at[o:])
				o += lda
			}
		default:
			for p := 0; p < kc; p++ {
				d := panel[p*mr : p*mr+mr]
				copy(d, at[o:o+w])
				clear(d[w:])
				o += lda
			}
		}
	}
}

// packRows packs rows [r0, r0+rows) × columns [p0, p0+kc) of the row-major
// matrix a into one panel of mr interleaved rows, element (r, p) at
// p·mr+r; rows from rows to mr are zero. Four rows are read at a time, so
// every store writes four adjacent values.
func packRows(dst, a []float32, lda, r0, rows, p0, kc, mr int) {
	dst = dst[:kc*mr]
	r := 0
	for ; r+4 <= rows; r += 4 {
		o := (r0+r)*lda + p0
		a0 := a[o : o+kc]
		a1 := a[o+lda : o+lda+kc]
		a2 := a[o+2*lda : o+2*lda+kc]
		a3 := a[o+3*lda : o+3*lda+kc]
		a1, a2, a3 = a1[:len(a0)], a2[:len(a0)], a3[:len(a0)]
		for p := range a0 {
			d := dst[p*mr+r : p*mr+r+4 : p*mr+r+4]
			d[0], d[1], d[2], d[3] = a0[p], a1[p], a2[p], a3[p]
		}
	}
	for ; r < mr; r++ {
		if r < rows {
			o := (r0+r)*lda + p0
			for p, v := range a[o : o+kc] {
				dst[p*mr+r] = v
			}
			continue
		}
		for p := 0; p < kc; p++ {
			dst[p*mr+r] = 0
		}
	}
}

// packAAll packs all of a (m×k, row-major with lda) for im: the k slices of
// kcFor(im, k) one after another, each as mr-row panels of roundUp(m, mr)
// rows (the layout gemmJob.ap expects).
func packAAll(im *gemmImpl, a []float32, lda, m, k int) []float32 {
	mPad := roundUp(m, im.mr)
	kc := kcFor(im, k)
	dst := make([]float32, mPad*k)
	for p0 := 0; p0 < k; p0 += kc {
		kb := min(kc, k-p0)
		packA(dst[p0*mPad:p0*mPad+mPad*kb], a, lda, 0, m, p0, kb, im.mr)
	}
	return dst
}

// packBDense packs rows [p0, p0+kc) × columns [j, j+w) of b into one
// nr-column panel dst, element (p, c) at p·nr+c. Columns from w on are zero.
func packBDense(dst, b []float32, ldb, p0, kc, j, w, nr int) {
	if w == nr {
		packBDenseGroup(dst, b, ldb, p0, kc, j, 1, nr)
		return
	}
	o := p0*ldb + j
	for p := 0; p < kc; p++ {
		d := dst[p*nr : p*nr+nr]
		copy(d, b[o:o+w])
		clear(d[w:])
		o += ldb
	}
}

// maxNR bounds nr for the packing routines' stack arrays.
const maxNR = 64

// packBIm2col packs the same panel as packBDense, but of the implicit im2col
// matrix described by src.
func packBIm2col(dst []float32, src *bSource, p0, kc, j0, w, nr int) {
	inH, inW, kk := src.inH, src.inW, src.kk
	plane := inH * inW
	x := src.x
	var cy, cx [maxNR]int
	for c := 0; c < nr; c++ {
		if c < w {
			j := j0 + c
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
		d := dst[p*nr : p*nr+nr]
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
