// Package canvas composes a synthetic dataset for semantic segmentation and
// object detection out of real Fashion-MNIST items: every canvas is a
// textured or noisy coloured background (smooth colour fields, gradients,
// stripes, checks, plus pixel noise) with a few grey or tinted items pasted
// at random scales and positions, later items occluding earlier ones. The
// masks are exact: an item covers exactly the pixels where its scaled grey
// image is above a threshold, and only those pixels are painted.
//
// Generate makes one canvas from a random stream; Build writes a whole
// dataset in Pascal VOC layout plus COCO detection JSON (see Build for the
// files). A canvas depends only on (seed, split, index), so a dataset is
// byte-for-byte reproducible whatever the number of workers.
package canvas

import (
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/imageproc"
)

// Options set how a canvas is composed. Zero fields take the defaults
// given in brackets.
type Options struct {
	Size               int     // canvas width and height in pixels [256]
	MinItems, MaxItems int     // items tried per canvas, uniform [2, 5]; MaxItems <= 254
	MinScale, MaxScale float64 // an item's side is 28×scale px, scale uniform [1.5, 4]; capped at Size
	Threshold          uint8   // an item covers its pixels whose scaled grey value is > Threshold [32]
	// MinVisible is the share of its own pixels every item keeps visible:
	// an item whose position would hide more of an earlier one is moved
	// (up to 20 tries) or left out [0.3]. Negative: no limit (items fully
	// hidden are still left out of the annotations).
	MinVisible float64
}

func (o Options) withDefaults() Options {
	if o.Size == 0 {
		o.Size = 256
	}
	if o.MinItems == 0 && o.MaxItems == 0 {
		o.MinItems, o.MaxItems = 2, 5
	}
	if o.MinScale == 0 && o.MaxScale == 0 {
		o.MinScale, o.MaxScale = 1.5, 4
	}
	if o.Threshold == 0 {
		o.Threshold = 32
	}
	if o.MinVisible == 0 {
		o.MinVisible = 0.3
	}
	return o
}

// Validate reports options that cannot make canvases.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Size < 16 || o.Size > 8192:
		return fmt.Errorf("canvas size %d out of range [16, 8192]", o.Size)
	case o.MinItems < 1 || o.MaxItems < o.MinItems || o.MaxItems > 254:
		return fmt.Errorf("items per canvas [%d, %d]: want 1 <= min <= max <= 254", o.MinItems, o.MaxItems)
	case !(o.MinScale > 0) || !(o.MaxScale >= o.MinScale) || o.MaxScale > 100:
		return fmt.Errorf("item scale [%g, %g]: want 0 < min <= max <= 100", o.MinScale, o.MaxScale)
	case o.MinVisible > 1:
		return fmt.Errorf("minimum visible share %g over 1", o.MinVisible)
	}
	return nil
}

// Item is one visible object of a canvas.
type Item struct {
	Class  int             // class index in Classes(): Fashion-MNIST label + 1
	Source int             // index of the Fashion-MNIST image in its split
	Box    image.Rectangle // bounding box of the visible pixels
	Area   int             // visible pixels
	Full   int             // pixels of the item before occlusion
}

// Canvas is one composed image with its annotations.
type Canvas struct {
	Image    *imageproc.Image8 // RGB, Size×Size
	Class    *dense.Mask       // class per pixel, 0 = background
	Instance *dense.Mask       // 0 = background, k = Items[k-1]
	Items    []Item            // in paint order, fully hidden items left out
}

// Classes returns the canvases' 11 class names: "background", then the ten
// Fashion-MNIST classes (class k+1 is Fashion-MNIST label k).
func Classes() []string {
	return append([]string{"background"}, data.FashionMNISTClasses...)
}

