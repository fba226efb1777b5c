package imageproc

import (
	"fmt"
	"image"
	"runtime"
	"sync"
)

// Image8 is a compact interleaved 8-bit image: the value of channel c of the
// pixel (x, y) is Pix[(y*Width+x)*Channels+c]. Channels is 3 (RGB) or 1 (L).
type Image8 struct {
	Width, Height, Channels int
	Pix                     []uint8
}

// NewImage8 returns a zeroed w×h image with the given number of channels.
func NewImage8(w, h, channels int) *Image8 {
	return &Image8{Width: w, Height: h, Channels: channels, Pix: make([]uint8, w*h*channels)}
}

// NRGBA converts the image to an opaque *image.NRGBA (gray is replicated).
func (m *Image8) NRGBA() *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, m.Width, m.Height))
	n := m.Width * m.Height
	for i := 0; i < n; i++ {
		d := out.Pix[4*i : 4*i+4 : 4*i+4]
		if m.Channels == 1 {
			v := m.Pix[i]
			d[0], d[1], d[2] = v, v, v
		} else {
			s := m.Pix[3*i : 3*i+3 : 3*i+3]
			d[0], d[1], d[2] = s[0], s[1], s[2]
		}
		d[3] = 0xff
	}
	return out
}

// ResizedShortSize returns the size torchvision's Resize(short) gives a w×h
// image: the short side becomes short and the long side
// int(short * long / short_side), truncated (Python float division).
func ResizedShortSize(w, h, short int) (int, int) {
	if w <= h {
		return short, int(float64(short*h) / float64(w))
	}
	return int(float64(short*w) / float64(h)), short
}

// ResizeShort converts img to RGB like PIL's convert('RGB') and resizes it
// so that its short side is short, exactly like
// torchvision.transforms.Resize(short, BILINEAR) on a PIL image.
func ResizeShort(img image.Image, short int) *Image8 {
	src := ToImage8(img, false)
	w, h := ResizedShortSize(src.Width, src.Height, short)
	return src.Resize(w, h)
}

// Resize resamples the image to w×h with PIL's BILINEAR filter
// (Image.resize((w, h), Image.BILINEAR)), bit-exactly: a separable,
// antialiased triangle filter, horizontal pass first, each pass rounded to
// 8 bits with PIL's 22-bit fixed-point coefficients. An axis whose size does
// not change is not resampled. The receiver is returned unchanged (not
// copied) when the size is already w×h.
func (m *Image8) Resize(w, h int) *Image8 { return m.ResizeFilter(w, h, false) }

// ResizeFilter is Resize with PIL's BICUBIC filter (Image.BICUBIC: the
// cubic convolution kernel with a = −0.5, support 2, antialiased the same
// way) when bicubic is set, as torchvision's Resize(..., BICUBIC) does on a
// PIL image.
func (m *Image8) ResizeFilter(w, h int, bicubic bool) *Image8 {
	if w <= 0 || h <= 0 || m.Width <= 0 || m.Height <= 0 {
		panic(fmt.Sprintf("imageproc: resize %dx%d to %dx%d", m.Width, m.Height, w, h))
	}
	if w == m.Width && h == m.Height {
		return m
	}
	f := filterBilinear
	if bicubic {
		f = filterBicubic
	}
	hc := newCoeffs(m.Width, w, f)
	vc := newCoeffs(m.Height, h, f)
	cur := m
	if w != m.Width {
		// Only the source rows the vertical pass reads are needed.
		first, last := 0, m.Height
		if h != m.Height {
			first = vc.bounds[0]
			last = vc.bounds[2*(h-1)] + vc.bounds[2*(h-1)+1]
			for i := 0; i < h; i++ {
				vc.bounds[2*i] -= first
			}
		}
		cur = resampleHorizontal(m, hc, first, last)
	}
	if h != m.Height {
		cur = resampleVertical(cur, vc)
	}
	return cur
}

// PIL's fixed-point precision for 8-bit resampling: 32 bits minus 8 for the
// sample and 2 of headroom for negative lobes / rounding.
const precisionBits = 32 - 8 - 2

// coeffs holds, for every output index i, the first input index
// bounds[2i], the window length bounds[2i+1] and the window's fixed-point
// weights k[i*ksize : i*ksize+bounds[2i+1]].
type coeffs struct {
	ksize  int
	bounds []int
	k      []int32
}

// A filter is a resampling kernel and its support.
type filter struct {
	fn      func(float64) float64
	support float64
}

var (
	filterBilinear = filter{bilinear, 1}
	filterBicubic  = filter{bicubic, 2}
)

// bicubic is PIL's bicubic filter (a = −0.5), support 2.
func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return ((a+2)*x-(a+3))*x*x + 1
	}
	if x < 2 {
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}

