package imageproc

import (
	"bytes"
	"image"
	"image/jpeg"
	"math/rand"
	"testing"
)

// photo returns a w×h YCbCr 4:2:0 image with smooth content and noise,
// like a decoded camera JPEG.
func photo(w, h int) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	r := rand.New(rand.NewSource(1))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Y[y*m.YStride+x] = uint8((x/7+y/5)%200 + r.Intn(50))
		}
	}
	for i := range m.Cb {
		m.Cb[i] = uint8(100 + r.Intn(56))
		m.Cr[i] = uint8(120 + r.Intn(20))
	}
	return m
}

// BenchmarkPreprocess4000x3000: a 12 MP decoded JPEG to (3, 224, 224).
func BenchmarkPreprocess4000x3000(b *testing.B) {
	img := photo(4000, 3000)
	p := ImageNetParams(248)
	b.ReportAllocs()
	for b.Loop() {
		Preprocess(img, p)
	}
}

// BenchmarkPreprocess4000x3000NRGBA: the same from an NRGBA (PNG) image.
func BenchmarkPreprocess4000x3000NRGBA(b *testing.B) {
	src := ToImage8(photo(4000, 3000), false).NRGBA()
	p := ImageNetParams(248)
	b.ReportAllocs()
	for b.Loop() {
		Preprocess(src, p)
	}
}

// BenchmarkDecodePreprocessJPEG4000x3000 includes Go's JPEG decoder.
func BenchmarkDecodePreprocessJPEG4000x3000(b *testing.B) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, photo(4000, 3000), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	p := ImageNetParams(248)
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		img, _, err := Decode(bytes.NewReader(buf.Bytes()), 0)
		if err != nil {
			b.Fatal(err)
		}
		Preprocess(img, p)
	}
}
