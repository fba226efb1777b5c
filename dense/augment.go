package dense

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
)

// Augment is the joint augmentation of torchvision's segmentation
// reference recipe (references/segmentation): a random scale, a horizontal
// flip and a random crop, applied to the image and its mask together, the
// image resampled with PIL's bilinear filter and the mask with nearest
// neighbour. Zero fields switch a step off.
type Augment struct {
	// ScaleMin and ScaleMax bound the random scale factor of both sides
	// (uniform); the new size is the rounded product, at least 1 pixel.
	// Both zero: no scaling.
	ScaleMin, ScaleMax float64
	// Base, if > 0, makes the scale relative to the image's long side
	// resized to Base pixels (torchvision's RandomResize around a base
	// size): the factor is U(ScaleMin, ScaleMax)·Base/max(W, H), so images
	// of any size reach the network at the scale FitPad gives them.
	Base int
	// Flip is the probability of a horizontal flip.
	Flip float64
	// Crop is the side of a random square crop; an image smaller than it
	// is first padded on the right and bottom (torchvision's
	// pad_if_smaller), the image with Fill and the mask with Ignore.
	// 0: no crop.
	Crop int
	// Fill is the image's padding value (RGB); the mean colour keeps the
	// padded region near zero after normalisation, torchvision pads 0.
	Fill [3]uint8
}

// Validate reports settings Apply cannot use.
func (a Augment) Validate() error {
	switch {
	case a.ScaleMin < 0 || a.ScaleMax < a.ScaleMin || (a.ScaleMax > 0 && a.ScaleMin == 0) || a.ScaleMax > 16:
		return fmt.Errorf("dense: scale range [%g, %g], want 0 < min <= max <= 16 (or both 0)", a.ScaleMin, a.ScaleMax)
	case a.Flip < 0 || a.Flip > 1:
		return fmt.Errorf("dense: flip probability %g", a.Flip)
	case a.Crop < 0:
		return fmt.Errorf("dense: crop %d", a.Crop)
	case a.Base < 0 || (a.Base > 0 && a.ScaleMax == 0):
		return fmt.Errorf("dense: base size %d needs a scale range", a.Base)
	}
	return nil
}

// Apply augments an RGB image and its mask (same size) with the random
// stream r: scale, then flip, then crop, drawing from r in that order. The
// inputs are not modified. It panics if the sizes differ (a programmer
// error: the readers check them).
func (a Augment) Apply(img *imageproc.Image8, m *Mask, r *data.RNG) (*imageproc.Image8, *Mask) {
	if img.Width != m.Width || img.Height != m.Height {
		panic(fmt.Sprintf("dense: image %dx%d, mask %dx%d", img.Width, img.Height, m.Width, m.Height))
	}
	if a.ScaleMax > 0 {
		s := r.Uniform(a.ScaleMin, a.ScaleMax)
		if a.ScaleMin == a.ScaleMax {
			s = a.ScaleMin
		}
		if a.Base > 0 {
			s *= float64(a.Base) / float64(max(img.Width, img.Height))
		}
		w := max(int(math.Round(float64(img.Width)*s)), 1)
		h := max(int(math.Round(float64(img.Height)*s)), 1)
		img, m = img.Resize(w, h), m.ResizeNearest(w, h)
	}
	if a.Flip > 0 && r.Bernoulli(a.Flip) {
		img, m = data.FlipH(img), m.FlipH()
	}
	if a.Crop > 0 {
		c := a.Crop
		w, h := max(img.Width, c), max(img.Height, c)
		left, top := r.Intn(w-c+1), r.Intn(h-c+1)
		img, m = CropImage(img, left, top, c, c, a.Fill), m.Crop(left, top, c, c)
	}
	return img, m
}

// ResizeNearest returns the mask resampled to w×h with nearest neighbour,
// as PIL's Image.resize(NEAREST): output pixel x takes source pixel
// floor((x+0.5)·W/w) (likewise for y), so class indices are never mixed.
// It returns m itself when the size does not change.
func (m *Mask) ResizeNearest(w, h int) *Mask {
	if w <= 0 || h <= 0 {
		panic(fmt.Sprintf("dense: resize a mask to %dx%d", w, h))
	}
	if w == m.Width && h == m.Height {
		return m
	}
	xs := nearestIndex(m.Width, w)
	out := NewMask(w, h)
	for y, sy := range nearestIndex(m.Height, h) {
		src := m.Pix[sy*m.Width : (sy+1)*m.Width]
		dst := out.Pix[y*w : (y+1)*w]
		for x, sx := range xs {
			dst[x] = src[sx]
		}
	}
	return out
}

