package detect

import (
	"math"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
)

// The augmentations of torchvision's detection reference recipe
// (references/detection/transforms.py, v0.14) on an RGB image and its
// objects together: each returns a new image and new objects (boxes moved,
// clipped, objects dropped with the image), leaving its inputs unchanged.
// The random ones draw from a data.RNG, so a sample's augmentation is
// reproducible from (seed, epoch, index) with data.SampleSeed. Object.Area
// (COCO's annotation area, used only by Evaluate) is left as it was.

// Crop cuts the w×h region at (left, top) out of img as RandomIoUCrop does:
// objects whose box centre is not strictly inside the region are dropped,
// the others shifted and clipped to it.
func Crop(img *imageproc.Image8, objs []Object, left, top, w, h int) (*imageproc.Image8, []Object) {
	out := imageproc.NewImage8(w, h, img.Channels)
	c := img.Channels
	for y := range h {
		sy := top + y
		if sy < 0 || sy >= img.Height {
			continue
		}
		for x := range w {
			sx := left + x
			if sx < 0 || sx >= img.Width {
				continue
			}
			copy(out.Pix[(y*w+x)*c:(y*w+x+1)*c], img.Pix[(sy*img.Width+sx)*c:])
		}
	}
	l, t, r, b := float32(left), float32(top), float32(left+w), float32(top+h)
	var kept []Object
	for _, o := range objs {
		cx, cy := 0.5*(o.Box[0]+o.Box[2]), 0.5*(o.Box[1]+o.Box[3])
		if !(l < cx && cx < r && t < cy && cy < b) {
			continue
		}
		o.Box = Box{o.Box[0] - l, o.Box[1] - t, o.Box[2] - l, o.Box[3] - t}.Clip(float32(w), float32(h))
		kept = append(kept, o)
	}
	return out, kept
}

// IoUCrop is torchvision's RandomIoUCrop with its defaults: pick a minimum
// IoU from {0, 0.1, 0.3, 0.5, 0.7, 0.9, none}; for "none" return the input;
// else try up to 40 crops of each side uniform in [0.3, 1] of the image's,
// aspect ratio (new_w/new_h) in [0.5, 2], at a uniform position, keeping
// the first whose box-centred objects exist and one of which has IoU with
// the crop at least the minimum; when 40 tries fail, pick again (at most
// 1000 picks here, then the input is returned). An image without objects
// is returned unchanged (torchvision would loop forever).
func IoUCrop(img *imageproc.Image8, objs []Object, r *data.RNG) (*imageproc.Image8, []Object) {
	const minScale, maxScale, minAR, maxAR, trials = 0.3, 1.0, 0.5, 2.0, 40
	options := []float64{0, 0.1, 0.3, 0.5, 0.7, 0.9, 1}
	if len(objs) == 0 {
		return img, objs
	}
	W, H := img.Width, img.Height
	for range 1000 {
		minIoU := options[r.Intn(len(options))]
		if minIoU >= 1 {
			return img, objs
		}
		for range trials {
			nw := int(float64(W) * (minScale + (maxScale-minScale)*r.Float64()))
			nh := int(float64(H) * (minScale + (maxScale-minScale)*r.Float64()))
			if nh == 0 {
				continue
			}
			if ar := float64(nw) / float64(nh); ar < minAR || ar > maxAR {
				continue
			}
			left := int(float64(W-nw) * r.Float64())
			top := int(float64(H-nh) * r.Float64())
			if nw == 0 {
				continue
			}
			crop := Box{float32(left), float32(top), float32(left + nw), float32(top + nh)}
			best, any := float32(-1), false
			for _, o := range objs {
				cx, cy := 0.5*(o.Box[0]+o.Box[2]), 0.5*(o.Box[1]+o.Box[3])
				if crop[0] < cx && cx < crop[2] && crop[1] < cy && cy < crop[3] {
					any = true
					best = max(best, IoU(o.Box, crop))
				}
			}
			if !any || float64(best) < minIoU {
				continue
			}
			return Crop(img, objs, left, top, nw, nh)
		}
	}
	return img, objs
}

