package dense

import (
	"math"
	"slices"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
)

func TestDataResizeNearest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		w, h   int
		pix    []uint8
		ow, oh int
		want   []uint8
	}{
		// Source x = floor((x+0.5)·2/4): 0, 0, 1, 1.
		{"up 2x", 2, 1, []uint8{1, 2}, 4, 1, []uint8{1, 1, 2, 2}},
		// floor((x+0.5)·4/2): 1, 3.
		{"down 2x", 4, 1, []uint8{1, 2, 3, 4}, 2, 1, []uint8{2, 4}},
		// floor((x+0.5)·3/2): 0, 2; rows floor((y+0.5)·2/3): 0, 1, 1.
		{"3x2 to 2x3", 3, 2, []uint8{1, 2, 3, 4, 5, 6}, 2, 3, []uint8{1, 3, 4, 6, 4, 6}},
		{"same size", 2, 1, []uint8{7, 8}, 2, 1, []uint8{7, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := (&Mask{Width: tc.w, Height: tc.h, Pix: tc.pix}).ResizeNearest(tc.ow, tc.oh)
			if got.Width != tc.ow || got.Height != tc.oh || !slices.Equal(got.Pix, tc.want) {
				t.Errorf("got %dx%d %v, want %v", got.Width, got.Height, got.Pix, tc.want)
			}
		})
	}
}

func TestDataMaskCropFlip(t *testing.T) {
	m := &Mask{Width: 3, Height: 2, Pix: []uint8{1, 2, 3, 4, 5, 6}}
	if got := m.FlipH().Pix; !slices.Equal(got, []uint8{3, 2, 1, 6, 5, 4}) {
		t.Errorf("flip: %v", got)
	}
	for _, tc := range []struct {
		name              string
		left, top, cw, ch int
		want              []uint8
	}{
		{"inside", 1, 0, 2, 2, []uint8{2, 3, 5, 6}},
		{"padded right and bottom", 1, 1, 3, 2, []uint8{5, 6, 255, 255, 255, 255}},
		{"padded left and top", -1, -1, 2, 2, []uint8{255, 255, 255, 1}},
		{"outside", 5, 5, 1, 1, []uint8{255}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Crop(tc.left, tc.top, tc.cw, tc.ch).Pix; !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	img := &imageproc.Image8{Width: 2, Height: 1, Channels: 3, Pix: []uint8{1, 2, 3, 4, 5, 6}}
	if got := CropImage(img, 1, 0, 2, 2, [3]uint8{7, 8, 9}).Pix; !slices.Equal(got, []uint8{4, 5, 6, 7, 8, 9, 7, 8, 9, 7, 8, 9}) {
		t.Errorf("image crop: %v", got)
	}
}

// classImage returns an image whose red channel is 20× the mask's class
// and whose green channel is 100, and the mask: class blocks of 4×4.
func classImage(w, h int) (*imageproc.Image8, *Mask) {
	img := imageproc.NewImage8(w, h, 3)
	m := NewMask(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := uint8((x/4 + 3*(y/4)) % 11)
			m.Pix[y*w+x] = c
			img.Pix[3*(y*w+x)], img.Pix[3*(y*w+x)+1] = 20*c, 100
		}
	}
	return img, m
}

func TestDataAugmentJoint(t *testing.T) {
	src, srcMask := classImage(20, 12)
	srcCopy := slices.Clone(srcMask.Pix)
	fill := [3]uint8{1, 2, 3}
	for _, tc := range []struct {
		name string
		a    Augment
		// exact: every pixel's colour follows its mask value; otherwise
		// only pixels whose 3×3 neighbourhood has one class (bilinear
		// resampling mixes colours at class borders).
		exact      bool
		minW, maxW int
	}{
		{"flip", Augment{Flip: 1}, true, 20, 20},
		{"crop smaller", Augment{Crop: 8, Flip: 0.5}, true, 8, 8},
		{"crop larger: padded", Augment{Crop: 24, Fill: fill}, true, 24, 24},
		{"scale", Augment{ScaleMin: 0.5, ScaleMax: 2}, false, 10, 40},
		{"all", Augment{ScaleMin: 0.5, ScaleMax: 2, Flip: 0.5, Crop: 16, Fill: fill}, false, 16, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.a.Validate(); err != nil {
				t.Fatal(err)
			}
			sawPad := false
			for seed := range uint64(12) {
				img, m := tc.a.Apply(src, srcMask, data.NewRNG(seed, 3))
				if img.Width != m.Width || img.Height != m.Height || img.Width < tc.minW || img.Width > tc.maxW {
					t.Fatalf("image %dx%d mask %dx%d", img.Width, img.Height, m.Width, m.Height)
				}
				again, againMask := tc.a.Apply(src, srcMask, data.NewRNG(seed, 3))
				if !slices.Equal(again.Pix, img.Pix) || !slices.Equal(againMask.Pix, m.Pix) {
					t.Fatal("same seed, different result")
				}
				w := m.Width
				for y := 0; y < m.Height; y++ {
					for x := 0; x < w; x++ {
						v := m.Pix[y*w+x]
						p := img.Pix[3*(y*w+x) : 3*(y*w+x)+3]
						if v == Ignore {
							sawPad = true
							if [3]uint8(p) != fill {
								t.Fatalf("seed %d (%d, %d): ignored pixel has colour %v, want the fill", seed, x, y, p)
							}
							continue
						}
						if !tc.exact && !uniform(m, x, y) {
							continue
						}
						if p[0] != 20*v || p[1] != 100 {
							t.Fatalf("seed %d (%d, %d): class %d but colour %v", seed, x, y, v, p)
						}
					}
				}
			}
			minH := 12.0 // the source's short side, times the smallest scale
			if tc.a.ScaleMin > 0 {
				minH *= tc.a.ScaleMin
			}
			if padded := tc.a.Crop > 0 && float64(tc.a.Crop) > minH; padded != sawPad {
				t.Errorf("padding seen: %v, expected: %v", sawPad, padded)
			}
		})
	}
	if !slices.Equal(srcMask.Pix, srcCopy) {
		t.Error("Apply modified its input mask")
	}
}

