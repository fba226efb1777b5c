package imageproc

import "image"

// libjpeg's YCbCr->RGB tables (jdcolor.c, SCALEBITS = 16).
var crR, cbB, crG, cbG [256]int32

func init() {
	const half = 1 << 15
	fix := func(x float64) int32 { return int32(x*(1<<16) + 0.5) }
	for i := 0; i < 256; i++ {
		x := int32(i) - 128
		crR[i] = (fix(1.40200)*x + half) >> 16
		cbB[i] = (fix(1.77200)*x + half) >> 16
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + half
	}
}

func clampU8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ycbcrToRGB converts a (JPEG) YCbCr image like libjpeg-turbo with its
// defaults (fancy upsampling on), as PIL decodes JPEGs.
func ycbcrToRGB(m *image.YCbCr, out *Image8) {
	b := m.Rect
	w, h := out.Width, out.Height
	ratio := m.SubsampleRatio
	origin := b.Min == image.Point{}
	cw, ch := w, h
	switch ratio {
	case image.YCbCrSubsampleRatio420:
		cw, ch = (w+1)/2, (h+1)/2
	case image.YCbCrSubsampleRatio422:
		cw = (w + 1) / 2
	case image.YCbCrSubsampleRatio440:
		ch = (h + 1) / 2
	}
	// libjpeg-turbo only uses the fancy h2 filters when the chroma width
	// is > 2; the generic path replicates samples (what COffset does).
	fancy := origin && (ratio == image.YCbCrSubsampleRatio440 ||
		((ratio == image.YCbCrSubsampleRatio420 || ratio == image.YCbCrSubsampleRatio422) && cw > 2))
	parallelRows(h, w*8, func(y0, y1 int) {
		cb := make([]uint8, w)
		cr := make([]uint8, w)
		for y := y0; y < y1; y++ {
			yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
			if fancy {
				upsampleRow(m, ratio, y, cw, ch, w, m.Cb, cb)
				upsampleRow(m, ratio, y, cw, ch, w, m.Cr, cr)
			} else {
				for x := 0; x < w; x++ {
					o := m.COffset(b.Min.X+x, b.Min.Y+y)
					cb[x], cr[x] = m.Cb[o], m.Cr[o]
				}
			}
			d := out.Pix[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				yy := int32(yrow[x])
				u, v := cb[x], cr[x]
				q := d[3*x : 3*x+3 : 3*x+3]
				q[0] = clampU8(yy + crR[v])
				q[1] = clampU8(yy + ((cbG[u] + crG[v]) >> 16))
				q[2] = clampU8(yy + cbB[u])
			}
		}
	})
}

// upsampleRow writes output row y of one chroma plane (cw×ch samples,
// stride m.CStride) into dst[:w], using libjpeg's fancy upsampling
// (jdsample.c h2v1/h2v2/h1v2_fancy_upsample). Edge samples are replicated,
// as libjpeg's context rows and padded columns are.
func upsampleRow(m *image.YCbCr, ratio image.YCbCrSubsampleRatio, y, cw, ch, w int, plane, dst []uint8) {
	cs := m.CStride
	switch ratio {
	case image.YCbCrSubsampleRatio422: // h2v1
		in := plane[y*cs : y*cs+cw]
		for i := 0; i < cw; i++ {
			c := 3 * int32(in[i])
			l := int32(in[max(i-1, 0)])
			r := int32(in[min(i+1, cw-1)])
			dst[2*i] = uint8((c + l + 1) >> 2)
			if 2*i+1 < w {
				dst[2*i+1] = uint8((c + r + 2) >> 2)
			}
		}
	case image.YCbCrSubsampleRatio440: // h1v2
		r0 := y / 2
		r1, bias := r0-1, int32(1)
		if y%2 == 1 {
			r1, bias = r0+1, 2
		}
		r1 = min(max(r1, 0), ch-1)
		in0 := plane[r0*cs : r0*cs+cw]
		in1 := plane[r1*cs : r1*cs+cw]
		for i := 0; i < cw; i++ {
			dst[i] = uint8((3*int32(in0[i]) + int32(in1[i]) + bias) >> 2)
		}
	case image.YCbCrSubsampleRatio420: // h2v2
		r0 := y / 2
		r1 := r0 - 1
		if y%2 == 1 {
			r1 = r0 + 1
		}
		r1 = min(max(r1, 0), ch-1)
		in0 := plane[r0*cs : r0*cs+cw]
		in1 := plane[r1*cs : r1*cs+cw]
		col := func(i int) int32 { return 3*int32(in0[i]) + int32(in1[i]) }
		for i := 0; i < cw; i++ {
			c := 3 * col(i)
			dst[2*i] = uint8((c + col(max(i-1, 0)) + 8) >> 4)
			if 2*i+1 < w {
				dst[2*i+1] = uint8((c + col(min(i+1, cw-1)) + 7) >> 4)
			}
		}
	}
}
