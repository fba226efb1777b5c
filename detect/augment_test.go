package detect

import (
	"bytes"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
)

// testImage is a w×h RGB image whose pixel (x, y) is (x, y, 7).
func testImage(w, h int) *imageproc.Image8 {
	m := imageproc.NewImage8(w, h, 3)
	for y := range h {
		for x := range w {
			copy(m.Pix[(y*w+x)*3:], []uint8{uint8(x), uint8(y), 7})
		}
	}
	return m
}

func px(m *imageproc.Image8, x, y int) [3]uint8 {
	return [3]uint8(m.Pix[(y*m.Width+x)*3 : (y*m.Width+x)*3+3])
}

func obj(x1, y1, x2, y2 float32, label int) Object {
	return Object{Box: Box{x1, y1, x2, y2}, Label: label}
}

func TestBoxTransforms(t *testing.T) {
	img := testImage(40, 30)
	objs := []Object{obj(2, 3, 12, 9, 1), obj(30, 20, 40, 30, 2), obj(0, 0, 6, 4, 3)}

	f, fo := HFlip(img, objs)
	if fo[0].Box != (Box{28, 3, 38, 9}) || fo[1].Box != (Box{0, 20, 10, 30}) || px(f, 0, 5) != px(img, 39, 5) {
		t.Errorf("flip: %v, pixel %v", fo, px(f, 0, 5))
	}
	if objs[0].Box != (Box{2, 3, 12, 9}) {
		t.Error("flip changed its input")
	}

	// crop (5, 2) 20×15: object 0 centre (7, 6) inside, shifted; object 1 centre (35, 25) out;
	// object 2 centre (3, 2) out (left of the crop)
	c, co := Crop(img, objs, 5, 2, 20, 15)
	if c.Width != 20 || c.Height != 15 || len(co) != 1 || co[0].Box != (Box{0, 1, 7, 7}) || co[0].Label != 1 {
		t.Errorf("crop: %dx%d %v", c.Width, c.Height, co)
	}
	if px(c, 0, 0) != px(img, 5, 2) || px(c, 19, 14) != px(img, 24, 16) {
		t.Errorf("crop pixels %v %v", px(c, 0, 0), px(c, 19, 14))
	}
	// a box partly outside is clipped
	_, co = Crop(img, []Object{obj(10, 10, 30, 20, 1)}, 15, 6, 10, 10)
	if len(co) != 1 || co[0].Box != (Box{0, 4, 10, 10}) {
		t.Errorf("clipped crop: %v", co)
	}

	e, eo := Expand(img, objs, 80, 50, 10, 7, [3]uint8{123, 117, 104})
	if e.Width != 80 || e.Height != 50 || eo[0].Box != (Box{12, 10, 22, 16}) {
		t.Errorf("expand: %dx%d %v", e.Width, e.Height, eo)
	}
	if px(e, 0, 0) != [3]uint8{123, 117, 104} || px(e, 79, 49) != [3]uint8{123, 117, 104} || px(e, 10, 7) != px(img, 0, 0) || px(e, 49, 36) != px(img, 39, 29) {
		t.Errorf("expand pixels")
	}

	rz, ro := Resize(img, objs, 80, 15)
	if rz.Width != 80 || rz.Height != 15 || ro[0].Box != (Box{4, 1.5, 24, 4.5}) {
		t.Errorf("resize %v", ro)
	}
}

func inside(t *testing.T, what string, img *imageproc.Image8, objs []Object) {
	t.Helper()
	for _, o := range objs {
		b := o.Box
		if !b.Valid() || b[0] < 0 || b[1] < 0 || b[2] > float32(img.Width) || b[3] > float32(img.Height) {
			t.Errorf("%s: box %v outside the %dx%d image or empty", what, b, img.Width, img.Height)
		}
	}
}