func nearestIndex(in, out int) []int {
	idx := make([]int, out)
	scale := float64(in) / float64(out)
	for i := range idx {
		idx[i] = min(int(math.Floor((float64(i)+0.5)*scale)), in-1)
	}
	return idx
}

// FlipH returns the mask mirrored left to right.
func (m *Mask) FlipH() *Mask {
	out := NewMask(m.Width, m.Height)
	for y := 0; y < m.Height; y++ {
		src, dst := m.Pix[y*m.Width:(y+1)*m.Width], out.Pix[y*m.Width:(y+1)*m.Width]
		for x, v := range src {
			dst[len(dst)-1-x] = v
		}
	}
	return out
}

// Crop returns the w×h window of m at (left, top); pixels outside m are
// Ignore.
func (m *Mask) Crop(left, top, w, h int) *Mask {
	out := &Mask{Width: w, Height: h, Pix: make([]uint8, w*h)}
	for i := range out.Pix {
		out.Pix[i] = Ignore
	}
	x0, x1 := max(left, 0), min(left+w, m.Width)
	for y := 0; y < h && x0 < x1; y++ {
		sy := top + y
		if sy < 0 || sy >= m.Height {
			continue
		}
		copy(out.Pix[y*w+x0-left:y*w+x1-left], m.Pix[sy*m.Width+x0:sy*m.Width+x1])
	}
	return out
}

// CropImage returns the w×h window of an image at (left, top); pixels
// outside it are fill (the first channel's value for a grey image).
func CropImage(img *imageproc.Image8, left, top, w, h int, fill [3]uint8) *imageproc.Image8 {
	nc := img.Channels
	out := imageproc.NewImage8(w, h, nc)
	for i := 0; i < w*h; i++ {
		copy(out.Pix[i*nc:(i+1)*nc], fill[:nc])
	}
	x0, x1 := max(left, 0), min(left+w, img.Width)
	for y := 0; y < h && x0 < x1; y++ {
		sy := top + y
		if sy < 0 || sy >= img.Height {
			continue
		}
		copy(out.Pix[(y*w+x0-left)*nc:(y*w+x1-left)*nc], img.Pix[(sy*img.Width+x0)*nc:(sy*img.Width+x1)*nc])
	}
	return out
}

// FitPad resizes img (bilinear, as Image8.Resize) so that its long side
// is size, keeping the aspect ratio, and pads the right and bottom with
// fill to size×size: the whole image, letterboxed, as segmentation
// inference and evaluation feed it. w and h are the size of the image's
// part (the top-left corner); Mask.Crop(0, 0, w, h) then ResizeNearest
// maps a prediction back to the image.
func FitPad(img *imageproc.Image8, size int, fill [3]uint8) (out *imageproc.Image8, w, h int) {
	w, h = size, size
	if img.Width >= img.Height {
		h = max(1, int(float64(img.Height)*float64(size)/float64(img.Width)+0.5))
	} else {
		w = max(1, int(float64(img.Width)*float64(size)/float64(img.Height)+0.5))
	}
	return CropImage(img.Resize(w, h), 0, 0, size, size, fill), w, h
}

// CHW converts an 8-bit image to float32 (C, H, W): (v/255 − mean[c]) /
// std[c] per channel (torchvision's ToTensor then Normalize).
func CHW(img *imageproc.Image8, mean, std [3]float32) []float32 {
	nc, plane := img.Channels, img.Width*img.Height
	out := make([]float32, nc*plane)
	for c := 0; c < nc; c++ {
		var lut [256]float32
		for v := range lut {
			lut[v] = (float32(v)/255 - mean[c]) / std[c]
		}
		d := out[c*plane : (c+1)*plane]
		for i := range d {
			d[i] = lut[img.Pix[i*nc+c]]
		}
	}
	return out
}
