package dense

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"

	"github.com/mobileone-go/mobileone/imageproc"
)

// Ignore is the class index of pixels that count for neither the loss nor
// the metrics (Pascal VOC's object borders and "difficult" regions).
const Ignore = 255

// Mask is a per-pixel class map: the class of pixel (x, y) is
// Pix[y*Width+x].
type Mask struct {
	Width, Height int
	Pix           []uint8
}

// NewMask returns a w×h mask of class 0.
func NewMask(w, h int) *Mask { return &Mask{Width: w, Height: h, Pix: make([]uint8, w*h)} }

// VOCPalette returns Pascal VOC's 256-colour palette (the devkit's
// labelcolormap): entry i spreads the bits of i over the high bits of R, G
// and B, so 0 is black, 1 (128, 0, 0), 2 (0, 128, 0), ..., and 255 (the
// ignore index) is (224, 224, 192).
func VOCPalette() color.Palette {
	p := make(color.Palette, 256)
	for i := range p {
		var r, g, b uint8
		c := i
		for j := 7; j >= 0; j-- {
			r |= uint8(c&1) << j
			g |= uint8(c>>1&1) << j
			b |= uint8(c>>2&1) << j
			c >>= 3
		}
		p[i] = color.RGBA{r, g, b, 255}
	}
	return p
}

// Paletted returns the mask as an indexed-colour image with the VOC
// palette (it shares m.Pix).
func (m *Mask) Paletted() *image.Paletted {
	return &image.Paletted{Pix: m.Pix, Stride: m.Width, Rect: image.Rect(0, 0, m.Width, m.Height), Palette: VOCPalette()}
}

// WriteMaskPNG encodes m as an indexed-colour PNG with the VOC palette, the
// format of VOC's SegmentationClass files: the palette index of a pixel is
// its class.
func WriteMaskPNG(w io.Writer, m *Mask) error {
	if m.Width <= 0 || m.Height <= 0 || len(m.Pix) != m.Width*m.Height {
		return fmt.Errorf("dense: malformed %dx%d mask with %d pixels", m.Width, m.Height, len(m.Pix))
	}
	return png.Encode(w, m.Paletted())
}

// ErrMask is matched (errors.Is) by the errors of a mask file that decodes
// but cannot be a class map.
var ErrMask = errors.New("bad mask")

// MaskFromImage converts a decoded mask image to a class map:
//   - *image.Paletted: the palette index is the class (VOC's
//     SegmentationClass PNGs), whatever the colours;
//   - *image.Gray: the grey value is the class;
//   - an RGB(A) image: every colour must be a VOC palette colour, which
//     gives its index (masks saved as RGB by an editor).
//
// 16-bit grey and any other colour model are refused.
func MaskFromImage(img image.Image) (*Mask, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("%w: empty image", ErrMask)
	}
	m := NewMask(w, h)
	switch src := img.(type) {
	case *image.Paletted:
		for y := 0; y < h; y++ {
			copy(m.Pix[y*w:(y+1)*w], src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):])
		}
		return m, nil
	case *image.Gray:
		for y := 0; y < h; y++ {
			copy(m.Pix[y*w:(y+1)*w], src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):])
		}
		return m, nil
	case *image.RGBA, *image.NRGBA:
		rgb := imageproc.ToImage8(img, false)
		index := make(map[[3]uint8]uint8, 256)
		for i, c := range VOCPalette() {
			r, g, bb, _ := c.RGBA()
			index[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bb >> 8)}] = uint8(i)
		}
		for i := range m.Pix {
			p := [3]uint8(rgb.Pix[3*i : 3*i+3])
			v, ok := index[p]
			if !ok {
				return nil, fmt.Errorf("%w: colour (%d, %d, %d) at (%d, %d) is not a VOC palette colour (an RGB mask must use the VOC palette; or save it as a palette or 8-bit grey PNG)",
					ErrMask, p[0], p[1], p[2], i%w, i/w)
			}
			m.Pix[i] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: colour model %T (want a palette, 8-bit grey or VOC-coloured RGB PNG)", ErrMask, img)
}

// ReadMaskFile decodes a mask file (see MaskFromImage); errors name the
// file.
func ReadMaskFile(path string) (*Mask, error) { return readMask(path, 0) }

// readMask is ReadMaskFile with a decoding limit (imageproc.Decode's
// maxPixels).
func readMask(path string, maxPixels int) (*Mask, error) {
	img, err := imageproc.DecodeFile(path, maxPixels)
	if err != nil {
		return nil, err
	}
	m, err := MaskFromImage(img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Check verifies that every pixel is a class index below numClasses or
// Ignore; the error gives the first offending value and its position.
func (m *Mask) Check(numClasses int) error {
	if len(m.Pix) != m.Width*m.Height {
		return fmt.Errorf("%w: %dx%d mask with %d pixels", ErrMask, m.Width, m.Height, len(m.Pix))
	}
	for i, v := range m.Pix {
		if int(v) >= numClasses && v != Ignore {
			return fmt.Errorf("%w: class index %d at (%d, %d) out of range: %d classes (0..%d) and %d (ignore)",
				ErrMask, v, i%m.Width, i/m.Width, numClasses, numClasses-1, Ignore)
		}
	}
	return nil
}

// Clone returns a copy of m.
func (m *Mask) Clone() *Mask {
	return &Mask{Width: m.Width, Height: m.Height, Pix: append([]uint8(nil), m.Pix...)}
}