func TestRandomAugmentations(t *testing.T) {
	img := testImage(60, 40)
	objs := []Object{obj(5, 5, 25, 30, 1), obj(30, 10, 55, 35, 2), obj(40, 2, 44, 6, 3)}
	crops, zooms := 0, 0
	for seed := range 60 {
		r := data.NewRNG(data.SampleSeed(1, 0, seed))
		c, co := IoUCrop(img, objs, r)
		inside(t, "iou crop", c, co)
		if c.Width != 60 || c.Height != 40 {
			crops++
			if len(co) == 0 {
				t.Errorf("seed %d: crop kept no object", seed)
			}
			// content moves with the box: the crop is a window of the image
			ox, oy := int(px(c, 0, 0)[0]), int(px(c, 0, 0)[1])
			for _, o := range co {
				for _, s := range objs {
					if s.Label == o.Label && (s.Box[0] >= float32(ox) && s.Box[0]-float32(ox) != o.Box[0]) {
						t.Errorf("seed %d: box %v moved to %v, crop at (%d, %d)", seed, s.Box, o.Box, ox, oy)
					}
				}
			}
		}
		z, zo := ZoomOut(img, objs, r, [3]uint8{1, 2, 3}, 4, 0.5)
		inside(t, "zoom out", z, zo)
		if z.Width != 60 {
			zooms++
			if z.Width < 60 || z.Height < 40 || z.Width > 240 || zo[0].Box.Width() != 20 {
				t.Errorf("zoom out %dx%d %v", z.Width, z.Height, zo)
			}
			if x, y := int(zo[1].Box[0]), int(zo[1].Box[1]); px(z, x, y) != px(img, 30, 10) {
				t.Errorf("zoom out: pixel under box %v is %v", zo[1].Box, px(z, x, y))
			}
		}
		a, ao := SSDRecipe([3]uint8{123, 117, 104}).Apply(img, objs, data.NewRNG(data.SampleSeed(2, 1, seed)))
		inside(t, "ssd recipe", a, ao)
		b, bo := SSDRecipe([3]uint8{123, 117, 104}).Apply(img, objs, data.NewRNG(data.SampleSeed(2, 1, seed)))
		if !bytes.Equal(a.Pix, b.Pix) || len(ao) != len(bo) {
			t.Fatalf("seed %d: the same seed gave different results", seed)
		}
	}
	if crops < 10 || crops > 58 || zooms < 15 || zooms > 45 {
		t.Errorf("%d crops and %d zoom-outs in 60 draws", crops, zooms)
	}
	// no objects: IoU crop leaves the sample alone
	if c, co := IoUCrop(img, nil, data.NewRNG(1, 2)); c != img || co != nil {
		t.Error("IoU crop of an image without objects")
	}
}

func TestPhotometricDistort(t *testing.T) {
	img := testImage(20, 10)
	if out := PhotometricDistort(img, data.NewRNG(3, 4), 0); !bytes.Equal(out.Pix, img.Pix) {
		t.Error("p = 0 changed the image")
	}
	changed := 0
	for seed := range 10 {
		a := PhotometricDistort(img, data.NewRNG(uint64(seed), 1), 1)
		b := PhotometricDistort(img, data.NewRNG(uint64(seed), 1), 1)
		if !bytes.Equal(a.Pix, b.Pix) || a.Width != 20 || a.Height != 10 {
			t.Fatal("not reproducible")
		}
		if !bytes.Equal(a.Pix, img.Pix) {
			changed++
		}
	}
	if changed != 10 {
		t.Errorf("p = 1 left %d of 10 images unchanged", 10-changed)
	}
	// HSV round trip is exact enough to keep a grey pixel grey and a colour its own
	for _, c := range [][3]float64{{0.2, 0.4, 0.6}, {1, 0, 0}, {0.5, 0.5, 0.5}, {0.9, 0.1, 0.8}} {
		h, s, v := rgbToHSV(c[0], c[1], c[2])
		r, g, b := hsvToRGB(h, s, v)
		if d := max(abs(r-c[0]), abs(g-c[1]), abs(b-c[2])); d > 1e-12 {
			t.Errorf("hsv round trip of %v: %v %v %v", c, r, g, b)
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