// Expand places img at (left, top) on a canvasW×canvasH canvas filled with
// fill (RandomZoomOut's padding) and shifts the boxes with it.
func Expand(img *imageproc.Image8, objs []Object, canvasW, canvasH, left, top int, fill [3]uint8) (*imageproc.Image8, []Object) {
	c := img.Channels
	out := imageproc.NewImage8(canvasW, canvasH, c)
	for i := 0; i < len(out.Pix); i += c {
		copy(out.Pix[i:i+c], fill[:c])
	}
	for y := range img.Height {
		copy(out.Pix[((top+y)*canvasW+left)*c:((top+y)*canvasW+left+img.Width)*c], img.Pix[y*img.Width*c:(y+1)*img.Width*c])
	}
	l, t := float32(left), float32(top)
	moved := make([]Object, len(objs))
	for i, o := range objs {
		o.Box = Box{o.Box[0] + l, o.Box[1] + t, o.Box[2] + l, o.Box[3] + t}
		moved[i] = o
	}
	return out, moved
}

// ZoomOut is torchvision's RandomZoomOut(fill, side_range (1, maxSide), p):
// with probability p, a canvas of each side int(side × r), r uniform in
// [1, maxSide] (4 in the recipe), with the image at a uniform position.
func ZoomOut(img *imageproc.Image8, objs []Object, r *data.RNG, fill [3]uint8, maxSide, p float64) (*imageproc.Image8, []Object) {
	if !(r.Float64() < p) {
		return img, objs
	}
	s := 1 + r.Float64()*(maxSide-1)
	cw, ch := int(float64(img.Width)*s), int(float64(img.Height)*s)
	left := int(float64(cw-img.Width) * r.Float64())
	top := int(float64(ch-img.Height) * r.Float64())
	return Expand(img, objs, cw, ch, left, top, fill)
}

// HFlip mirrors the image and its boxes left to right.
func HFlip(img *imageproc.Image8, objs []Object) (*imageproc.Image8, []Object) {
	w, c := img.Width, img.Channels
	out := imageproc.NewImage8(w, img.Height, c)
	for y := range img.Height {
		for x := range w {
			copy(out.Pix[(y*w+x)*c:(y*w+x+1)*c], img.Pix[(y*w+w-1-x)*c:])
		}
	}
	W := float32(w)
	f := make([]Object, len(objs))
	for i, o := range objs {
		o.Box = Box{W - o.Box[2], o.Box[1], W - o.Box[0], o.Box[3]}
		f[i] = o
	}
	return out, f
}

// PhotometricDistort is torchvision's RandomPhotometricDistort with its
// defaults (brightness [0.875, 1.125], contrast and saturation [0.5, 1.5],
// hue [-0.05, 0.05], each step with probability p, contrast before or after
// saturation and hue at random, then a random channel permutation with
// probability p). The adjustments are torchvision's tensor ops
// (adjust_brightness, _contrast, _saturation, _hue) on the image as floats
// in [0, 1], rounded back to uint8 once at the end (the reference applies
// them to a PIL image, rounding after each). Boxes are untouched, so only
// the image is returned.
func PhotometricDistort(img *imageproc.Image8, r *data.RNG, p float64) *imageproc.Image8 {
	if img.Channels != 3 {
		return img
	}
	var u [7]float64
	for i := range u {
		u[i] = r.Float64()
	}
	n := img.Width * img.Height
	f := make([]float64, n*3)
	for i, v := range img.Pix {
		f[i] = float64(v) / 255
	}
	if u[0] < p {
		adjustBrightness(f, r.Uniform(0.875, 1.125))
	}
	before := u[1] < 0.5
	if before && u[2] < p {
		adjustContrast(f, r.Uniform(0.5, 1.5))
	}
	if u[3] < p {
		adjustSaturation(f, r.Uniform(0.5, 1.5))
	}
	if u[4] < p {
		adjustHue(f, r.Uniform(-0.05, 0.05))
	}
	if !before && u[5] < p {
		adjustContrast(f, r.Uniform(0.5, 1.5))
	}
	perm := []int{0, 1, 2}
	if u[6] < p {
		r.Shuffle(perm)
	}
	out := imageproc.NewImage8(img.Width, img.Height, 3)
	for i := range n {
		for c := range 3 {
			out.Pix[i*3+c] = uint8(math.Round(f[i*3+perm[c]] * 255))
		}
	}
	return out
}

// The adjustments of torchvision's functional_tensor on a float RGB image
// in [0, 1], interleaved (H, W, 3).

func grey(f []float64, i int) float64 { return 0.2989*f[i*3] + 0.587*f[i*3+1] + 0.114*f[i*3+2] }

