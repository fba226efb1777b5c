package data

import (
	"errors"
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/imageproc"
)

// cropPad returns the w×h window of m whose top-left corner is (left, top);
// pixels outside m are fill (torchvision's constant padding).
func cropPad(m *imageproc.Image8, left, top, w, h int, fill uint8) *imageproc.Image8 {
	nc := m.Channels
	out := imageproc.NewImage8(w, h, nc)
	inside := left >= 0 && top >= 0 && left+w <= m.Width && top+h <= m.Height
	if !inside && fill != 0 {
		for i := range out.Pix {
			out.Pix[i] = fill
		}
	}
	// Source columns [x0, x1) land at out columns [x0-left, x1-left).
	x0, x1 := max(left, 0), min(left+w, m.Width)
	if x0 >= x1 {
		return out
	}
	for y := 0; y < h; y++ {
		sy := top + y
		if sy < 0 || sy >= m.Height {
			continue
		}
		copy(out.Pix[(y*w+x0-left)*nc:(y*w+x1-left)*nc], m.Pix[(sy*m.Width+x0)*nc:(sy*m.Width+x1)*nc])
	}
	return out
}

// Crop returns the w×h window at (left, top) as a new image, zero-filled
// where it leaves m.
func Crop(m *imageproc.Image8, left, top, w, h int) *imageproc.Image8 {
	return cropPad(m, left, top, w, h, 0)
}

// RandomResizedCrop is torchvision's RandomResizedCrop: a random window of
// area fraction in Scale and aspect ratio (w/h, log-uniform) in Ratio,
// resized to Width×Height with PIL's bilinear filter (antialiased, as
// torchvision on PIL images).
type RandomResizedCrop struct {
	Width, Height int
	Scale         [2]float64 // zero: (0.08, 1)
	Ratio         [2]float64 // zero: (3/4, 4/3)
}

func (o RandomResizedCrop) String() string {
	s, r := o.ranges()
	return fmt.Sprintf("RandomResizedCrop(%dx%d, scale %v, ratio %.4g)", o.Width, o.Height, s, r)
}

func (o RandomResizedCrop) ranges() (scale, ratio [2]float64) {
	scale, ratio = o.Scale, o.Ratio
	if scale == [2]float64{} {
		scale = [2]float64{0.08, 1}
	}
	if ratio == [2]float64{} {
		ratio = [2]float64{3.0 / 4, 4.0 / 3}
	}
	return
}

func (o RandomResizedCrop) validate() error {
	s, r := o.ranges()
	if o.Width <= 0 || o.Height <= 0 {
		return errors.New("output size must be positive")
	}
	if !(s[0] > 0 && s[0] <= s[1]) || !(r[0] > 0 && r[0] <= r[1]) {
		return errors.New("scale and ratio need 0 < min <= max")
	}
	return nil
}

// Params draws the crop window for a w×h image exactly like torchvision's
// RandomResizedCrop.get_params: up to 10 tries of (area, log-ratio), then a
// centre crop clamped to the ratio range.
func (o RandomResizedCrop) Params(w, h int, r *RNG) (left, top, cw, ch int) {
	scale, ratio := o.ranges()
	area := float64(w * h)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * r.Uniform(scale[0], scale[1])
		aspect := math.Exp(r.Uniform(logLo, logHi))
		cw = int(math.RoundToEven(math.Sqrt(target * aspect)))
		ch = int(math.RoundToEven(math.Sqrt(target / aspect)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top = r.Intn(h - ch + 1)
			left = r.Intn(w - cw + 1)
			return left, top, cw, ch
		}
	}
	in := float64(w) / float64(h)
	switch {
	case in < ratio[0]:
		cw = w
		ch = int(math.RoundToEven(float64(cw) / ratio[0]))
	case in > ratio[1]:
		ch = h
		cw = int(math.RoundToEven(float64(ch) * ratio[1]))
	default:
		cw, ch = w, h
	}
	return (w - cw) / 2, (h - ch) / 2, cw, ch
}

func (o RandomResizedCrop) Apply(m *imageproc.Image8, r *RNG) *imageproc.Image8 {
	left, top, cw, ch := o.Params(m.Width, m.Height, r)
	c := m
	if left != 0 || top != 0 || cw != m.Width || ch != m.Height {
		c = cropPad(m, left, top, cw, ch, 0)
	}
	return c.Resize(o.Width, o.Height)
}

