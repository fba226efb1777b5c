package kernel

import (
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// bfloat16 matrix multiplies for training (opt-in): the operands are
// rounded to bfloat16 (8 significant bits, float32's range) and the
// products summed in float32, on the AMX tile unit of Intel Xeons since
// Sapphire Rapids (TDPBF16PS: a 16×16 float32 tile += a 16×32 by 32×16
// bfloat16 product per instruction, ~14 times the float32 FMA rate of the
// same core), else with AVX512-BF16's VDPBF16PS (AMD Zen 4 and 5, Intel
// Cooper Lake: 16 lanes += 16 pair products per instruction, twice the
// float32 FMA's multiply-adds) on the same packed operands. Where there
// is neither, they go through tileJob.runGo, the kernels' twin, which
// sums in the same order (the hardware rounds the partial sums inside one
// pair or one 32-long step its own way, so they agree to float32
// rounding, not bit for bit). Each kernel always sums in one order, so
// its results do not vary from run to run; they differ from the other
// kernel's in the last bits.
//
// A is packed as a row-major bfloat16 matrix, 16-row strips, k padded to a
// multiple of 32 with zeros; B in VNNI order: per 16-column strip, per
// 32-long k step, a 1 KB tile whose row r holds for each of the 16 columns
// the pair (B[2r][j], B[2r+1][j]) of that step, low half first, as one
// uint32.

// bf16 rounds x to the nearest bfloat16, ties to even; a NaN stays a NaN
// (made quiet), as in the AVX-512 packers.
func bf16(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40 // quiet NaN
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// RoundBF16 rounds x to the nearest bfloat16 and widens it back: the
// value a bfloat16 engine stores (ties to even; a NaN stays a NaN, made
// quiet), as ActBF16 rounds.
func RoundBF16(x float32) float32 { return bf16Float(bf16(x)) }

// bf16Float widens a bfloat16 to float32 (exact).
func bf16Float(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

var (
	amxOnce sync.Once
	amxOK   bool
	// amxOff keeps tile jobs off the tile unit (to the AVX512-BF16
	// kernel or the Go twin), dpOff off the AVX512-BF16 kernel (tests).
	amxOff, dpOff bool
	// dpOK: the AVX512-BF16 kernel runs here (AVX512-BF16 and the
	// AVX-512 kernels selected).
	dpOK = haveAsm && cpu.Detected.AVX512BF16 && cpu.Selected() == cpu.AVX512
)

// amxReady reports whether the tile kernel runs here: a CPU with AMX-TILE
// and AMX-BF16, the AVX-512 kernels selected (MOBILEONE_KERNELS=avx2 or
// purego turn AMX off too) and the system's permission, asked once.
func amxReady() bool {
	amxOnce.Do(func() {
		d := cpu.Detected
		amxOK = d.AMXTile && d.AMXBF16 && cpu.Selected() == cpu.AVX512 && haveAsm && amxPermit()
	})
	return amxOK
}

// bf16SIMD: the AVX-512 packers (bf16RowAVX512, bf16PairsAVX512,
// bf16ColsAVX512) run instead of their Go loops; bf16NoSIMD turns them off
// (tests).
var (
	bf16SIMD   = haveAsm && cpu.Selected() == cpu.AVX512
	bf16NoSIMD bool
)

func useBF16SIMD() bool { return bf16SIMD && !bf16NoSIMD }

// bf16Row writes dst[i] = bf16(src[i]).
func bf16Row(src []float32, dst []uint16) {
	dst = dst[:len(src)]
	n := 0
	if useBF16SIMD() {
		if n = len(src) &^ 15; n > 0 {
			bf16RowAVX512(src[:n], dst[:n])
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = bf16(src[i])
	}
}

// HaveAMX reports whether GemmBF16 and friends run on AMX tiles here.
func HaveAMX() bool { return amxReady() }

// HaveBF16 reports whether GemmBF16 and friends run on bfloat16 hardware
// here, AMX tiles or AVX512-BF16 (else on their much slower Go twin).
func HaveBF16() bool { return amxReady() || dpOK }

// BF16Unit names the hardware GemmBF16 runs on here: "AMX",
// "AVX512-BF16" or "" (the Go twin).
func BF16Unit() string {
	switch {
	case amxReady():
		return "AMX"
	case dpOK:
		return "AVX512-BF16"
	}
	return ""
}

// amxConfig is the tile configuration of amxTiles: palette 1, tiles 0–7
// of 16 rows of 64 bytes.
var amxConfig = func() *[64]byte {
	var c [64]byte
	c[0] = 1
	for t := 0; t < 8; t++ {
		c[16+2*t] = 64
		c[48+t] = 16
	}
	return &c
}()

// tileJob is one call of the tile kernel: c[0:16·mStrips, 0:16·nStrips]
// (+)= a·b from packed operands.
type tileJob struct {
	a       []uint16 // bfloat16, 16·mStrips rows of lda, k padded to 32·kt
	lda     int
	b       []uint32 // VNNI tiles, strip s at b[s·bstride:], 256 words per k step
	bstride int
	c       []float32
	ldc     int

	mStrips, nStrips, kt int
	acc                  bool
}

// run computes the job on AMX tiles or with AVX512-BF16 if this machine has
// them, else with the Go twin.
func (j *tileJob) run() {
	if j.mStrips <= 0 || j.nStrips <= 0 {
		return
	}
	switch {
	case !amxOff && amxReady():
		j.runAsm(true)
	case !dpOff && dpOK:
		j.runAsm(false)
	default:
		j.runGo()
	}
}

// runAsm calls amxTiles (amx) or dpbf16Tiles. The operands are heap or
// caller memory that the kernel (NOSPLIT, no calls) reads while this frame
// keeps them alive. (Direct calls: through a func value p would escape.)
func (j *tileJob) runAsm(amx bool) {
	// Bounds: the last tile of each operand lies inside its slice.
	_ = j.a[(16*j.mStrips-1)*j.lda+32*j.kt-1]
	_ = j.b[(j.nStrips-1)*j.bstride+256*j.kt-1]
	_ = j.c[(16*j.mStrips-1)*j.ldc+16*j.nStrips-1]
	var p [14]uintptr
	p[0] = uintptr(unsafe.Pointer(amxConfig))
	p[1] = uintptr(unsafe.Pointer(&j.a[0]))
	p[2] = uintptr(2 * j.lda)
	p[3] = uintptr(unsafe.Pointer(&j.b[0]))
	p[4] = uintptr(4 * j.bstride)
	p[5] = uintptr(unsafe.Pointer(&j.c[0]))
	p[6] = uintptr(4 * j.ldc)
	p[7] = uintptr(j.mStrips)
	p[8] = uintptr(j.nStrips)
	p[9] = uintptr(j.kt)
	if j.acc {
		p[10] = 1
	}
	if amx {
		amxTilesCall(&p)
	} else {
		dpTilesCall(&p)
	}
	runtime.KeepAlive(j.a)
	runtime.KeepAlive(j.b)
	runtime.KeepAlive(j.c)
}

// runGo is the twin of amxTiles: for each element of the job's C, the
// 32-long k steps in order, and in each the pairs in order.
func (j *tileJob) runGo() {
	rows, cols := 16*j.mStrips, 16*j.nStrips
	for i := 0; i < rows; i++ {
		arow := j.a[i*j.lda : i*j.lda+32*j.kt]
		crow := j.c[i*j.ldc : i*j.ldc+cols]
		for col := range crow {
			var s float32
			if j.acc {
				s = crow[col]
			}
			bs := j.b[(col/16)*j.bstride:]
			cj := col % 16
			for t := 0; t < j.kt; t++ {
				at := arow[32*t : 32*t+32]
				bt := bs[256*t : 256*t+256]
				for r := 0; r < 16; r++ {
					w := bt[16*r+cj]
					s += bf16Float(at[2*r]) * bf16Float(uint16(w))
					s += bf16Float(at[2*r+1]) * bf16Float(uint16(w>>16))
				}
			}
			crow[col] = s
		}
	}
}

// bufPool recycles slices of T (the packed A operands, partial sums and
// scratch tiles of the bfloat16 products).
type bufPool[T any] struct{ p sync.Pool }

// get returns a slice of n elements (contents unspecified).
func (b *bufPool[T]) get(n int) *[]T {
	v, _ := b.p.Get().(*[]T)
	if v == nil {
		v = new([]T)
	}
	if cap(*v) < n {
		*v = make([]T, n)
	}
	*v = (*v)[:n]
	return v
}

func (b *bufPool[T]) put(v *[]T) { b.p.Put(v) }

var (
	bf16Bufs bufPool[uint16]
	f32Bufs  bufPool[float32]
)

// packBF16A writes rows [i0, i1) of the bfloat16 A operand (ld = 32·kt) from a
// (m×k, rows lda apart) or, if trans, from aᵀ (a is k×m, rows lda apart);
// rows ≥ m and columns ≥ k are zero.
func packBF16A(m, k int, a []float32, lda int, trans bool, dst []uint16, ld, i0, i1 int) {
	var col *[]float32 // a column of a, gathered (trans)
	if trans {
		col = f32Bufs.get(k)
		defer f32Bufs.put(col)
	}
	for i := i0; i < i1; i++ {
		row := dst[i*ld : (i+1)*ld]
		if i >= m {
			clear(row)
			continue
		}
		if trans {
			c := (*col)[:k]
			for p := range c {
				c[p] = a[p*lda+i]
			}
			bf16Row(c, row[:k])
		} else {
			bf16Row(a[i*lda:i*lda+k], row[:k])
		}
		clear(row[k:])
	}
}

// packBF16Rows packs strips [s0, s1) of B (k×n, rows ldb apart) into dst
// (strip s at dst[(s-s0)·256·kt:]), zero beyond k and n.
func packBF16Rows(k, n int, b []float32, ldb, kt, s0, s1 int, dst []uint32) {
	if full := min(s1, n/16) - s0; full > 0 && useBF16SIMD() {
		// Whole strips, pairs of rows both inside k: a row of tiles per
		// call; the rest below.
		j0, stride := 16*s0, 256*kt
		for p := 0; 2*p+1 < k; p++ {
			r0 := b[2*p*ldb+j0 : 2*p*ldb+j0+16*full]
			r1 := b[(2*p+1)*ldb+j0 : (2*p+1)*ldb+j0+16*full]
			out := dst[16*p:]
			_ = out[(full-1)*stride+15]
			bf16PairsAVX512(r0, r1, out, stride)
		}
		packBF16RowsGo(k, n, b, ldb, kt, s0, s0+full, dst, k&^1)
		packBF16RowsGo(k, n, b, ldb, kt, s0+full, s1, dst[full*stride:], 0)
		return
	}
	packBF16RowsGo(k, n, b, ldb, kt, s0, s1, dst, 0)
}

// packBF16RowsGo is packBF16Rows in Go, from pair 2·p ≥ k0 on (k0 even).
func packBF16RowsGo(k, n int, b []float32, ldb, kt, s0, s1 int, dst []uint32, k0 int) {
	for s := s0; s < s1; s++ {
		out := dst[(s-s0)*256*kt : (s-s0+1)*256*kt]
		j0 := 16 * s
		cols := min(16, n-j0)
		for p := k0 / 2; p < 16*kt; p++ {
			w := out[16*p : 16*p+16]
			valid := 0 // columns written; the rest of the row is zero
			switch {
			case 2*p+1 < k:
				r0 := b[2*p*ldb+j0 : 2*p*ldb+j0+cols]
				r1 := b[(2*p+1)*ldb+j0 : (2*p+1)*ldb+j0+cols]
				for c := range r0 {
					w[c] = uint32(bf16(r0[c])) | uint32(bf16(r1[c]))<<16
				}
				valid = cols
			case 2*p < k:
				r0 := b[2*p*ldb+j0 : 2*p*ldb+j0+cols]
				for c := range r0 {
					w[c] = uint32(bf16(r0[c]))
				}
				valid = cols
			}
			clear(w[valid:])
		}
	}
}

// packBF16Cols packs strips [s0, s1) of B = bᵀ, b being n×k with rows ldb
// apart (column j of B is row j of b), into dst as packBF16Rows does.
func packBF16Cols(k, n int, b []float32, ldb, kt, s0, s1 int, dst []uint32) {
	for s := s0; s < s1; s++ {
		out := dst[(s-s0)*256*kt : (s-s0+1)*256*kt]
		j0 := 16 * s
		cols := min(16, n-j0)
		for c := 0; c < 16; c++ {
			if c >= cols {
				for p := 0; p < 16*kt; p++ {
					out[16*p+c] = 0
				}
				continue
			}
			src := b[(j0+c)*ldb : (j0+c)*ldb+k]
			p := 0
			if g := k / 32; g > 0 && useBF16SIMD() {
				o := out[c:]
				_ = o[256*g-16]
				bf16ColsAVX512(src[:32*g], o)
				p = 16 * g
			}
			for ; 2*p+1 < k; p++ {
				out[16*p+c] = uint32(bf16(src[2*p])) | uint32(bf16(src[2*p+1]))<<16
			}
			if 2*p < k {
				out[16*p+c] = uint32(bf16(src[2*p]))
				p++
			}
			for ; p < 16*kt; p++ {
				out[16*p+c] = 0
			}
		}
	}
}

// bf16Strips is how many 16-column strips of B one task packs and
// multiplies: 128 columns, 8·kt KB of packed B (in L1/L2 while every strip
// of A passes over it).
const bf16Strips = 8

// gemmBF16Wide computes c (m×n, rows n apart) (+)= op(a)·b for a wide,
// short product (n ≫ m, the forward and input-gradient products of a 1×1
// convolution in channel-major layout): op(a) is a (m×k) or aᵀ (a: k×m),
// b is k×n. A is packed once; tasks of bf16Strips strips each pack their
// part of B and run every strip of A over it.
func gemmBF16Wide(m, n, k int, a []float32, aTrans bool, b, c []float32, acc bool) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 {
		if !acc {
			clear(c[:m*n])
		}
		return
	}
	kt := ceilDiv(k, 32)
	ld := 32 * kt
	mStrips := ceilDiv(m, 16)
	ap := bf16Bufs.get(16 * mStrips * ld)
	defer bf16Bufs.put(ap)
	abuf := *ap
	lda := k
	if aTrans {
		lda = m
	}
	packBF16A(m, k, a, lda, aTrans, abuf, ld, 0, 16*mStrips)
	nStrips := ceilDiv(n, 16)
	nTasks := ceilDiv(nStrips, bf16Strips)
	groups := rowGroups(mStrips, nTasks)
	parallelFor(nTasks*groups, workersFor(nTasks*groups, m*n*k/8), func(s *scratch, t int) {
		s0 := (t / groups) * bf16Strips
		s1 := min(s0+bf16Strips, nStrips)
		if cap(s.u) < bf16Strips*256*kt {
			s.u = make([]uint32, bf16Strips*256*kt)
		}
		bbuf := s.u[:(s1-s0)*256*kt]
		packBF16Rows(k, n, b, n, kt, s0, s1, bbuf)
		r0, r1 := rowGroup(m, mStrips, groups, t%groups)
		gemmBF16Tiles(r1-r0, n, kt, abuf[r0*ld:], ld, (r1-r0)/16, bbuf, s0, s1, c[r0*n:], acc)
	})
}

// rowGroups is how many groups of rows a product with mStrips strips of
// rows and tasks column tasks is cut into: 1, or more when the column
// tasks alone cannot keep the threads busy (small images: a few columns,
// many channels). The results do not depend on it.
func rowGroups(mStrips, tasks int) int {
	th := Threads()
	if tasks >= 2*th {
		return 1
	}
	return max(1, min(ceilDiv(mStrips, 2), ceilDiv(2*th, tasks)))
}

// rowGroup is the rows [r0, r1) of group g of groups over m rows
// (mStrips strips), cut at multiples of 32 rows (2×2 tile blocks).
func rowGroup(m, mStrips, groups, g int) (r0, r1 int) {
	pairs := ceilDiv(mStrips, 2)
	r0 = min(m, 32*(g*pairs/groups))
	r1 = min(m, 32*((g+1)*pairs/groups))
	return r0, r1
}

// gemmBF16Tiles runs the tile kernel on strips [s0, s1) of packed B
// (bbuf) against every strip of packed A, writing c (m×n, rows n apart):
// full 16×16 tiles straight into c, a partial last strip of columns or of
// rows into a scratch tile row or column first (the packed operands are
// zero there), then into c.
func gemmBF16Tiles(m, n, kt int, abuf []uint16, ld, mFull int, bbuf []uint32, s0, s1 int, c []float32, acc bool) {
	j0 := 16 * s0
	fullStrips := min(s1, n/16) - s0
	if fullStrips > 0 && mFull > 0 {
		(&tileJob{a: abuf, lda: ld, b: bbuf, bstride: 256 * kt, c: c[j0:], ldc: n,
			mStrips: mFull, nStrips: fullStrips, kt: kt, acc: acc}).run()
	}
	// Partial last strip of columns (all rows), then partial rows.
	if fullStrips < s1-s0 {
		st := max(fullStrips, 0)
		js := j0 + 16*st
		ms := ceilDiv(m, 16)
		tmp := f32Bufs.get(16 * ms * 16)
		(&tileJob{a: abuf, lda: ld, b: bbuf[st*256*kt:], bstride: 256 * kt, c: *tmp, ldc: 16,
			mStrips: ms, nStrips: 1, kt: kt}).run()
		addRows(m, n-js, *tmp, 16, c[js:], n, acc)
		f32Bufs.put(tmp)
	}
	if r := 16 * mFull; r < m && fullStrips > 0 {
		w := 16 * fullStrips
		tmp := f32Bufs.get(16 * w)
		(&tileJob{a: abuf[r*ld:], lda: ld, b: bbuf, bstride: 256 * kt, c: *tmp, ldc: w,
			mStrips: 1, nStrips: fullStrips, kt: kt}).run()
		addRows(m-r, w, *tmp, w, c[r*n+j0:], n, acc)
		f32Bufs.put(tmp)
	}
}

// addRows writes (acc: adds) rows×cols values of src (rows ls apart) to dst
// (rows ld apart).
func addRows(rows, cols int, src []float32, ls int, dst []float32, ld int, acc bool) {
	for i := 0; i < rows; i++ {
		s, d := src[i*ls:i*ls+cols], dst[i*ld:i*ld+cols]
		if acc {
			Add(s, d)
		} else {
			copy(d, s)
		}
	}
}

// GemmBF16 is Gemm (c = a·b, + c if accumulate; a: m×k, b: k×n, c: m×n,
// row-major) with a and b rounded to bfloat16 and the products summed in
// float32, on AMX tiles or with AVX512-BF16 where the CPU has them (see
// HaveBF16). It is made for wide products (n ≫ m), as in a 1×1
// convolution's forward pass.
func GemmBF16(m, n, k int, a, b, c []float32, accumulate bool) {
	gemmBF16Wide(m, n, k, a, false, b, c, accumulate)
}

// GemmBF16TN is GemmTN (c = aᵀ·b; a: k×m, b: k×n) in bfloat16 like
// GemmBF16, as in a 1×1 convolution's input gradient.
func GemmBF16TN(m, n, k int, a, b, c []float32, accumulate bool) {
	gemmBF16Wide(m, n, k, a, true, b, c, accumulate)
}

// GemmBF16NT is GemmNT (c = a·bᵀ; a: m×k, b: n×k) in bfloat16 like
// GemmBF16, made for long reductions (k ≫ m, n), as in a 1×1
// convolution's weight gradient. The reduction is cut into bf16NTParts
// fixed parts (the same whatever the number of threads, so the sums are
// too), each walked in chunks of bf16NTChunk values that are packed into
// cache-resident buffers and multiplied at once: every operand value is
// read from memory once. The parts' sums are added in order.
func GemmBF16NT(m, n, k int, a, b, c []float32, accumulate bool) {
	if m <= 0 || n <= 0 {
		return
	}
	if k <= 0 {
		if !accumulate {
			clear(c[:m*n])
		}
		return
	}
	chunks := ceilDiv(k, bf16NTChunk)
	parts := min(bf16NTParts, chunks)
	mStrips := ceilDiv(m, 16)
	groups := rowGroups(mStrips, parts)
	var partial [bf16NTParts - 1]*[]float32
	for i := 1; i < parts; i++ {
		partial[i-1] = f32Bufs.get(m * n)
	}
	parallelFor(parts*groups, workersFor(parts*groups, m*n*k/8), func(s *scratch, t int) {
		part := t / groups
		r0, r1 := rowGroup(m, mStrips, groups, t%groups)
		if r0 == r1 {
			return
		}
		dst, acc := c, accumulate
		if part > 0 {
			dst, acc = *partial[part-1], false
		}
		for ch := part * chunks / parts; ch < (part+1)*chunks/parts; ch++ {
			k0 := ch * bf16NTChunk
			gemmBF16NTChunk(r1-r0, n, k, k0, min(bf16NTChunk, k-k0), a[r0*k:], b, dst[r0*n:], acc, s)
			acc = true
		}
	})
	for i := 1; i < parts; i++ {
		Add((*partial[i-1])[:m*n], c[:m*n])
		f32Bufs.put(partial[i-1])
	}
}

// bf16NTChunk is the reduction length GemmBF16NT packs at a time (256
// pixels: 16 KB of packed operand per 32 channels); bf16NTParts the
// number of parts its reduction is cut into.
const (
	bf16NTChunk = 256
	bf16NTParts = 4
)

// gemmBF16NTChunk computes c (+)= a[:, k0:k0+kc]·b[:, k0:k0+kc]ᵀ (a: m×k,
// b: n×k) on operands packed into s.
func gemmBF16NTChunk(m, n, k, k0, kc int, a, b, c []float32, acc bool, s *scratch) {
	kt := ceilDiv(kc, 32)
	ld := 32 * kt
	mStrips, nStrips := ceilDiv(m, 16), ceilDiv(n, 16)
	na := (16*mStrips*ld + 1) / 2 // A as bfloat16 pairs in s.u, then B
	if need := na + nStrips*256*kt; cap(s.u) < need {
		s.u = make([]uint32, need)
	}
	abuf := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s.u))), 2*na)
	bbuf := s.u[na : na+nStrips*256*kt]
	packBF16A(m, kc, a[k0:], k, false, abuf, ld, 0, 16*mStrips)
	packBF16Cols(kc, n, b[k0:], k, kt, 0, nStrips, bbuf)
	gemmBF16Tiles(m, n, kt, abuf, ld, m/16, bbuf, 0, nStrips, c, acc)
}
