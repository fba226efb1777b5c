package detect

import (
	"image/color"
	"testing"

	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/imageproc"
)

// TestDraw: the box's edges take its class colour, its inside and the rest
// of the image keep theirs; boxes partly outside are clipped, boxes fully
// outside are skipped; the output has the image's size.
func TestDraw(t *testing.T) {
	img := &imageproc.Image8{Width: 60, Height: 40, Channels: 3, Pix: make([]uint8, 60*40*3)}
	for i := range img.Pix {
		img.Pix[i] = 50
	}
	dets := []Detection{{Box: Box{10, 20, 30, 35}, Score: 0.9, Label: 2}, {Box: Box{50, 30, 90, 80}, Score: 0.5, Label: 1},
		{Box: Box{100, 100, 120, 120}, Score: 0.4, Label: 1}}
	out := Draw(img, dets, []string{"bg", "a", "b"})
	if s := out.Bounds().Size(); s.X != 60 || s.Y != 40 {
		t.Fatalf("size %v", s)
	}
	pal := dense.VOCPalette()
	for _, c := range []struct {
		x, y int
		want color.Color
	}{
		{10, 30, pal[2]},                      // left edge of box 1
		{29, 30, pal[2]},                      // right edge
		{20, 30, color.RGBA{50, 50, 50, 255}}, // inside
		{5, 5, color.RGBA{50, 50, 50, 255}},   // outside every box
		{59, 39, pal[1]},                      // clipped box 2: its edge at the image's corner
	} {
		r, g, b, _ := out.At(c.x, c.y).RGBA()
		wr, wg, wb, _ := c.want.RGBA()
		if r != wr || g != wg || b != wb {
			t.Errorf("pixel (%d, %d) is %v, want %v", c.x, c.y, out.At(c.x, c.y), c.want)
		}
	}
}
