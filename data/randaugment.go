package data

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/mobileone-go/mobileone/imageproc"
)

// RandAugmentOps are the operations of torchvision's RandAugment, in its
// order (an op is drawn uniformly from this list, or from RandAugment.Ops).
var RandAugmentOps = []string{
	"Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
	"Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
}

// RandAugment is torchvision's RandAugment (Cubuk et al. 2020) on 8-bit
// images: N times, draw an op uniformly and apply it with the magnitude of
// bin M of Bins (torchvision's defaults: N 2, M 9, Bins 31), negated with
// probability 1/2 for signed ops. Magnitudes at bin M (of 30):
//
//	ShearX/Y     ±0.3·M/30 (shear factor, origin at the top-left)
//	TranslateX/Y ±(150/331)·M/30 of the width / height (whole pixels)
//	Rotate       ±30°·M/30 about the centre
//	Brightness, Color, Contrast, Sharpness: factor 1 ± 0.9·M/30 (PIL ImageEnhance)
//	Posterize    8 - round(M/7.5) bits
//	Solarize     threshold 255·(1 - M/30)
//	Identity, AutoContrast, Equalize: no magnitude
//
// Geometric ops use nearest-neighbour sampling like torchvision's default,
// or bilinear with Bilinear; uncovered pixels get Fill. The colour ops
// follow PIL's formulas (ImageEnhance blends, ImageOps.autocontrast and
// equalize); Color is the identity on grey images.
type RandAugment struct {
	N, M     int
	Bins     int      // 0: 31
	Ops      []string // subset of RandAugmentOps; nil: all
	Bilinear bool
	Fill     uint8
}

func (o RandAugment) String() string {
	s := fmt.Sprintf("RandAugment(n %d, m %d", o.N, o.M)
	if o.Ops != nil {
		s += fmt.Sprintf(", ops %v", o.Ops)
	}
	return s + ")"
}

func (o RandAugment) bins() int {
	if o.Bins == 0 {
		return 31
	}
	return o.Bins
}

func (o RandAugment) validate() error {
	if o.N < 0 || o.bins() < 2 || o.M < 0 || o.M >= o.bins() {
		return fmt.Errorf("need N >= 0 and 0 <= M < Bins (%d)", o.bins())
	}
	if o.Ops != nil && len(o.Ops) == 0 {
		return errors.New("empty op list")
	}
	for _, name := range o.Ops {
		if !slices.Contains(RandAugmentOps, name) {
			return fmt.Errorf("unknown op %q (known: %v)", name, RandAugmentOps)
		}
	}
	return nil
}

// Magnitude returns the magnitude of op name at bin m of bins, and whether
// it is signed (randomly negated).
func Magnitude(name string, m, bins int) (mag float64, signed bool) {
	f := float64(m) / float64(bins-1)
	switch name {
	case "ShearX", "ShearY":
		return 0.3 * f, true
	case "TranslateX", "TranslateY":
		return 150.0 / 331.0 * f, true // fraction of the image side
	case "Rotate":
		return 30 * f, true
	case "Brightness", "Color", "Contrast", "Sharpness":
		return 0.9 * f, true
	case "Posterize":
		return float64(8 - int(math.RoundToEven(float64(m)/(float64(bins-1)/4)))), false
	case "Solarize":
		return 255 * (1 - f), false
	}
	return 0, false
}

func (o RandAugment) Apply(m *imageproc.Image8, r *RNG) *imageproc.Image8 {
	ops := o.Ops
	if ops == nil {
		ops = RandAugmentOps
	}
	for range o.N {
		name := ops[r.Intn(len(ops))]
		mag, signed := Magnitude(name, o.M, o.bins())
		if signed && r.Intn(2) == 1 {
			mag = -mag
		}
		m = ApplyRandAugmentOp(m, name, mag, o.Bilinear, o.Fill)
	}
	return m
}

