package dense

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mobileone-go/mobileone/imageproc"
)

func TestDataShares(t *testing.T) {
	m := &Mask{Width: 4, Height: 2, Pix: []uint8{0, 0, 0, 2, 2, 255, 0, 7}}
	got := Shares(m, []string{"bg", "a", "b"})
	want := []Share{{0, "bg", 4, 0.5}, {2, "b", 2, 0.25}, {7, "class 7", 1, 0.125}, {255, "ignore", 1, 0.125}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func hasColour(img *image.NRGBA, r image.Rectangle, c color.RGBA) bool {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if o := img.PixOffset(x, y); img.Pix[o] == c.R && img.Pix[o+1] == c.G && img.Pix[o+2] == c.B {
				return true
			}
		}
	}
	return false
}

func TestDataOverlay(t *testing.T) {
	img := imageproc.NewImage8(40, 4, 3)
	for i := 0; i < 160; i++ {
		img.Pix[3*i], img.Pix[3*i+1], img.Pix[3*i+2] = 100, 50, 0
	}
	m := NewMask(40, 4)
	m.Pix[1], m.Pix[2], m.Pix[3] = 1, 15, Ignore
	out := Overlay(img, m, VOCClasses, 0.5)
	b := out.Bounds()
	if b.Dx() <= 40 || b.Dy() < 2*16 {
		t.Fatalf("overlay is %v: no room for a two-line legend", b)
	}
	for _, tc := range []struct {
		x    int
		want [3]uint8
	}{
		{0, [3]uint8{100, 50, 0}},  // background: unchanged
		{1, [3]uint8{114, 25, 0}},  // class 1 (128, 0, 0): halfway, rounded
		{2, [3]uint8{146, 89, 64}}, // class 15 (192, 128, 128)
		{3, [3]uint8{100, 50, 0}},  // ignore: unchanged
	} {
		o := out.PixOffset(tc.x, 0)
		if got := [3]uint8(out.Pix[o : o+3]); got != tc.want || out.Pix[o+3] != 255 {
			t.Errorf("pixel %d: %v, want %v", tc.x, out.Pix[o:o+4], tc.want)
		}
	}
	legend := image.Rect(40, 0, b.Dx(), b.Dy())
	pal := VOCPalette()
	for c, want := range map[int]bool{1: true, 15: true, 2: false, 255: false} {
		if got := hasColour(out, legend, pal[c].(color.RGBA)); got != want {
			t.Errorf("legend swatch of class %d: %v, want %v", c, got, want)
		}
	}
	if !hasColour(out, legend, color.RGBA{0, 0, 0, 255}) {
		t.Error("no text in the legend")
	}
	empty := Overlay(img, NewMask(40, 4), VOCClasses, 0.5)
	if !hasColour(empty, image.Rect(40, 0, empty.Bounds().Dx(), empty.Bounds().Dy()), color.RGBA{0, 0, 0, 255}) {
		t.Error("an empty mask's legend says nothing")
	}
}

func TestDataWriteMaskFile(t *testing.T) {
	dir := t.TempDir()
	m := &Mask{Width: 2, Height: 2, Pix: []uint8{0, 3, 255, 1}}
	p := filepath.Join(dir, "m.png")
	if err := WriteMaskFile(p, m); err != nil {
		t.Fatal(err)
	}
	back, err := ReadMaskFile(p)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("read back %v, %v", back, err)
	}
	bad := filepath.Join(dir, "bad.png")
	if err := WriteMaskFile(bad, &Mask{Width: 3, Height: 3, Pix: []uint8{1}}); err == nil {
		t.Fatal("malformed mask written")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left, want m.png only", len(entries))
	}
}
