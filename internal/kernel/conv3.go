package kernel

import "sync/atomic"

// The 3×3, stride-1, pad-1 convolution of a plane, and its weight
// gradient, in a layout where each pixel is a run of s contiguous values
// (the trainer's (C, H, W, N) planes: s = N images): a row of W pixels is
// W·s values, and the tap of column c reads the row shifted by (c−1)·s.
// The nine taps of an output vector are summed in registers, so the output
// is written once (instead of once per tap), and one call does a whole
// plane (the kernels walk its rows themselves).

// Conv3Plane computes the 3×3, stride-1, zero-padded convolution of the
// plane x, h rows of width pixels of s values each:
//
//	dst[y][i] (+)= Σ_{r,c<3} w[3r+c] · x[y−1+r][i + (c−1)·s]
//
// for every row y < h and i < width·s, setting dst or, when add is set,
// adding to it; rows and columns outside the plane read 0. x and dst must
// hold h·width·s values and must not overlap.
func Conv3Plane(w *[9]float32, x, dst []float32, h, width, s int, add bool) {
	n := conv3Size("Conv3Plane", h, width, s)
	if n == 0 {
		return
	}
	if len(x) < n || len(dst) < n {
		vecShort("Conv3Plane")
	}
	f := vecKernels.active.conv3[0]
	if add {
		f = vecKernels.active.conv3[1]
	}
	f(*w, x[:n], zeroRow(width*s), dst[:n], 0, h, h, width, s)
}

// Corr3Plane adds to g[3r+c], r, c < 3, the weight gradient of
// Conv3Plane's w given d = ∂L/∂dst:
//
//	Σ_{y, i} d[y][i] · x[y−1+r][i + (c−1)·s]
//
// with rows and columns outside the plane reading 0. d and x must hold
// h·width·s values. The sums are accumulated in float32, row by row, over
// runs of rows of at most conv3Chunk values (a longer row is a run of its
// own), and the runs added in float64.
func Corr3Plane(d, x []float32, h, width, s int, g *[9]float64) {
	n := conv3Size("Corr3Plane", h, width, s)
	if n == 0 {
		return
	}
	if len(d) < n || len(x) < n {
		vecShort("Corr3Plane")
	}
	d, x = d[:n], x[:n]
	row := width * s
	z := zeroRow(row)
	step := max(1, conv3Chunk/row)
	for y0 := 0; y0 < h; y0 += step {
		var p [9]float32
		p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8] = vecKernels.active.corr3(d, x, z, y0, min(h, y0+step), h, width, s)
		for t, v := range p {
			g[t] += float64(v)
		}
	}
}

// conv3Chunk bounds the values Corr3Plane sums in float32 before adding
// to the float64 results.
const conv3Chunk = 16384

// conv3Size checks a plane's geometry and returns its number of values.
func conv3Size(fn string, h, width, s int) int {
	if h < 0 || width < 0 || s < 0 {
		panic("kernel." + fn + ": negative plane size")
	}
	return h * width * s
}

// zeroRow returns n zeros: the padding rows of Conv3Plane and Corr3Plane,
// which only read them. The buffer grows to the largest row asked for.
func zeroRow(n int) []float32 {
	if p := zeros.Load(); p != nil && len(*p) >= n {
		return (*p)[:n]
	}
	z := make([]float32, n)
	zeros.Store(&z) // a concurrent caller may store another: both are zeros
	return z
}

var zeros atomic.Pointer[[]float32]

// The pure-Go twins of Conv3 and Corr3 (float64 sums in Corr3), same
// contract: rows [y0, y1) of a plane of h rows of width pixels of s values,
// zrow (at least a row of zeros) for the rows outside the plane.

func vecConv3Go(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int) {
	vecConv3Any(w, x, zrow, out, y0, y1, h, width, s, false)
}

func vecConv3AddGo(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int) {
	vecConv3Any(w, x, zrow, out, y0, y1, h, width, s, true)
}

// conv3Tap returns the row r of x (zrow outside the plane) and the range
// [lo, hi) of the row's elements i whose column c exists.
func conv3Tap(x, zrow []float32, y, r, c, h, width, s int) (row []float32, lo, hi int) {
	n := width * s
	if yy := y - 1 + r; yy >= 0 && yy < h {
		row = x[yy*n : (yy+1)*n]
	} else {
		row = zrow[:n]
	}
	lo, hi = 0, n
	if c == 0 {
		lo = s
	}
	if c == 2 {
		hi = n - s
	}
	return row, lo, hi
}

func vecConv3Any(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int, add bool) {
	n := width * s
	for y := y0; y < y1; y++ {
		o := out[y*n : (y+1)*n]
		if !add {
			clear(o)
		}
		for r := range 3 {
			for c := range 3 {
				row, lo, hi := conv3Tap(x, zrow, y, r, c, h, width, s)
				wt := w[3*r+c]
				for i := lo; i < hi; i++ {
					o[i] += wt * row[i+(c-1)*s]
				}
			}
		}
	}
}

func vecCorr3Go(d, x, zrow []float32, y0, y1, h, width, s int) (g0, g1, g2, g3, g4, g5, g6, g7, g8 float32) {
	n := width * s
	var g [9]float64
	for y := y0; y < y1; y++ {
		dr := d[y*n : (y+1)*n]
		for r := range 3 {
			for c := range 3 {
				row, lo, hi := conv3Tap(x, zrow, y, r, c, h, width, s)
				for i := lo; i < hi; i++ {
					g[3*r+c] += float64(dr[i]) * float64(row[i+(c-1)*s])
				}
			}
		}
	}
	return float32(g[0]), float32(g[1]), float32(g[2]), float32(g[3]), float32(g[4]), float32(g[5]), float32(g[6]), float32(g[7]), float32(g[8])
}
