// Command mkinput writes the request bodies of the serving benchmark
// (bench/serve/run.sh): input-SIZE.npy, a float32 tensor (1, 3, SIZE, SIZE)
// of seeded normal values for the logits endpoint, and image-ISIZE.jpg and
// .png, an ISIZE×ISIZE photo-like image (smooth gradients and noise) for the
// classify endpoint.
//
//	go run ./bench/serve/mkinput -o DIR [-size 224] [-image 256]
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/tensor"
)

func main() {
	dir := flag.String("o", ".", "output folder")
	size := flag.Int("size", 224, "height and width of the tensor")
	isize := flag.Int("image", 256, "height and width of the images")
	flag.Parse()
	if err := write(*dir, *size, *isize); err != nil {
		fmt.Fprintln(os.Stderr, "mkinput:", err)
		os.Exit(1)
	}
}

func write(dir string, size, isize int) error {
	r := rand.New(rand.NewPCG(1, 2))
	x := tensor.New(1, 3, size, size)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	if err := npy.WriteFile(filepath.Join(dir, fmt.Sprintf("input-%d.npy", size)), x); err != nil {
		return err
	}
	img := image.NewNRGBA(image.Rect(0, 0, isize, isize))
	for y := 0; y < isize; y++ {
		for xx := 0; xx < isize; xx++ {
			n := uint8(r.IntN(24))
			img.Set(xx, y, color.NRGBA{uint8(xx*200/isize) + n, uint8(y*180/isize) + n, uint8((xx+y)*100/isize) + n, 255})
		}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("image-%d.jpg", isize)))
	if err != nil {
		return err
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	g, err := os.Create(filepath.Join(dir, fmt.Sprintf("image-%d.png", isize)))
	if err != nil {
		return err
	}
	if err := png.Encode(g, img); err != nil {
		g.Close()
		return err
	}
	return g.Close()
}
