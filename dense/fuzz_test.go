package dense

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/mobileone-go/mobileone/imageproc"
)

// FuzzDataMask: any bytes decode to a well-formed mask or an error, never
// a panic.
func FuzzDataMask(f *testing.F) {
	var b bytes.Buffer
	WriteMaskPNG(&b, &Mask{Width: 3, Height: 2, Pix: []uint8{0, 1, 255, 2, 2, 0}})
	f.Add(b.Bytes())
	b.Reset()
	png.Encode(&b, grey(2, 2, 0, 1, 2, 3))
	f.Add(b.Bytes())
	b.Reset()
	png.Encode(&b, rgb(2, 2))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		img, _, err := imageproc.Decode(bytes.NewReader(in), 1<<16)
		if err != nil {
			return
		}
		m, err := MaskFromImage(img)
		if err != nil {
			return
		}
		b := img.Bounds()
		if m.Width != b.Dx() || m.Height != b.Dy() || len(m.Pix) != m.Width*m.Height {
			t.Fatalf("mask %dx%d with %d pixels from a %v image", m.Width, m.Height, len(m.Pix), b)
		}
		m.Check(21)
	})
}
