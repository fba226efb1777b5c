package dense

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/fsutil"
)

// WriteMaskFile writes m as an indexed-colour PNG (WriteMaskPNG)
// atomically: nothing is left at path if writing fails.
func WriteMaskFile(path string, m *Mask) error {
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error { return WriteMaskPNG(w, m) })
}

// WritePNGFile encodes img as PNG at path, atomically.
func WritePNGFile(path string, img image.Image) error {
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// Share is one class's part of a mask.
type Share struct {
	Class  int     `json:"class"`
	Name   string  `json:"name"`
	Pixels int     `json:"pixels"`
	Share  float64 `json:"share"` // Pixels / all pixels of the mask
}

// Shares returns the classes present in m with their pixel counts and
// shares of the whole mask, by class index (Ignore last, named "ignore").
// A value with no name in classes is named "class N".
func Shares(m *Mask, classes []string) []Share {
	var counts [256]int
	for _, v := range m.Pix {
		counts[v]++
	}
	var out []Share
	for c, n := range counts {
		if n == 0 {
			continue
		}
		out = append(out, Share{Class: c, Name: className(c, classes), Pixels: n, Share: float64(n) / float64(len(m.Pix))})
	}
	return out
}

func className(c int, classes []string) string {
	switch {
	case c < len(classes):
		return classes[c]
	case c == Ignore:
		return "ignore"
	}
	return fmt.Sprintf("class %d", c)
}

// Overlay draws the image with the mask's VOC palette colours blended in
// (colour = (1−alpha)·image + alpha·palette[class] for every class but 0,
// the background, and Ignore, which stay as they are) and, to its right, a
// legend: a swatch and the name of every class present other than the
// background, in class order. The result is wider than the image by the
// legend's width and at least as tall as the legend. It panics if the
// mask's size differs from the image's.
func Overlay(img *imageproc.Image8, m *Mask, classes []string, alpha float64) *image.NRGBA {
	if img.Width != m.Width || img.Height != m.Height {
		panic(fmt.Sprintf("dense: overlay of a %dx%d mask on a %dx%d image", m.Width, m.Height, img.Width, img.Height))
	}
	pal := VOCPalette()
	var present []Share
	for _, s := range Shares(m, classes) {
		if s.Class != 0 && s.Class != Ignore {
			present = append(present, s)
		}
	}
	face := basicfont.Face7x13
	const (
		pad    = 6
		swatch = 12
		lineH  = 16
	)
	labels := make([]string, len(present))
	textW := 0
	for i, s := range present {
		labels[i] = fmt.Sprintf("%d %s %.1f%%", s.Class, s.Name, 100*s.Share)
		textW = max(textW, font.MeasureString(face, labels[i]).Ceil())
	}
	if len(present) == 0 {
		labels = []string{"no objects"}
		textW = font.MeasureString(face, labels[0]).Ceil()
	}
	legendW := pad + swatch + pad + textW + pad
	legendH := pad + lineH*len(labels) + pad
	w, h := img.Width+legendW, max(img.Height, legendH)
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	a := min(max(alpha, 0), 1)
	for y := 0; y < img.Height; y++ {
		for x := 0; x < img.Width; x++ {
			i := y*img.Width + x
			var rgb [3]uint8
			if img.Channels == 1 {
				rgb = [3]uint8{img.Pix[i], img.Pix[i], img.Pix[i]}
			} else {
				rgb = [3]uint8(img.Pix[3*i : 3*i+3])
			}
			if c := m.Pix[i]; c != 0 && c != Ignore {
				pc := pal[c].(color.RGBA)
				for k, p := range [3]uint8{pc.R, pc.G, pc.B} {
					rgb[k] = uint8((1-a)*float64(rgb[k]) + a*float64(p) + 0.5)
				}
			}
			o := out.PixOffset(x, y)
			out.Pix[o], out.Pix[o+1], out.Pix[o+2], out.Pix[o+3] = rgb[0], rgb[1], rgb[2], 255
		}
	}
	d := &font.Drawer{Dst: out, Src: image.NewUniform(color.Black), Face: face}
	for i, s := range labels {
		top := pad + i*lineH
		x0 := img.Width + pad
		if len(present) > 0 {
			sw := image.Rect(x0, top+(lineH-swatch)/2, x0+swatch, top+(lineH-swatch)/2+swatch)
			draw.Draw(out, sw, image.NewUniform(color.Black), image.Point{}, draw.Src)
			draw.Draw(out, sw.Inset(1), image.NewUniform(pal[present[i].Class]), image.Point{}, draw.Src)
		}
		d.Dot = fixed.P(x0+swatch+pad, top+lineH-4)
		d.DrawString(s)
	}
	return out
}
