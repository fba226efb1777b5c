package imageproc

import (
	"bytes"
	"math"
	"testing"
)

// FuzzDecodePreprocess feeds arbitrary bytes through Decode and, when they
// decode, through Preprocess (RGB and gray, with and without padding).
// Seeds: testdata/fuzz/FuzzDecodePreprocess (make_fuzz_seeds.py).
//
//	go test -run '^$' -fuzz FuzzDecodePreprocess -fuzztime 60s ./imageproc
func FuzzDecodePreprocess(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxPixels = 1 << 20
		img, format, err := Decode(bytes.NewReader(data), maxPixels)
		if err != nil {
			if img != nil {
				t.Fatalf("image and error %v", err)
			}
			return
		}
		b := img.Bounds()
		if b.Empty() || b.Dx()*b.Dy() > maxPixels || format == "" {
			t.Fatalf("%s image %v accepted", format, b)
		}
		for _, p := range []Params{
			{ResizeShort: 20, Crop: 16, Mean: ImageNetMean, Std: ImageNetStd},
			{ResizeShort: 9, Crop: 12, Mean: ImageNetMean, Std: ImageNetStd, Gray: true},
		} {
			x := Preprocess(img, p)
			nc := 3
			if p.Gray {
				nc = 1
			}
			if len(x.Shape) != 3 || x.Shape[0] != nc || x.Shape[1] != p.Crop || x.Shape[2] != p.Crop {
				t.Fatalf("shape %v", x.Shape)
			}
			for _, v := range x.Data {
				// (0-0.485)/0.229 .. (1-0.406)/0.225
				if math.IsNaN(float64(v)) || v < -2.2 || v > 2.7 {
					t.Fatalf("value %v out of range", v)
				}
			}
		}
	})
}