// blend is _blend: k a + (1 - k) b clamped to [0, 1].
func blend(a, b, k float64) float64 { return min(max(k*a+(1-k)*b, 0), 1) }

func adjustBrightness(f []float64, k float64) {
	for i := range f {
		f[i] = blend(f[i], 0, k)
	}
}

func adjustContrast(f []float64, k float64) {
	m := 0.0
	for i := range len(f) / 3 {
		m += grey(f, i)
	}
	m /= float64(len(f) / 3)
	for i := range f {
		f[i] = blend(f[i], m, k)
	}
}

func adjustSaturation(f []float64, k float64) {
	for i := range len(f) / 3 {
		g := grey(f, i)
		for c := range 3 {
			f[i*3+c] = blend(f[i*3+c], g, k)
		}
	}
}

func adjustHue(f []float64, h float64) {
	for i := range len(f) / 3 {
		hh, s, v := rgbToHSV(f[i*3], f[i*3+1], f[i*3+2])
		hh = math.Mod(hh+h+1, 1)
		f[i*3], f[i*3+1], f[i*3+2] = hsvToRGB(hh, s, v)
	}
}

func rgbToHSV(r, g, b float64) (h, s, v float64) {
	mx, mn := max(r, g, b), min(r, g, b)
	v = mx
	d := mx - mn
	if mx > 0 {
		s = d / mx
	}
	if d == 0 {
		return 0, s, v
	}
	switch mx {
	case r:
		h = math.Mod((g-b)/d, 6)
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	h /= 6
	if h < 0 {
		h++
	}
	return h, s, v
}

func hsvToRGB(h, s, v float64) (r, g, b float64) {
	h6 := h * 6
	i := math.Floor(h6)
	f := h6 - i
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	switch int(i) % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}

// Recipe is an augmentation recipe of torchvision's detection reference.
type Recipe struct {
	Photometric float64  // probability of each photometric step; 0: none
	ZoomOut     float64  // probability of zooming out; 0: never
	MaxZoom     float64  // zoom-out side range [1, MaxZoom] [4]
	Fill        [3]uint8 // zoom-out fill: the mean colour
	IoUCrop     bool
	Flip        float64 // probability of a horizontal flip
}

// SSDRecipe is the reference's "ssd" recipe: photometric distortion, zoom
// out (fill: the mean colour given), IoU crop, flip (p 0.5).
func SSDRecipe(fill [3]uint8) Recipe {
	return Recipe{Photometric: 0.5, ZoomOut: 0.5, MaxZoom: 4, Fill: fill, IoUCrop: true, Flip: 0.5}
}

// SSDLiteRecipe is the reference's "ssdlite" recipe: IoU crop, flip (p 0.5).
func SSDLiteRecipe() Recipe { return Recipe{IoUCrop: true, Flip: 0.5} }

// Apply runs the recipe's steps in the reference's order: photometric,
// zoom out, IoU crop, flip. Resizing to the network's input is left to
// the caller (SSD's transform resizes every image to its fixed size).
func (rc Recipe) Apply(img *imageproc.Image8, objs []Object, r *data.RNG) (*imageproc.Image8, []Object) {
	if rc.Photometric > 0 {
		img = PhotometricDistort(img, r, rc.Photometric)
	}
	if rc.ZoomOut > 0 {
		mz := rc.MaxZoom
		if mz == 0 {
			mz = 4
		}
		img, objs = ZoomOut(img, objs, r, rc.Fill, mz, rc.ZoomOut)
	}
	if rc.IoUCrop {
		img, objs = IoUCrop(img, objs, r)
	}
	if rc.Flip > 0 && r.Float64() < rc.Flip {
		img, objs = HFlip(img, objs)
	}
	return img, objs
}

// Resize scales the image to w×h (imageproc's antialiased bilinear) and
// the boxes with it, as SSD's transform does before the network.
func Resize(img *imageproc.Image8, objs []Object, w, h int) (*imageproc.Image8, []Object) {
	sx, sy := float32(w)/float32(img.Width), float32(h)/float32(img.Height)
	out := make([]Object, len(objs))
	for i, o := range objs {
		o.Box = Box{o.Box[0] * sx, o.Box[1] * sy, o.Box[2] * sx, o.Box[3] * sy}
		out[i] = o
	}
	return img.Resize(w, h), out
}