// ApplyRandAugmentOp applies one RandAugment op with an explicit magnitude
// (translations as a fraction of the image side). m is not modified.
func ApplyRandAugmentOp(m *imageproc.Image8, name string, mag float64, bilinear bool, fill uint8) *imageproc.Image8 {
	w, h := float64(m.Width), float64(m.Height)
	switch name {
	case "Identity":
		return m
	case "ShearX":
		return affine(m, [6]float64{1, mag, 0, 0, 1, 0}, bilinear, fill)
	case "ShearY":
		return affine(m, [6]float64{1, 0, 0, mag, 1, 0}, bilinear, fill)
	case "TranslateX":
		return affine(m, [6]float64{1, 0, -float64(int(mag * w)), 0, 1, 0}, bilinear, fill)
	case "TranslateY":
		return affine(m, [6]float64{1, 0, 0, 0, 1, -float64(int(mag * h))}, bilinear, fill)
	case "Rotate":
		// PIL's Image.rotate(mag): counter-clockwise about (w/2, h/2).
		a := -mag * math.Pi / 180
		c, s := math.Cos(a), math.Sin(a)
		cx, cy := w/2, h/2
		return affine(m, [6]float64{c, s, cx - c*cx - s*cy, -s, c, cy + s*cx - c*cy}, bilinear, fill)
	case "Brightness":
		return blend(nil, 0, m, float32(1+mag))
	case "Color":
		if m.Channels == 1 {
			return m
		}
		return blend(greyAsRGB(m), 0, m, float32(1+mag))
	case "Contrast":
		return blend(nil, meanGrey(m), m, float32(1+mag))
	case "Sharpness":
		return blend(smooth(m), 0, m, float32(1+mag))
	case "Posterize":
		mask := uint8(0xff) << (8 - int(mag))
		return mapLUT(m, func(_ int, v uint8) uint8 { return v & mask })
	case "Solarize":
		return mapLUT(m, func(_ int, v uint8) uint8 {
			if float64(v) >= mag {
				return 255 - v
			}
			return v
		})
	case "AutoContrast":
		return autoContrast(m)
	case "Equalize":
		return equalize(m)
	}
	panic("data: unknown RandAugment op " + name)
}

// affine samples m at M·(x+0.5, y+0.5) for every output pixel (x, y), M =
// [a b c; d e f] mapping output to input coordinates, as PIL's
// Image.transform(AFFINE) does.
func affine(m *imageproc.Image8, M [6]float64, bilinear bool, fill uint8) *imageproc.Image8 {
	w, h, nc := m.Width, m.Height, m.Channels
	out := imageproc.NewImage8(w, h, nc)
	at := func(x, y, c int) float64 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return float64(fill)
		}
		return float64(m.Pix[(y*w+x)*nc+c])
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			sx := M[0]*fx + M[1]*fy + M[2]
			sy := M[3]*fx + M[4]*fy + M[5]
			d := out.Pix[(y*w+x)*nc : (y*w+x+1)*nc]
			if !bilinear {
				if sx < 0 || sy < 0 || sx >= float64(w) || sy >= float64(h) {
					for c := range d {
						d[c] = fill
					}
					continue
				}
				copy(d, m.Pix[(int(sy)*w+int(sx))*nc:])
				continue
			}
			sx, sy = sx-0.5, sy-0.5
			if sx < -1 || sy < -1 || sx >= float64(w) || sy >= float64(h) {
				for c := range d {
					d[c] = fill
				}
				continue
			}
			x0, y0 := int(math.Floor(sx)), int(math.Floor(sy))
			dx, dy := sx-float64(x0), sy-float64(y0)
			for c := range d {
				top := at(x0, y0, c) + dx*(at(x0+1, y0, c)-at(x0, y0, c))
				bot := at(x0, y0+1, c) + dx*(at(x0+1, y0+1, c)-at(x0, y0+1, c))
				d[c] = clampRound(top + dy*(bot-top))
			}
		}
	}
	return out
}

func clampRound(v float64) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v + 0.5)
}

// blend is PIL's Image.blend(degenerate, m, alpha) for 8-bit images:
// degenerate + alpha*(m - degenerate) in float32, truncated and clipped. A
// nil degenerate is the solid value solid.
func blend(degenerate *imageproc.Image8, solid uint8, m *imageproc.Image8, alpha float32) *imageproc.Image8 {
	out := imageproc.NewImage8(m.Width, m.Height, m.Channels)
	for i, v := range m.Pix {
		d := solid
		if degenerate != nil {
			d = degenerate.Pix[i]
		}
		t := float32(d) + alpha*(float32(v)-float32(d))
		switch {
		case t <= 0:
			out.Pix[i] = 0
		case t >= 255:
			out.Pix[i] = 255
		default:
			out.Pix[i] = uint8(t)
		}
	}
	return out
}