// bilinear is PIL's triangle filter, support 1.
func bilinear(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// newCoeffs computes the resampling windows from inSize to outSize samples
// the way PIL's precompute_coeffs + normalize_coeffs_8bpc do for the box
// (0, inSize): the filter is widened by the scale when downsampling, each
// window is normalised to sum 1 in float64 and then rounded to 22-bit fixed
// point (round half away from zero).
func newCoeffs(inSize, outSize int, f filter) *coeffs {
	support0 := f.support
	scale := float64(float32(inSize)) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := support0 * filterscale
	ksize := int(ceil(support))*2 + 1
	c := &coeffs{ksize: ksize, bounds: make([]int, 2*outSize), k: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	ss := 1.0 / filterscale
	for i := 0; i < outSize; i++ {
		// Written to avoid a fused multiply-add, which PIL's C does not use.
		center := float64((float64(i) + 0.5) * scale)
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			v := f.fn((float64(x+xmin) - center + 0.5) * ss)
			w[x] = v
			ww += v
		}
		k := c.k[i*ksize : (i+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.bounds[2*i] = xmin
		c.bounds[2*i+1] = xmax
	}
	return c
}

func ceil(x float64) float64 {
	t := float64(int64(x))
	if t < x {
		t++
	}
	return t
}

// clip8 is PIL's rounding of a fixed-point accumulator to a byte (the
// accumulator starts at 1<<(precisionBits-1), so this rounds half up).
func clip8(v int32) uint8 {
	if v >= 1<<precisionBits<<8 {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return uint8(v >> precisionBits)
}

// parallelRows runs fn over [0, n) split into contiguous chunks on up to
// GOMAXPROCS goroutines. work is a rough cost per row used to avoid
// spawning goroutines for tiny jobs.
func parallelRows(n, work int, fn func(y0, y1 int)) {
	procs := runtime.GOMAXPROCS(0)
	if procs > n {
		procs = n
	}
	if tot := n * work; tot < 1<<16 || procs < 2 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + procs - 1) / procs
	for y0 := 0; y0 < n; y0 += chunk {
		y1 := min(y0+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(y0, y1)
		}()
	}
	wg.Wait()
}

// resampleHorizontal resamples rows [first, last) of src to width
// len(c.bounds)/2.
func resampleHorizontal(src *Image8, c *coeffs, first, last int) *Image8 {
	outW := len(c.bounds) / 2
	nc := src.Channels
	dst := NewImage8(outW, last-first, nc)
	parallelRows(last-first, outW*c.ksize*nc, func(y0, y1 int) {
		for y := y0; y < y1; y++ {
			in := src.Pix[(y+first)*src.Width*nc : (y+first+1)*src.Width*nc]
			out := dst.Pix[y*outW*nc : (y+1)*outW*nc]
			for xx := 0; xx < outW; xx++ {
				xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
				k := c.k[xx*c.ksize : xx*c.ksize+n]
				if nc == 3 {
					s := in[xmin*3 : (xmin+n)*3]
					var s0, s1, s2 int32 = 1 << (precisionBits - 1), 1 << (precisionBits - 1), 1 << (precisionBits - 1)
					for x, kx := range k {
						p := s[3*x : 3*x+3 : 3*x+3]
						s0 += int32(p[0]) * kx
						s1 += int32(p[1]) * kx
						s2 += int32(p[2]) * kx
					}
					o := out[3*xx : 3*xx+3 : 3*xx+3]
					o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
				} else {
					s := in[xmin : xmin+n]
					var s0 int32 = 1 << (precisionBits - 1)
					for x, kx := range k {
						s0 += int32(s[x]) * kx
					}
					out[xx] = clip8(s0)
				}
			}
		}
	})
	return dst
}

// resampleVertical resamples src to height len(c.bounds)/2; c.bounds must be
// relative to src's first row.
func resampleVertical(src *Image8, c *coeffs) *Image8 {
	outH := len(c.bounds) / 2
	nc := src.Channels
	rowLen := src.Width * nc
	dst := NewImage8(src.Width, outH, nc)
	parallelRows(outH, rowLen*c.ksize, func(y0, y1 int) {
		acc := make([]int32, rowLen)
		for yy := y0; yy < y1; yy++ {
			ymin, n := c.bounds[2*yy], c.bounds[2*yy+1]
			k := c.k[yy*c.ksize : yy*c.ksize+n]
			for i := range acc {
				acc[i] = 1 << (precisionBits - 1)
			}
			for y, ky := range k {
				row := src.Pix[(ymin+y)*rowLen : (ymin+y+1)*rowLen]
				for i, v := range row {
					acc[i] += int32(v) * ky
				}
			}
			out := dst.Pix[yy*rowLen : (yy+1)*rowLen]
			for i, v := range acc {
				out[i] = clip8(v)
			}
		}
	})
	return dst
}
