package dense

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/imageproc"
)

func writeImage(t *testing.T, path string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	var err error
	if strings.HasSuffix(path, ".jpg") {
		err = jpeg.Encode(&b, img, nil)
	} else {
		err = png.Encode(&b, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeText(t *testing.T, path, s string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rgb(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		m.Pix[4*i], m.Pix[4*i+1], m.Pix[4*i+2], m.Pix[4*i+3] = uint8(i*7), uint8(i*3), 9, 255
	}
	return m
}

func paletted(w, h int, pix ...uint8) *image.Paletted {
	m := image.NewPaletted(image.Rect(0, 0, w, h), VOCPalette())
	copy(m.Pix, pix)
	return m
}

func grey(w, h int, pix ...uint8) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	copy(m.Pix, pix)
	return m
}

func TestDataVOCPalette(t *testing.T) {
	p := VOCPalette()
	// Colours from the VOC devkit's documentation.
	for i, want := range map[int]color.RGBA{
		0: {0, 0, 0, 255}, 1: {128, 0, 0, 255}, 2: {0, 128, 0, 255}, 3: {128, 128, 0, 255}, 4: {0, 0, 128, 255},
		8: {64, 0, 0, 255}, 15: {192, 128, 128, 255}, 20: {0, 64, 128, 255}, 255: {224, 224, 192, 255},
	} {
		if p[i] != want {
			t.Errorf("palette[%d] = %v, want %v", i, p[i], want)
		}
	}
}

func TestDataMaskPNGRoundTrip(t *testing.T) {
	m := &Mask{Width: 3, Height: 2, Pix: []uint8{0, 1, 2, 10, 255, 7}}
	var b bytes.Buffer
	if err := WriteMaskPNG(&b, m); err != nil {
		t.Fatal(err)
	}
	dec, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := dec.(*image.Paletted)
	if !ok {
		t.Fatalf("decoded %T, want *image.Paletted", dec)
	}
	if !slices.Equal(p.Pix, m.Pix) || p.Palette[1] != (color.RGBA{128, 0, 0, 255}) {
		t.Errorf("indices %v palette[1] %v", p.Pix, p.Palette[1])
	}
	if err := WriteMaskPNG(&b, &Mask{Width: 2, Height: 2, Pix: []uint8{1}}); err == nil {
		t.Error("malformed mask written")
	}
}

func TestDataMaskFromImage(t *testing.T) {
	pal := VOCPalette()
	vocRGB := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	vocRGB.Set(0, 0, pal[15])
	vocRGB.Set(1, 0, pal[255])
	other := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	other.Set(1, 0, color.NRGBA{1, 2, 3, 255})
	for _, tc := range []struct {
		name string
		img  image.Image
		want []uint8
		err  string
	}{
		{"palette", paletted(2, 2, 0, 3, 255, 1), []uint8{0, 3, 255, 1}, ""},
		{"palette with other colours", &image.Paletted{Pix: []uint8{1, 0}, Stride: 2, Rect: image.Rect(0, 0, 2, 1),
			Palette: color.Palette{color.Gray{7}, color.Gray{9}}}, []uint8{1, 0}, ""},
		{"grey", grey(3, 1, 0, 4, 255), []uint8{0, 4, 255}, ""},
		{"VOC-coloured RGB", vocRGB, []uint8{15, 255}, ""},
		{"other RGB", other, nil, "(1, 2, 3) at (1, 0)"},
		{"16-bit grey", image.NewGray16(image.Rect(0, 0, 1, 1)), nil, "Gray16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := MaskFromImage(tc.img)
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrMask) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want ErrMask with %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(m.Pix, tc.want) {
				t.Fatalf("got %v, %v; want %v", m, err, tc.want)
			}
		})
	}
}

// vocSet writes a 2-image VOC-layout dataset and returns its folder.
func vocSet(t *testing.T) string {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "JPEGImages", "2007_000001.jpg"), rgb(4, 3))
	writeImage(t, filepath.Join(dir, "JPEGImages", "2007_000002.png"), rgb(2, 2))
	writeImage(t, filepath.Join(dir, "SegmentationClass", "2007_000001.png"), paletted(4, 3, 0, 1, 1, 0, 255, 15, 15, 255, 0, 0, 20, 0))
	writeImage(t, filepath.Join(dir, "SegmentationClass", "2007_000002.png"), paletted(2, 2, 3, 3, 0, 0))
	writeText(t, filepath.Join(dir, "ImageSets", "Segmentation", "train.txt"), "2007_000001\n\n2007_000002\n")
	writeText(t, filepath.Join(dir, "ImageSets", "Segmentation", "val.txt"), "2007_000002\n")
	return dir
}