// greyAsRGB is PIL's image.convert('L').convert('RGB').
func greyAsRGB(m *imageproc.Image8) *imageproc.Image8 {
	g := toGrey(m)
	out := imageproc.NewImage8(m.Width, m.Height, 3)
	for i, v := range g.Pix {
		out.Pix[3*i], out.Pix[3*i+1], out.Pix[3*i+2] = v, v, v
	}
	return out
}

// meanGrey is ImageEnhance.Contrast's int(mean(convert('L')) + 0.5).
func meanGrey(m *imageproc.Image8) uint8 {
	g := m
	if m.Channels == 3 {
		g = toGrey(m)
	}
	var sum uint64
	for _, v := range g.Pix {
		sum += uint64(v)
	}
	return uint8(float64(sum)/float64(len(g.Pix)) + 0.5)
}

// smooth is PIL's ImageFilter.SMOOTH (3×3 kernel [1 1 1; 1 5 1; 1 1 1]/13);
// the border pixels are copied unchanged, as PIL does.
func smooth(m *imageproc.Image8) *imageproc.Image8 {
	w, h, nc := m.Width, m.Height, m.Channels
	out := &imageproc.Image8{Width: w, Height: h, Channels: nc, Pix: append([]uint8(nil), m.Pix...)}
	if w < 3 || h < 3 {
		return out
	}
	stride := w * nc
	for y := 1; y < h-1; y++ {
		for i := nc; i < (w-1)*nc; i++ {
			o := y*stride + i
			s := int(m.Pix[o-stride-nc]) + int(m.Pix[o-stride]) + int(m.Pix[o-stride+nc]) +
				int(m.Pix[o-nc]) + 5*int(m.Pix[o]) + int(m.Pix[o+nc]) +
				int(m.Pix[o+stride-nc]) + int(m.Pix[o+stride]) + int(m.Pix[o+stride+nc])
			out.Pix[o] = uint8((s + 6) / 13)
		}
	}
	return out
}

// mapLUT applies a per-channel lookup table built from f(channel, value).
func mapLUT(m *imageproc.Image8, f func(c int, v uint8) uint8) *imageproc.Image8 {
	var lut [3][256]uint8
	for c := 0; c < m.Channels; c++ {
		for v := 0; v < 256; v++ {
			lut[c][v] = f(c, uint8(v))
		}
	}
	return applyLUT(m, &lut)
}

func applyLUT(m *imageproc.Image8, lut *[3][256]uint8) *imageproc.Image8 {
	out := imageproc.NewImage8(m.Width, m.Height, m.Channels)
	nc := m.Channels
	for i, v := range m.Pix {
		out.Pix[i] = lut[i%nc][v]
	}
	return out
}

func histograms(m *imageproc.Image8) (h [3][256]int) {
	nc := m.Channels
	for i, v := range m.Pix {
		h[i%nc][v]++
	}
	return h
}

// autoContrast is PIL's ImageOps.autocontrast(cutoff=0): per channel,
// stretch [min, max] to [0, 255].
func autoContrast(m *imageproc.Image8) *imageproc.Image8 {
	hist := histograms(m)
	var lut [3][256]uint8
	for c := 0; c < m.Channels; c++ {
		lo, hi := 0, 255
		for lo < 255 && hist[c][lo] == 0 {
			lo++
		}
		for hi > 0 && hist[c][hi] == 0 {
			hi--
		}
		for v := 0; v < 256; v++ {
			if hi <= lo {
				lut[c][v] = uint8(v)
				continue
			}
			scale := 255.0 / float64(hi-lo)
			x := int(float64(v)*scale - float64(lo)*scale)
			lut[c][v] = uint8(min(max(x, 0), 255))
		}
	}
	return applyLUT(m, &lut)
}

// equalize is PIL's ImageOps.equalize: per channel, map through the
// cumulative histogram, with step = (count - count of the last used
// value) / 255.
func equalize(m *imageproc.Image8) *imageproc.Image8 {
	hist := histograms(m)
	var lut [3][256]uint8
	for c := 0; c < m.Channels; c++ {
		last, total := 0, 0
		for _, n := range hist[c] {
			if n > 0 {
				last = n
				total += n
			}
		}
		step := (total - last) / 255
		n := step / 2
		for v := 0; v < 256; v++ {
			if step == 0 {
				lut[c][v] = uint8(v)
				continue
			}
			lut[c][v] = uint8(min(n/step, 255))
			n += hist[c][v]
		}
	}
	return applyLUT(m, &lut)
}
