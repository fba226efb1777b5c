package graph

import (
	"math"
	"sync"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// upsampler runs an Upsample node in float32, on NCHW values (a plane per
// channel, one lane a pixel) or blocked ones (a plane per channel block,
// kernel.BlockC lanes a pixel): the source rows and columns and their
// weights are computed once, as refUpsample computes them; bilinear runs
// separably (each source row interpolated along x once, then every output
// row is a blend of two of them with the vector kernels); a 1×1 source is
// a broadcast. Planes are spread over the kernels' threads.
type upsampler struct {
	h, w, oh, ow, lanes, planes int
	nearest                     bool
	y0, y1, x0, x1              []int
	fy, fx                      []float32
	rows                        sync.Pool // *[]float32: h rows of ow·lanes, interpolated along x
	x, out                      []float32 // the current run's buffers
	task                        func(t int)
}

func newUpsampler(n *Node, xs, ys []int, blocked bool) *upsampler {
	u := &upsampler{h: xs[1], w: xs[2], oh: ys[1], ow: ys[2], lanes: 1, planes: xs[0], nearest: n.Nearest}
	if blocked {
		u.lanes, u.planes = kernel.BlockC, kernel.Blocks(xs[0])
	}
	u.y0, u.y1, u.fy = upsampleTable(u.h, u.oh, u.nearest)
	u.x0, u.x1, u.fx = upsampleTable(u.w, u.ow, u.nearest)
	u.rows.New = func() any { b := make([]float32, u.h*u.ow*u.lanes); return &b }
	u.task = u.plane
	return u
}

// upsampleTable gives each output index its two source indices and the
// second one's weight (nearest: one source, weight 0), as refUpsample.
func upsampleTable(in, out int, nearest bool) (i0, i1 []int, f []float32) {
	i0, i1, f = make([]int, out), make([]int, out), make([]float32, out)
	scale := float64(in) / float64(out)
	for d := 0; d < out; d++ {
		if nearest {
			i0[d] = min(int(float64(d)*scale), in-1)
			i1[d] = i0[d]
			continue
		}
		s := math.Max((float64(d)+0.5)*scale-0.5, 0)
		i0[d] = min(int(s), in-1)
		i1[d] = min(i0[d]+1, in-1)
		f[d] = float32(s - float64(i0[d]))
	}
	return i0, i1, f
}

// run resizes x into out (both in the upsampler's layout).
func (u *upsampler) run(x, out []float32) {
	u.x, u.out = x, out
	work := u.planes * u.oh * u.ow * u.lanes
	workers := 1
	if work >= 1<<16 {
		workers = min(kernel.Threads(), u.planes)
	}
	if workers <= 1 {
		for t := 0; t < u.planes; t++ {
			u.plane(t)
		}
	} else {
		kernel.Parallel(u.planes, workers, u.task)
	}
	u.x, u.out = nil, nil
}

// plane resizes plane t.
func (u *upsampler) plane(t int) {
	L := u.lanes
	x := u.x[t*u.h*u.w*L : (t+1)*u.h*u.w*L]
	out := u.out[t*u.oh*u.ow*L : (t+1)*u.oh*u.ow*L]
	if u.h == 1 && u.w == 1 { // a broadcast
		for i := 0; i < len(out); i += L {
			copy(out[i:i+L], x)
		}
		return
	}
	if u.nearest {
		for oy := 0; oy < u.oh; oy++ {
			src := x[u.y0[oy]*u.w*L:]
			dst := out[oy*u.ow*L : (oy+1)*u.ow*L]
			for ox, sx := range u.x0 {
				copy(dst[ox*L:(ox+1)*L], src[sx*L:(sx+1)*L])
			}
		}
		return
	}
	rp := u.rows.Get().(*[]float32)
	rows := *rp
	row := u.ow * L
	for iy := 0; iy < u.h; iy++ {
		src := x[iy*u.w*L : (iy+1)*u.w*L]
		dst := rows[iy*row : (iy+1)*row]
		for ox := 0; ox < u.ow; ox++ {
			a, b, f := src[u.x0[ox]*L:u.x0[ox]*L+L], src[u.x1[ox]*L:u.x1[ox]*L+L], u.fx[ox]
			d := dst[ox*L : ox*L+L]
			for l := range d {
				d[l] = a[l] + f*(b[l]-a[l])
			}
		}
	}
	for oy := 0; oy < u.oh; oy++ {
		dst := out[oy*row : (oy+1)*row]
		f := u.fy[oy]
		kernel.Scale(1-f, rows[u.y0[oy]*row:(u.y0[oy]+1)*row], dst)
		if f != 0 {
			kernel.Axpy(f, rows[u.y1[oy]*row:(u.y1[oy]+1)*row], dst)
		}
	}
	u.rows.Put(rp)
}
