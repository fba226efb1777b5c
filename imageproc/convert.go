package imageproc

import (
	"image"
	"image/color"
)

// ToImage8 converts img to a compact 8-bit buffer the way PIL's
// Image.convert('RGB') (gray=false) or convert('L') (gray=true) converts the
// image PIL would have opened from the same file:
//
//   - Alpha is dropped, not composited: the un-premultiplied colour is kept
//     (PIL's RGBA->RGB). *image.RGBA / RGBA64 values that are not opaque are
//     un-premultiplied first.
//   - Gray and paletted images are expanded; palette transparency is ignored.
//   - *image.YCbCr (baseline JPEG) is converted with libjpeg's fixed-point
//     YCbCr->RGB tables, and 4:2:0, 4:2:2 and 4:4:0 chroma is upsampled with
//     libjpeg's "fancy" triangle filter, as libjpeg-turbo does for PIL. The
//     remaining difference from PIL is the IDCT (Go's is not libjpeg's
//     jpeg_idct_islow), typically ±1-2 levels.
//   - *image.CMYK uses PIL's cmyk2rgb formula.
//   - 16-bit images keep the high byte of each sample. For RGB(A) this
//     matches PIL (rawmode RGB;16B). For 16-bit grayscale PIL opens mode
//     "I" and convert('RGB') clips values to 0..255 (nearly everything turns
//     white); we deliberately take the high byte instead.
//   - L is computed from RGB with PIL's weights (R*19595 + G*38470 +
//     B*7471 + 0x8000) >> 16 (i.e. ITU-R 601-2 luma 299/587/114).
//
// Any other image type goes through color.NRGBAModel.
func ToImage8(img image.Image, gray bool) *Image8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		w, h = 0, 0
	}
	out := NewImage8(w, h, 3)
	if w == 0 {
		if gray {
			out.Channels = 1
		}
		return out
	}
	if gray {
		if g, ok := img.(*image.Gray); ok {
			out.Channels = 1
			out.Pix = out.Pix[:w*h]
			for y := 0; y < h; y++ {
				copy(out.Pix[y*w:(y+1)*w], g.Pix[g.PixOffset(b.Min.X, b.Min.Y+y):])
			}
			return out
		}
	}
	toRGB(img, out)
	if gray {
		return rgbToL(out)
	}
	return out
}

// rgbToL is PIL's rgb2l.
func rgbToL(m *Image8) *Image8 {
	n := m.Width * m.Height
	out := &Image8{Width: m.Width, Height: m.Height, Channels: 1, Pix: m.Pix[:n]}
	for i := 0; i < n; i++ { // in place: i <= 3i
		p := m.Pix[3*i : 3*i+3 : 3*i+3]
		out.Pix[i] = uint8((uint32(p[0])*19595 + uint32(p[1])*38470 + uint32(p[2])*7471 + 0x8000) >> 16)
	}
	return out
}

// unpremul returns the straight-alpha value of a premultiplied 8-bit sample.
func unpremul(v, a uint32) uint8 {
	if a == 0 {
		return 0
	}
	r := (v*255 + a/2) / a
	if r > 255 {
		r = 255
	}
	return uint8(r)
}

// paletteRGB returns the straight RGB of a palette entry.
func paletteRGB(c color.Color) [3]uint8 {
	switch c := c.(type) {
	case color.NRGBA:
		return [3]uint8{c.R, c.G, c.B}
	case color.RGBA:
		if c.A == 0xff {
			return [3]uint8{c.R, c.G, c.B}
		}
		a := uint32(c.A)
		return [3]uint8{unpremul(uint32(c.R), a), unpremul(uint32(c.G), a), unpremul(uint32(c.B), a)}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// cmykToRGB is PIL's cmyk2rgb: nk - c*nk/255 with MULDIV255 rounding.
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := 255 - int32(k)
	f := func(v uint8) uint8 {
		t := int32(v)*nk + 128
		r := nk - (((t >> 8) + t) >> 8)
		if r < 0 {
			return 0
		}
		return uint8(r)
	}
	return f(c), f(m), f(y)
}

// toRGB fills out (3 channels, sized like img) with img's RGB values.
func toRGB(img image.Image, out *Image8) {
	b := img.Bounds()
	w, h := out.Width, out.Height
	row := func(y int) []uint8 { return out.Pix[y*w*3 : (y+1)*w*3] }
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToRGB(m, out)
	case *image.NYCbCrA:
		ycbcrToRGB(&m.YCbCr, out)
	case *image.RGBA:
		parallelRows(h, w*4, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
				d := row(y)
				for x := 0; x < w; x++ {
					p := s[4*x : 4*x+4 : 4*x+4]
					q := d[3*x : 3*x+3 : 3*x+3]
					if a := p[3]; a == 0xff {
						q[0], q[1], q[2] = p[0], p[1], p[2]
					} else {
						q[0], q[1], q[2] = unpremul(uint32(p[0]), uint32(a)), unpremul(uint32(p[1]), uint32(a)), unpremul(uint32(p[2]), uint32(a))
					}
				}
			}
		})
	case *image.NRGBA:
		parallelRows(h, w*4, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
				d := row(y)
				for x := 0; x < w; x++ {
					p := s[4*x : 4*x+4 : 4*x+4]
					q := d[3*x : 3*x+3 : 3*x+3]
					q[0], q[1], q[2] = p[0], p[1], p[2]
				}
			}
		})
	case *image.Gray:
		for y := 0; y < h; y++ {
			s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := row(y)
			for x := 0; x < w; x++ {
				v := s[x]
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := row(y)
			for x := 0; x < w; x++ {
				v := s[2*x]
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8
		for i, c := range m.Palette {
			if i < 256 {
				lut[i] = paletteRGB(c)
			}
		}
		// Out-of-range indices (invalid files) read as black, like Go's At.
		for y := 0; y < h; y++ {
			s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := row(y)
			for x := 0; x < w; x++ {
				c := lut[s[x]]
				d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := row(y)
			for x := 0; x < w; x++ {
				d[3*x], d[3*x+1], d[3*x+2] = cmykToRGB(s[4*x], s[4*x+1], s[4*x+2], s[4*x+3])
			}
		}
	case *image.NRGBA64:
		for y := 0; y < h; y++ {
			s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := row(y)
			for x := 0; x < w; x++ {
				d[3*x], d[3*x+1], d[3*x+2] = s[8*x], s[8*x+2], s[8*x+4]
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			s := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			d := row(y)
			for x := 0; x < w; x++ {
				p := s[8*x : 8*x+8 : 8*x+8]
				if p[6] == 0xff && p[7] == 0xff {
					d[3*x], d[3*x+1], d[3*x+2] = p[0], p[2], p[4]
					continue
				}
				c := color.NRGBA64Model.Convert(m.RGBA64At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
				d[3*x], d[3*x+1], d[3*x+2] = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8)
			}
		}
	default:
		for y := 0; y < h; y++ {
			d := row(y)
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				d[3*x], d[3*x+1], d[3*x+2] = c.R, c.G, c.B
			}
		}
	}
}
