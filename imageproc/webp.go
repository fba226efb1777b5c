package imageproc

import "image"

// WebP lossy frames are limited-range BT.601 YUV 4:2:0. golang.org/x/image/webp
// returns them as *image.YCbCr, which Go would convert with the full-range
// JPEG (JFIF) formulas; libwebp (what PIL uses) converts them with its own
// fixed-point BT.601 formulas and "fancy" chroma upsampler. webpToNRGBA
// reimplements libwebp's C path (dsp/yuv.h, dsp/upsampling.c, io_dec.c
// EmitFancyRGB) so that Decode returns the pixels PIL would see.

func webpClip8(v int32) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func multHi(v, c int32) int32 { return (v * c) >> 8 }

func webpYUVToRGB(y, u, v int32) (uint8, uint8, uint8) {
	yy := multHi(y, 19077)
	return webpClip8(yy + multHi(v, 26149) - 14234),
		webpClip8(yy - multHi(u, 6419) - multHi(v, 13320) + 8708),
		webpClip8(yy + multHi(u, 33050) - 17685)
}

// webpToNRGBA converts a decoded lossy WebP frame (4:2:0, origin at 0,0).
// alpha may be nil (opaque).
func webpToNRGBA(m *image.YCbCr, alpha []uint8, astride int) *image.NRGBA {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	cw := (w + 1) / 2
	lastPair := (w - 1) >> 1
	parallelRows(h, w*8, func(y0, y1 int) {
		us := make([]int32, w)
		vs := make([]int32, w)
		for y := y0; y < y1; y++ {
			// Which chroma rows feed output row y and in which role.
			var top, cur int
			bottom := false
			if y == 0 || (y == h-1 && h%2 == 0) {
				top, cur = y/2, y/2
			} else {
				k := (y + 1) / 2
				top, cur, bottom = k-1, k, y%2 == 0
			}
			for pl, dst := range [2][]int32{us, vs} {
				plane := m.Cb
				if pl == 1 {
					plane = m.Cr
				}
				T := plane[top*m.CStride : top*m.CStride+cw]
				C := plane[cur*m.CStride : cur*m.CStride+cw]
				if bottom {
					T, C = C, T // the bottom-row formulas are the top ones mirrored
				}
				dst[0] = (3*int32(T[0]) + int32(C[0]) + 2) >> 2
				for x := 1; x <= lastPair; x++ {
					tl, t := int32(T[x-1]), int32(T[x])
					l, u := int32(C[x-1]), int32(C[x])
					avg := tl + t + l + u + 8
					d12 := (avg + 2*(t+l)) >> 3
					d03 := (avg + 2*(tl+u)) >> 3
					dst[2*x-1] = (d12 + tl) >> 1
					dst[2*x] = (d03 + t) >> 1
				}
				if w%2 == 0 {
					dst[w-1] = (3*int32(T[lastPair]) + int32(C[lastPair]) + 2) >> 2
				}
			}
			yrow := m.Y[y*m.YStride : y*m.YStride+w]
			d := out.Pix[y*out.Stride : y*out.Stride+4*w]
			for x := 0; x < w; x++ {
				q := d[4*x : 4*x+4 : 4*x+4]
				q[0], q[1], q[2] = webpYUVToRGB(int32(yrow[x]), us[x], vs[x])
				q[3] = 0xff
				if alpha != nil {
					q[3] = alpha[y*astride+x]
				}
			}
		}
	})
	return out
}

// fixWebP converts x/image/webp's lossy YCbCr output like libwebp does.
func fixWebP(img image.Image) image.Image {
	switch m := img.(type) {
	case *image.YCbCr:
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 && m.Rect.Min == (image.Point{}) {
			return webpToNRGBA(m, nil, 0)
		}
	case *image.NYCbCrA:
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 && m.Rect.Min == (image.Point{}) {
			return webpToNRGBA(&m.YCbCr, m.A, m.AStride)
		}
	}
	return img
}