// Generate composes one canvas from items of src (28×28 grey images with
// labels 0..9, Fashion-MNIST) using the random stream r.
func Generate(src data.Dataset, o Options, r *data.RNG) (*Canvas, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if src.Len() == 0 {
		return nil, errors.New("canvas: empty source dataset")
	}
	o = o.withDefaults()
	n := o.Size
	c := &Canvas{Image: background(n, r), Class: dense.NewMask(n, n), Instance: dense.NewMask(n, n)}
	var visible, full []int // per painted item
	var lost []int
	count := o.MinItems + r.Intn(o.MaxItems-o.MinItems+1)
	for k := 0; k < count; k++ {
		j := r.Intn(src.Len())
		img, label, err := src.Get(j)
		if err != nil {
			return nil, err
		}
		if img.Channels != 1 {
			return nil, fmt.Errorf("canvas: source image %d has %d channels, want grey", j, img.Channels)
		}
		if label < 0 || label > 253 {
			return nil, fmt.Errorf("canvas: source label %d of image %d out of range", label, j)
		}
		scale := r.Uniform(o.MinScale, o.MaxScale)
		w := min(max(int(math.Round(float64(img.Width)*scale)), 1), n)
		h := min(max(int(math.Round(float64(img.Height)*scale)), 1), n)
		it := img.Resize(w, h)
		col := itemColour(r)
		area := 0
		for _, v := range it.Pix {
			if v > o.Threshold {
				area++
			}
		}
		// Try positions until every earlier item keeps enough of itself.
		placed := false
		var x0, y0 int
		for try := 0; try < 20 && area > 0; try++ {
			x0, y0 = r.Intn(n-w+1), r.Intn(n-h+1)
			if o.MinVisible < 0 || len(visible) == 0 {
				placed = true
				break
			}
			lost = append(lost[:0], make([]int, len(visible))...)
			for y := 0; y < h; y++ {
				row := c.Instance.Pix[(y0+y)*n+x0:]
				for x, v := range it.Pix[y*w : (y+1)*w] {
					if v > o.Threshold && row[x] != 0 {
						lost[row[x]-1]++
					}
				}
			}
			placed = true
			for e := range visible {
				if float64(visible[e]-lost[e]) < o.MinVisible*float64(full[e]) {
					placed = false
					break
				}
			}
			if placed {
				break
			}
		}
		if !placed {
			continue
		}
		id := uint8(len(visible) + 1)
		for y := 0; y < h; y++ {
			for x, v := range it.Pix[y*w : (y+1)*w] {
				if v <= o.Threshold {
					continue
				}
				p := (y0+y)*n + x0 + x
				if old := c.Instance.Pix[p]; old != 0 {
					visible[old-1]--
				}
				c.Instance.Pix[p] = id
				c.Class.Pix[p] = uint8(label + 1)
				base := 40 + float64(v)*(215.0/255)
				d := c.Image.Pix[3*p : 3*p+3 : 3*p+3]
				for ch := range 3 {
					d[ch] = uint8(math.Round(base * col[ch]))
				}
			}
		}
		visible = append(visible, area)
		full = append(full, area)
		c.Items = append(c.Items, Item{Class: label + 1, Source: j, Full: area})
	}
	c.annotate()
	return c, nil
}

// annotate computes the items' visible boxes and areas and drops fully
// hidden items, renumbering the instance map.
func (c *Canvas) annotate() {
	n := c.Instance.Width
	boxes := make([]image.Rectangle, len(c.Items))
	areas := make([]int, len(c.Items))
	for p, v := range c.Instance.Pix {
		if v == 0 {
			continue
		}
		x, y := p%n, p/n
		px := image.Rect(x, y, x+1, y+1)
		if areas[v-1] == 0 {
			boxes[v-1] = px
		} else {
			boxes[v-1] = boxes[v-1].Union(px)
		}
		areas[v-1]++
	}
	renum := make([]uint8, len(c.Items)+1)
	kept := c.Items[:0]
	for k, it := range c.Items {
		if areas[k] == 0 {
			continue
		}
		it.Box, it.Area = boxes[k], areas[k]
		kept = append(kept, it)
		renum[k+1] = uint8(len(kept))
	}
	if len(kept) != len(c.Items) {
		for p, v := range c.Instance.Pix {
			c.Instance.Pix[p] = renum[v]
		}
	}
	c.Items = kept
}