// folderSet writes a 2-image images/ + masks/ dataset with 4 classes.
func folderSet(t *testing.T) string {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "images", "b.jpg"), rgb(3, 2))
	writeImage(t, filepath.Join(dir, "images", "a.png"), rgb(2, 1))
	writeImage(t, filepath.Join(dir, "masks", "a.png"), grey(2, 1, 3, 255))
	writeImage(t, filepath.Join(dir, "masks", "b.png"), paletted(3, 2, 0, 1, 2, 3, 2, 1))
	writeText(t, filepath.Join(dir, "labels.txt"), "background\ncat\n\ndog\n  bird \n")
	return dir
}

func TestDataOpen(t *testing.T) {
	voc := vocSet(t)
	folder := folderSet(t)
	splitDir := t.TempDir()
	os.CopyFS(filepath.Join(splitDir, "val"), os.DirFS(folder))
	os.Rename(filepath.Join(splitDir, "val", "labels.txt"), filepath.Join(splitDir, "labels.txt"))
	for _, tc := range []struct {
		name, dir, split string
		opts             Options
		names            []string
		classes          []string
		sizes            [][2]int
		mask0            []uint8
	}{
		{"VOC train", voc, "train", Options{}, []string{"2007_000001", "2007_000002"}, VOCClasses, [][2]int{{4, 3}, {2, 2}},
			[]uint8{0, 1, 1, 0, 255, 15, 15, 255, 0, 0, 20, 0}},
		{"VOC val, given classes", voc, "val", Options{Classes: []string{"a", "b", "c", "d"}}, []string{"2007_000002"}, []string{"a", "b", "c", "d"},
			[][2]int{{2, 2}}, []uint8{3, 3, 0, 0}},
		{"folder", folder, "", Options{}, []string{"a", "b"}, []string{"background", "cat", "dog", "bird"}, [][2]int{{2, 1}, {3, 2}}, []uint8{3, 255}},
		{"folder, split asked but absent", folder, "train", Options{}, []string{"a", "b"}, nil, [][2]int{{2, 1}, {3, 2}}, []uint8{3, 255}},
		{"split folder, parent labels", splitDir, "val", Options{}, []string{"a", "b"}, []string{"background", "cat", "dog", "bird"}, [][2]int{{2, 1}, {3, 2}}, []uint8{3, 255}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Open(tc.dir, tc.split, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if ds.Len() != len(tc.names) || !slices.Equal(ds.Names, tc.names) || (tc.classes != nil && !slices.Equal(ds.Classes(), tc.classes)) {
				t.Fatalf("names %v classes %v", ds.Names, ds.Classes())
			}
			for i := range ds.Len() {
				img, m, err := ds.Get(i)
				if err != nil {
					t.Fatal(err)
				}
				if img.Channels != 3 || img.Width != tc.sizes[i][0] || img.Height != tc.sizes[i][1] || m.Width != img.Width || m.Height != img.Height {
					t.Errorf("sample %d: image %dx%dx%d mask %dx%d", i, img.Width, img.Height, img.Channels, m.Width, m.Height)
				}
				if i == 0 && !slices.Equal(m.Pix, tc.mask0) {
					t.Errorf("mask 0: %v, want %v", m.Pix, tc.mask0)
				}
			}
		})
	}
}

func TestDataOpenBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string) // damages a good dataset
		voc    bool
		split  string
		is     error
		want   []string // substrings of the error: the file, what is wrong
	}{
		{"VOC missing list", func(t *testing.T, d string) {}, true, "test", os.ErrNotExist, []string{"test.txt"}},
		{"VOC missing image", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "JPEGImages", "2007_000002.png")) }, true, "train", nil,
			[]string{"train.txt", "2007_000002", "no image"}},
		{"VOC missing mask", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "SegmentationClass", "2007_000001.png")) }, true, "train", os.ErrNotExist,
			[]string{filepath.Join("SegmentationClass", "2007_000001.png")}},
		{"VOC size mismatch", func(t *testing.T, d string) {
			writeImage(t, filepath.Join(d, "SegmentationClass", "2007_000002.png"), paletted(3, 2))
		}, true, "train", ErrSize, []string{"2007_000002.png", "3x2", "2x2"}},
		{"VOC index out of range", func(t *testing.T, d string) {
			writeImage(t, filepath.Join(d, "SegmentationClass", "2007_000002.png"), paletted(2, 2, 0, 21, 0, 0))
		}, true, "train", ErrMask, []string{"2007_000002.png", "class index 21 at (1, 0)"}},
		{"VOC corrupt mask header", func(t *testing.T, d string) {
			writeText(t, filepath.Join(d, "SegmentationClass", "2007_000001.png"), "not a png at all")
		}, true, "val", nil, []string{}}, // val does not use it: no error
		{"VOC corrupt mask", func(t *testing.T, d string) {
			writeText(t, filepath.Join(d, "SegmentationClass", "2007_000002.png"), "\x89PNG\r\n\x1a\nrubbish")
		}, true, "val", nil, []string{"2007_000002.png"}},
		{"VOC truncated mask", func(t *testing.T, d string) {
			p := filepath.Join(d, "SegmentationClass", "2007_000001.png")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-20], 0o644)
		}, true, "train", nil, []string{"2007_000001.png", "truncated"}},
		{"VOC corrupt image", func(t *testing.T, d string) {
			writeText(t, filepath.Join(d, "JPEGImages", "2007_000001.jpg"), "JFIF? no")
		}, true, "train", imageproc.ErrNotImage, []string{"2007_000001.jpg"}},
		{"folder image without mask", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "masks", "b.png")) }, false, "", nil,
			[]string{"b.jpg", filepath.Join("masks", "b.png")}},
		{"folder mask without image", func(t *testing.T, d string) { writeImage(t, filepath.Join(d, "masks", "c.png"), grey(1, 1)) }, false, "", nil,
			[]string{"c.png", "no image"}},
		{"folder size mismatch", func(t *testing.T, d string) { writeImage(t, filepath.Join(d, "masks", "a.png"), grey(1, 2)) }, false, "", ErrSize,
			[]string{filepath.Join("masks", "a.png"), "1x2"}},
		{"folder index 4 of 4 classes", func(t *testing.T, d string) { writeImage(t, filepath.Join(d, "masks", "a.png"), grey(2, 1, 4, 0)) }, false, "", ErrMask,
			[]string{filepath.Join("masks", "a.png"), "class index 4"}},
		{"folder without labels", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "labels.txt")) }, false, "", nil,
			[]string{"labels.txt"}},
		{"folder two images one stem", func(t *testing.T, d string) { writeImage(t, filepath.Join(d, "images", "a.jpg"), rgb(2, 1)) }, false, "", nil,
			[]string{"a.jpg", "a.png", "same stem"}},
		{"not a dataset", func(t *testing.T, d string) { os.RemoveAll(filepath.Join(d, "images")) }, false, "", nil,
			[]string{"not a segmentation dataset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dir string
			if tc.voc {
				dir = vocSet(t)
			} else {
				dir = folderSet(t)
			}
			tc.break_(t, dir)
			err := openAll(dir, tc.split)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// openAll opens a dataset and reads every sample.
func openAll(dir, split string) error {
	ds, err := Open(dir, split, Options{})
	if err != nil {
		return err
	}
	for i := range ds.Len() {
		if _, _, err := ds.Get(i); err != nil {
			return err
		}
	}
	return nil
}

func TestDataOpenMaxPixels(t *testing.T) {
	ds, err := Open(folderSet(t), "", Options{MaxPixels: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ds.Get(0); err != nil { // a: 2x1
		t.Fatal(err)
	}
	_, _, err = ds.Get(1) // b: 3x2 = 6 pixels
	if !errors.Is(err, imageproc.ErrTooLarge) || !strings.Contains(err.Error(), "b.jpg") {
		t.Errorf("error %v, want ErrTooLarge naming b.jpg", err)
	}
}