// HorizontalFlip mirrors the image left-right with probability P (0 never
// flips; torchvision's default is 0.5).
type HorizontalFlip struct{ P float64 }

func (o HorizontalFlip) String() string { return fmt.Sprintf("HorizontalFlip(%g)", o.P) }

func (o HorizontalFlip) Apply(m *imageproc.Image8, r *RNG) *imageproc.Image8 {
	if !r.Bernoulli(o.P) {
		return m
	}
	return FlipH(m)
}

// FlipH returns a left-right mirrored copy of m.
func FlipH(m *imageproc.Image8) *imageproc.Image8 {
	w, nc := m.Width, m.Channels
	out := imageproc.NewImage8(w, m.Height, nc)
	for y := 0; y < m.Height; y++ {
		src := m.Pix[y*w*nc : (y+1)*w*nc]
		dst := out.Pix[y*w*nc : (y+1)*w*nc]
		if nc == 1 {
			for x, v := range src {
				dst[w-1-x] = v
			}
			continue
		}
		for x := 0; x < w; x++ {
			copy(dst[(w-1-x)*nc:(w-x)*nc], src[x*nc:(x+1)*nc])
		}
	}
	return out
}

// RandomCrop is torchvision's RandomCrop(size, padding, fill): pad every
// side by Padding pixels of value Fill, then crop a uniformly placed
// Width×Height window (0 means the input's size). If the padded image is
// smaller than the window, the window is anchored at the padded top-left
// and the rest is filled too.
type RandomCrop struct {
	Width, Height int
	Padding       int
	Fill          uint8
}

func (o RandomCrop) String() string {
	return fmt.Sprintf("RandomCrop(%dx%d, pad %d)", o.Width, o.Height, o.Padding)
}

func (o RandomCrop) validate() error {
	if o.Width < 0 || o.Height < 0 || o.Padding < 0 {
		return errors.New("negative size or padding")
	}
	return nil
}

func (o RandomCrop) Apply(m *imageproc.Image8, r *RNG) *imageproc.Image8 {
	w, h := o.Width, o.Height
	if w == 0 {
		w = m.Width
	}
	if h == 0 {
		h = m.Height
	}
	p := o.Padding
	top := r.Intn(max(m.Height+2*p-h, 0)+1) - p
	left := r.Intn(max(m.Width+2*p-w, 0)+1) - p
	return cropPad(m, left, top, w, h, o.Fill)
}

// Resize is torchvision's Resize with PIL's bilinear filter: Short > 0
// resizes the short side to Short (Resize(int)); otherwise the image
// becomes Width×Height.
type Resize struct {
	Short         int
	Width, Height int
}

func (o Resize) String() string {
	if o.Short > 0 {
		return fmt.Sprintf("Resize(%d)", o.Short)
	}
	return fmt.Sprintf("Resize(%dx%d)", o.Width, o.Height)
}

func (o Resize) validate() error {
	if o.Short <= 0 && (o.Width <= 0 || o.Height <= 0) {
		return errors.New("need Short or Width and Height")
	}
	return nil
}

func (o Resize) Apply(m *imageproc.Image8, _ *RNG) *imageproc.Image8 {
	w, h := o.Width, o.Height
	if o.Short > 0 {
		w, h = imageproc.ResizedShortSize(m.Width, m.Height, o.Short)
	}
	return m.Resize(w, h)
}

// CenterCrop is torchvision's CenterCrop (zero padding when the image is
// smaller).
type CenterCrop struct{ Width, Height int }

func (o CenterCrop) String() string { return fmt.Sprintf("CenterCrop(%dx%d)", o.Width, o.Height) }

func (o CenterCrop) validate() error {
	if o.Width <= 0 || o.Height <= 0 {
		return errors.New("size must be positive")
	}
	return nil
}

func (o CenterCrop) Apply(m *imageproc.Image8, _ *RNG) *imageproc.Image8 {
	if m.Width == o.Width && m.Height == o.Height {
		return m
	}
	left, _ := imageproc.CenterCropOrigin(m.Width, m.Height, o.Width)
	_, top := imageproc.CenterCropOrigin(m.Width, m.Height, o.Height)
	return cropPad(m, left, top, o.Width, o.Height, 0)
}
