// Package imageproc decodes images defensively and turns them into model
// input exactly like torchvision's ImageNet evaluation pipeline on PIL:
//
//	img = PIL.Image.open(f).convert('RGB')
//	Resize(S, interpolation=BILINEAR)   # short side -> S, long side truncated
//	CenterCrop(C)                       # zero padding if the image is smaller
//	ToTensor()                          # /255, CHW
//	Normalize(mean, std)
//
// PIL's bilinear resampling (antialiased, 22-bit fixed point, horizontal
// then vertical pass, each rounded to 8 bits) is reimplemented bit-exactly;
// see Image8.Resize. Decoded pixels follow PIL's convert('RGB'); see
// ToImage8 for the details and the few known differences.
package imageproc

import (
	"fmt"
	"image"
	"math"

	"github.com/mobileone-go/mobileone/tensor"
)

// Params describes the preprocessing.
type Params struct {
	// ResizeShort is torchvision's Resize(int) size: the short side
	// becomes ResizeShort and the long side int(ResizeShort*long/short).
	// 0 skips resizing.
	ResizeShort int
	// Crop is the CenterCrop size (square). It must be > 0.
	Crop int
	// Mean and Std are Normalize's per-channel constants; with Gray only
	// index 0 is used.
	Mean, Std [3]float32
	// Gray produces one channel, PIL's convert('L') (luma 299/587/114 in
	// 16-bit fixed point), instead of RGB.
	Gray bool
	// Bicubic resizes with PIL's BICUBIC filter instead of BILINEAR (the
	// evaluation transform of some torchvision weights).
	Bicubic bool `json:",omitempty"`
}

// ImageNet normalisation constants.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// ImageNetParams returns the standard ImageNet evaluation parameters with
// the given resize: MobileOne uses 256 for S0 and 248 for S1-S4; the crop
// is 224.
func ImageNetParams(resizeShort int) Params {
	return Params{ResizeShort: resizeShort, Crop: 224, Mean: ImageNetMean, Std: ImageNetStd}
}

// Preprocess converts img to a (3, Crop, Crop) float32 tensor (or
// (1, Crop, Crop) with Gray) exactly as torchvision does. It panics if
// p.Crop <= 0, p.ResizeShort < 0 or img is empty (Decode never returns an
// empty image).
func Preprocess(img image.Image, p Params) *tensor.Tensor {
	if p.Crop <= 0 || p.ResizeShort < 0 {
		panic(fmt.Sprintf("imageproc: invalid Params: ResizeShort %d, Crop %d", p.ResizeShort, p.Crop))
	}
	m := ToImage8(img, p.Gray)
	if m.Width == 0 || m.Height == 0 {
		panic("imageproc: Preprocess of an empty image")
	}
	if p.ResizeShort > 0 {
		w, h := ResizedShortSize(m.Width, m.Height, p.ResizeShort)
		m = m.ResizeFilter(w, h, p.Bicubic)
	}
	return CropNormalize(m, p)
}

// CenterCropOrigin returns the top-left corner of torchvision's
// CenterCrop(crop) window on a w×h image. Coordinates are negative when the
// image is smaller than the crop: torchvision then zero-pads it (left/top
// padding (crop-size)//2) before cropping.
func CenterCropOrigin(w, h, crop int) (left, top int) {
	f := func(size int) int {
		if crop > size {
			return -((crop - size) / 2)
		}
		// Python's round() rounds half to even.
		return int(math.RoundToEven(float64(size-crop) / 2.0))
	}
	return f(w), f(h)
}

// CropNormalize center-crops m to p.Crop (zero padding as torchvision does
// when m is smaller) and applies ToTensor + Normalize in float32, the same
// operations in the same order as torch ((v/255) - mean) / std.
func CropNormalize(m *Image8, p Params) *tensor.Tensor {
	nc := m.Channels
	c := p.Crop
	out := tensor.New(nc, c, c)
	var lut [3][256]float32
	for ch := 0; ch < nc; ch++ {
		mean, std := p.Mean[ch], p.Std[ch]
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			x = x - mean
			lut[ch][v] = x / std
		}
	}
	left, top := CenterCropOrigin(m.Width, m.Height, c)
	plane := c * c
	for y := 0; y < c; y++ {
		sy := top + y
		for x := 0; x < c; x++ {
			sx := left + x
			o := y*c + x
			if sy < 0 || sy >= m.Height || sx < 0 || sx >= m.Width {
				for ch := 0; ch < nc; ch++ {
					out.Data[ch*plane+o] = lut[ch][0]
				}
				continue
			}
			s := m.Pix[(sy*m.Width+sx)*nc:]
			for ch := 0; ch < nc; ch++ {
				out.Data[ch*plane+o] = lut[ch][s[ch]]
			}
		}
	}
	return out
}
