package detect

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/imageproc"
)

// Draw returns img with every detection drawn: a 2-pixel rectangle in its
// class's colour (the Pascal VOC palette, as segmentation masks) and, on a
// filled band above the box (inside it when the box touches the top), the
// class name and the score. names[label] names a class ("class N" when
// names is short). Boxes are in pixels of img and clipped to it; the best
// detection is drawn last (on top).
func Draw(img *imageproc.Image8, dets []Detection, names []string) *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, img.Width, img.Height))
	for i := 0; i < img.Width*img.Height; i++ {
		var rgb [3]uint8
		if img.Channels == 1 {
			rgb = [3]uint8{img.Pix[i], img.Pix[i], img.Pix[i]}
		} else {
			rgb = [3]uint8(img.Pix[3*i : 3*i+3])
		}
		copy(out.Pix[4*i:], []uint8{rgb[0], rgb[1], rgb[2], 255})
	}
	pal := dense.VOCPalette()
	face := basicfont.Face7x13
	for i := len(dets) - 1; i >= 0; i-- {
		d := dets[i]
		c := pal[1+(d.Label-1)%(len(pal)-1)]
		if d.Label < 1 {
			c = pal[0]
		}
		r := image.Rect(int(d.Box[0]), int(d.Box[1]), int(d.Box[2]+0.5), int(d.Box[3]+0.5)).Intersect(out.Bounds())
		if r.Empty() {
			continue
		}
		u := image.NewUniform(c)
		for _, e := range []image.Rectangle{
			image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+2), image.Rect(r.Min.X, r.Max.Y-2, r.Max.X, r.Max.Y),
			image.Rect(r.Min.X, r.Min.Y, r.Min.X+2, r.Max.Y), image.Rect(r.Max.X-2, r.Min.Y, r.Max.X, r.Max.Y),
		} {
			draw.Draw(out, e.Intersect(r), u, image.Point{}, draw.Src)
		}
		name := fmt.Sprintf("class %d", d.Label)
		if d.Label >= 0 && d.Label < len(names) {
			name = names[d.Label]
		}
		label := fmt.Sprintf("%s %.2f", name, d.Score)
		tw := font.MeasureString(face, label).Ceil() + 4
		top := r.Min.Y - 14
		if top < 0 {
			top = r.Min.Y
		}
		band := image.Rect(r.Min.X, top, r.Min.X+tw, top+14).Intersect(out.Bounds())
		draw.Draw(out, band, u, image.Point{}, draw.Src)
		ink := color.Color(color.Black)
		if rc, ok := c.(color.RGBA); ok && int(rc.R)+int(rc.G)+int(rc.B) < 300 {
			ink = color.White
		}
		dr := &font.Drawer{Dst: out, Src: image.NewUniform(ink), Face: face, Dot: fixed.P(r.Min.X+2, top+11)}
		dr.DrawString(label)
	}
	return out
}