// itemColour returns the multiplier of an item's grey values: white (a
// grey item) half of the time, otherwise a random tint.
func itemColour(r *data.RNG) [3]float64 {
	if r.Bernoulli(0.5) {
		return [3]float64{1, 1, 1}
	}
	sat := r.Uniform(0.2, 0.6)
	hue := hueRGB(r.Float64())
	var c [3]float64
	for i := range c {
		c[i] = 1 - sat + sat*hue[i]
	}
	return c
}

// hueRGB returns the fully saturated colour of hue h in [0, 1), channels
// in [0, 1].
func hueRGB(h float64) [3]float64 {
	f := func(k float64) float64 {
		x := math.Mod(k+h*6, 6)
		return 1 - math.Max(0, math.Min(1, math.Min(x, 4-x)))
	}
	return [3]float64{f(5), f(3), f(1)}
}

func randColour(r *data.RNG) [3]float64 {
	return [3]float64{r.Uniform(0, 255), r.Uniform(0, 255), r.Uniform(0, 255)}
}

// background returns an n×n RGB texture: a smooth random colour field, a
// four-corner gradient, stripes or checks at a random angle, with a
// per-pixel noise of random amplitude on top.
func background(n int, r *data.RNG) *imageproc.Image8 {
	m := imageproc.NewImage8(n, n, 3)
	kind := r.Intn(4)
	var field func(x, y float64) [3]float64
	switch kind {
	case 0: // smooth colour field: a coarse grid of random colours, bilinear
		g := 2 + r.Intn(5)
		grid := make([][3]float64, (g+1)*(g+1))
		for i := range grid {
			grid[i] = randColour(r)
		}
		field = func(x, y float64) [3]float64 {
			gx, gy := x/float64(n)*float64(g), y/float64(n)*float64(g)
			ix, iy := min(int(gx), g-1), min(int(gy), g-1)
			fx, fy := gx-float64(ix), gy-float64(iy)
			// smoothstep for a softer field
			fx, fy = fx*fx*(3-2*fx), fy*fy*(3-2*fy)
			a, b := grid[iy*(g+1)+ix], grid[iy*(g+1)+ix+1]
			c, d := grid[(iy+1)*(g+1)+ix], grid[(iy+1)*(g+1)+ix+1]
			var out [3]float64
			for i := range out {
				out[i] = (a[i]*(1-fx)+b[i]*fx)*(1-fy) + (c[i]*(1-fx)+d[i]*fx)*fy
			}
			return out
		}
	case 1: // gradient between four corner colours
		c00, c10, c01, c11 := randColour(r), randColour(r), randColour(r), randColour(r)
		field = func(x, y float64) [3]float64 {
			fx, fy := x/float64(n), y/float64(n)
			var out [3]float64
			for i := range out {
				out[i] = (c00[i]*(1-fx)+c10[i]*fx)*(1-fy) + (c01[i]*(1-fx)+c11[i]*fx)*fy
			}
			return out
		}
	default: // stripes (2) or checks (3)
		a, b := randColour(r), randColour(r)
		theta := r.Uniform(0, math.Pi)
		period := r.Uniform(6, 40)
		ct, st := math.Cos(theta), math.Sin(theta)
		checks := kind == 3
		field = func(x, y float64) [3]float64 {
			u := (x*ct + y*st) / period
			k := int(math.Floor(u))
			if checks {
				k += int(math.Floor((-x*st + y*ct) / period))
			}
			if k&1 == 0 {
				return a
			}
			return b
		}
	}
	amp := r.Uniform(0, 24)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			v := field(float64(x)+0.5, float64(y)+0.5)
			d := m.Pix[3*(y*n+x) : 3*(y*n+x)+3 : 3*(y*n+x)+3]
			for i := range 3 {
				d[i] = clamp8(v[i] + amp*(2*r.Float64()-1))
			}
		}
	}
	return m
}

func clamp8(v float64) uint8 {
	v = math.Round(v)
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}