func uniform(m *Mask, x, y int) bool {
	v := m.Pix[y*m.Width+x]
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			xx, yy := x+dx, y+dy
			if xx < 0 || yy < 0 || xx >= m.Width || yy >= m.Height {
				return false // a crop edge: resampling may have mixed in pixels beyond it
			}
			if m.Pix[yy*m.Width+xx] != v {
				return false
			}
		}
	}
	return true
}

func TestDataAugmentFlipBoth(t *testing.T) {
	img := &imageproc.Image8{Width: 3, Height: 1, Channels: 3, Pix: []uint8{1, 1, 1, 2, 2, 2, 3, 3, 3}}
	m := &Mask{Width: 3, Height: 1, Pix: []uint8{1, 2, 3}}
	fi, fm := Augment{Flip: 1}.Apply(img, m, data.NewRNG(1, 1))
	if !slices.Equal(fi.Pix, []uint8{3, 3, 3, 2, 2, 2, 1, 1, 1}) || !slices.Equal(fm.Pix, []uint8{3, 2, 1}) {
		t.Errorf("flip: image %v mask %v", fi.Pix, fm.Pix)
	}
	ni, nm := Augment{}.Apply(img, m, data.NewRNG(1, 1))
	if !slices.Equal(ni.Pix, img.Pix) || !slices.Equal(nm.Pix, m.Pix) {
		t.Error("the zero Augment changed the sample")
	}
}

func TestDataAugmentValidate(t *testing.T) {
	for _, a := range []Augment{{ScaleMin: 2, ScaleMax: 1}, {ScaleMax: 2}, {ScaleMin: -1, ScaleMax: 1}, {Flip: 1.5}, {Crop: -1}, {ScaleMin: 1, ScaleMax: 100}} {
		if a.Validate() == nil {
			t.Errorf("%+v accepted", a)
		}
	}
}

func TestDataCHW(t *testing.T) {
	img := &imageproc.Image8{Width: 2, Height: 1, Channels: 3, Pix: []uint8{255, 0, 51, 0, 255, 102}}
	got := CHW(img, [3]float32{0.5, 0.5, 0.2}, [3]float32{0.5, 0.5, 0.1})
	// (v/255 - mean)/std, planes R, G, B.
	want := []float32{1, -1, -1, 1, 0, 2}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// TestFitPad: the long side becomes the size, the aspect is kept (rounded),
// the rest is fill; a mask cropped to (w, h) and resized maps back.
func TestFitPad(t *testing.T) {
	img := imageproc.NewImage8(100, 50, 3)
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	out, w, h := FitPad(img, 64, [3]uint8{1, 2, 3})
	if out.Width != 64 || out.Height != 64 || w != 64 || h != 32 {
		t.Fatalf("FitPad 100x50 to 64: %dx%d, part %dx%d", out.Width, out.Height, w, h)
	}
	if p := out.Pix[3*(31*64+63):][:3]; p[0] != 200 {
		t.Errorf("inside the image: %v", p)
	}
	if p := out.Pix[3*(32*64):][:3]; p[0] != 1 || p[1] != 2 || p[2] != 3 {
		t.Errorf("padding: %v, want the fill", p)
	}
	_, w, h = FitPad(imageproc.NewImage8(30, 61, 1), 64, [3]uint8{})
	if w != 31 || h != 64 {
		t.Errorf("FitPad 30x61 to 64: part %dx%d, want 31x64", w, h)
	}
}

// TestAugmentBase: with Base, the scale is relative to the image's long
// side resized to Base, whatever the image's size.
func TestAugmentBase(t *testing.T) {
	for _, size := range [][2]int{{200, 100}, {50, 80}} {
		img, m := imageproc.NewImage8(size[0], size[1], 3), NewMask(size[0], size[1])
		a := Augment{ScaleMin: 1, ScaleMax: 1, Base: 40}
		out, om := a.Apply(img, m, data.NewRNG(1, 2))
		if long := max(out.Width, out.Height); long != 40 || om.Width != out.Width || om.Height != out.Height {
			t.Errorf("%v: %dx%d (mask %dx%d), want the long side 40", size, out.Width, out.Height, om.Width, om.Height)
		}
	}
	if err := (Augment{Base: 40}).Validate(); err == nil {
		t.Error("Base without a scale range accepted")
	}
}
