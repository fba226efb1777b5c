package data

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/imageproc"
)

// RandomErasing is Random Erasing (Zhong et al. 2020; torchvision's
// RandomErasing with its parameter sampling) on 8-bit images: with
// probability P, a rectangle covering Scale of the image area with aspect
// ratio in Ratio (log-uniform) is filled with uniform random values (every
// channel of every pixel its own), the paper's "random" mode. Zero Scale
// and Ratio mean torchvision's (0.02, 0.33) and (0.3, 3.3). If no rectangle
// fits in 10 draws the image is left alone.
type RandomErasing struct {
	P            float64
	Scale, Ratio [2]float64
}

func (o RandomErasing) params() (scale, ratio [2]float64) {
	scale, ratio = o.Scale, o.Ratio
	if scale == [2]float64{} {
		scale = [2]float64{0.02, 0.33}
	}
	if ratio == [2]float64{} {
		ratio = [2]float64{0.3, 3.3}
	}
	return scale, ratio
}

func (o RandomErasing) String() string {
	s, r := o.params()
	return fmt.Sprintf("RandomErasing(%g, scale %g-%g, ratio %g-%g)", o.P, s[0], s[1], r[0], r[1])
}

// Apply returns m or an erased copy.
func (o RandomErasing) Apply(m *imageproc.Image8, r *RNG) *imageproc.Image8 {
	if !r.Bernoulli(o.P) {
		return m
	}
	scale, ratio := o.params()
	w, h, nc := m.Width, m.Height, m.Channels
	area := float64(w * h)
	lr0, lr1 := math.Log(ratio[0]), math.Log(ratio[1])
	for attempt := 0; attempt < 10; attempt++ {
		ea := area * r.Uniform(scale[0], scale[1])
		ar := math.Exp(r.Uniform(lr0, lr1))
		eh := int(math.Round(math.Sqrt(ea * ar)))
		ew := int(math.Round(math.Sqrt(ea / ar)))
		if eh < 1 || ew < 1 || eh >= h || ew >= w {
			continue
		}
		top, left := r.Intn(h-eh+1), r.Intn(w-ew+1)
		out := imageproc.NewImage8(w, h, nc)
		copy(out.Pix, m.Pix)
		for y := top; y < top+eh; y++ {
			row := out.Pix[(y*w+left)*nc : (y*w+left+ew)*nc]
			for i := range row {
				row[i] = uint8(r.Uint64())
			}
		}
		return out
	}
	return m
}
