package canvas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/imageproc"
)

// squares is a source of 28×28 grey images: image i is a filled square of
// grey 200 (side 10+i) on black, label i%10.
func squares(t testing.TB, n int) data.Dataset {
	t.Helper()
	imgs := make([]*imageproc.Image8, n)
	labels := make([]int, n)
	for i := range imgs {
		m := imageproc.NewImage8(28, 28, 1)
		s := 10 + i%16
		for y := 2; y < 2+s; y++ {
			for x := 2; x < 2+s; x++ {
				m.Pix[y*28+x] = 200
			}
		}
		imgs[i], labels[i] = m, i%10
	}
	ds, err := data.NewMemory(imgs, labels, data.FashionMNISTClasses)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestCanvasGenerate(t *testing.T) {
	src := squares(t, 30)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"defaults", Options{}},
		{"small crowded", Options{Size: 64, MinItems: 6, MaxItems: 8, MinScale: 1, MaxScale: 3}},
		{"no visibility limit", Options{Size: 96, MinItems: 8, MaxItems: 8, MinVisible: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o.withDefaults()
			for seed := range uint64(8) {
				c, err := Generate(src, tc.o, data.NewRNG(seed, 7))
				if err != nil {
					t.Fatal(err)
				}
				n := o.Size
				if c.Image.Width != n || c.Image.Height != n || c.Image.Channels != 3 || c.Class.Width != n || c.Instance.Height != n {
					t.Fatalf("sizes: image %dx%dx%d, masks %dx%d", c.Image.Width, c.Image.Height, c.Image.Channels, c.Class.Width, c.Instance.Height)
				}
				if len(c.Items) == 0 || len(c.Items) > o.MaxItems {
					t.Fatalf("%d items", len(c.Items))
				}
				areas := make([]int, len(c.Items))
				boxes := make([]image.Rectangle, len(c.Items))
				for p, id := range c.Instance.Pix {
					cl := c.Class.Pix[p]
					if id == 0 {
						if cl != 0 {
							t.Fatalf("pixel %d: class %d without an instance", p, cl)
						}
						continue
					}
					if int(id) > len(c.Items) {
						t.Fatalf("pixel %d: instance %d of %d", p, id, len(c.Items))
					}
					if int(cl) != c.Items[id-1].Class {
						t.Fatalf("pixel %d: class %d, its instance's class %d", p, cl, c.Items[id-1].Class)
					}
					areas[id-1]++
					boxes[id-1] = boxes[id-1].Union(image.Rect(p%n, p/n, p%n+1, p/n+1))
				}
				for k, it := range c.Items {
					if it.Area != areas[k] || it.Box != boxes[k] || it.Area == 0 {
						t.Errorf("item %d: area %d box %v, the instance map says %d %v", k, it.Area, it.Box, areas[k], boxes[k])
					}
					if it.Class < 1 || it.Class > 10 || it.Class != it.Source%10+1 {
						t.Errorf("item %d: class %d of source %d", k, it.Class, it.Source)
					}
					if o.MinVisible > 0 && float64(it.Area) < o.MinVisible*float64(it.Full) {
						t.Errorf("item %d: %d of %d pixels visible, under %g", k, it.Area, it.Full, o.MinVisible)
					}
					// A square source scales to a near-square item.
					if d := it.Box.Dx() - it.Box.Dy(); o.MinVisible > 0 && it.Area == it.Full && (d < -1 || d > 1) {
						t.Errorf("item %d: unoccluded square has box %v", k, it.Box)
					}
				}
			}
		})
	}
}

func TestCanvasReproducible(t *testing.T) {
	src := squares(t, 30)
	a, _ := Generate(src, Options{Size: 64}, data.NewRNG(1, 2))
	b, _ := Generate(src, Options{Size: 64}, data.NewRNG(1, 2))
	c, _ := Generate(src, Options{Size: 64}, data.NewRNG(1, 3))
	if !reflect.DeepEqual(a, b) {
		t.Error("same stream, different canvases")
	}
	if bytes.Equal(a.Image.Pix, c.Image.Pix) {
		t.Error("different streams, same image")
	}
}

func TestCanvasOptionsRefused(t *testing.T) {
	src := squares(t, 3)
	for _, o := range []Options{
		{Size: 8}, {MinItems: 3, MaxItems: 2}, {MaxItems: 255, MinItems: 1}, {MinScale: -1, MaxScale: 2}, {MinScale: 3, MaxScale: 2}, {MinVisible: 1.5},
	} {
		if _, err := Generate(src, o, data.NewRNG(1, 1)); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestCanvasEncodeRLE(t *testing.T) {
	for _, tc := range []struct {
		name string
		w, h int
		pix  []uint8
		v    uint8
		want []int
	}{
		// Column-major: columns (0,0), (1,0), (1,1) -> 0 0 1 0 1 1.
		{"starts off", 3, 2, []uint8{0, 1, 1, 0, 0, 1}, 1, []int{2, 1, 1, 2}},
		// The first run counts zeros, so a mask starting on is 0, ...
		{"starts on", 2, 2, []uint8{5, 0, 5, 5}, 5, []int{0, 2, 1, 1}},
		{"empty", 2, 3, make([]uint8, 6), 1, []int{6}},
		{"other values are off", 2, 1, []uint8{2, 1}, 1, []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := EncodeRLE(&dense.Mask{Width: tc.w, Height: tc.h, Pix: tc.pix}, tc.v)
			if !slices.Equal(r.Counts, tc.want) || r.Size != [2]int{tc.h, tc.w} {
				t.Errorf("got %v size %v, want %v size [%d %d]", r.Counts, r.Size, tc.want, tc.h, tc.w)
			}
		})
	}
}

// failing is a source whose images after the first few cannot be read.
type failing struct{ data.Dataset }

func (f failing) Get(i int) (*imageproc.Image8, int, error) {
	return nil, 0, errors.New("item.png: corrupt")
}

func TestCanvasBuild(t *testing.T) {
	train, val := squares(t, 40), squares(t, 12)
	root := t.TempDir()
	dir := filepath.Join(root, "set")
	cfg := Config{Options: Options{Size: 48, MaxItems: 3, MinItems: 1, MinScale: 0.8, MaxScale: 1.6}, Train: 5, Val: 3, Seed: 9}
	calls := 0
	if err := Build(context.Background(), dir, train, val, cfg, func(done, total int) {
		calls++
		if done != calls || total != 8 {
			t.Errorf("progress(%d, %d) at call %d", done, total, calls)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if calls != 8 {
		t.Errorf("%d progress calls", calls)
	}
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := string(read("labels.txt")); got != strings.Join(Classes(), "\n")+"\n" || !strings.HasPrefix(got, "background\nT-shirt/top\n") {
		t.Errorf("labels.txt: %q", got)
	}
	if got := string(read("ImageSets/Segmentation/val.txt")); got != "val_000000\nval_000001\nval_000002\n" {
		t.Errorf("val.txt: %q", got)
	}
	if got := strings.Count(string(read("ImageSets/Segmentation/trainval.txt")), "\n"); got != 8 {
		t.Errorf("trainval.txt: %d lines", got)
	}
	var coco COCO
	if err := json.Unmarshal(read("annotations/instances_train.json"), &coco); err != nil {
		t.Fatal(err)
	}
	if len(coco.Images) != 5 || len(coco.Categories) != 10 || coco.Categories[0] != (COCOCategory{1, "T-shirt/top", "fashion"}) || coco.Categories[9].ID != 10 {
		t.Fatalf("images %v categories %v", coco.Images, coco.Categories)
	}
	// Every annotation agrees with the instance and class PNGs.
	byImage := map[int][]COCOAnnotation{}
	for k, a := range coco.Annotations {
		if a.ID != k+1 || a.IsCrowd != 0 {
			t.Errorf("annotation %d: id %d iscrowd %d", k, a.ID, a.IsCrowd)
		}
		byImage[a.ImageID] = append(byImage[a.ImageID], a)
	}
	for _, im := range coco.Images {
		name := strings.TrimSuffix(im.FileName, ".png")
		f, err := os.Open(filepath.Join(dir, "SegmentationObject", name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		dec, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := dec.(*image.Paletted); !ok {
			t.Errorf("%s: instance PNG decodes as %T, want paletted", name, dec)
		}
		inst, _ := dense.MaskFromImage(dec)
		cls, err := dense.ReadMaskFile(filepath.Join(dir, "SegmentationClass", name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := imageproc.DecodeFile(filepath.Join(dir, "JPEGImages", im.FileName), 0); err != nil {
			t.Fatal(err)
		}
		anns := byImage[im.ID]
		if len(anns) == 0 {
			t.Errorf("%s: no annotations", name)
		}
		for k, a := range anns {
			rle := EncodeRLE(inst, uint8(k+1))
			if !reflect.DeepEqual(rle, a.Segmentation) {
				t.Errorf("%s: annotation %d's RLE differs from instance %d of the PNG", name, a.ID, k+1)
			}
			x, y := int(a.Bbox[0]), int(a.Bbox[1])
			if got := cls.Pix[y*cls.Width:][:cls.Width]; !slices.Contains(got, uint8(a.CategoryID)) {
				t.Errorf("%s: class %d not on the top row %d of its box", name, a.CategoryID, y)
			}
			_ = x
			area := 0
			for p, v := range inst.Pix {
				if v == uint8(k+1) {
					area++
					if int(cls.Pix[p]) != a.CategoryID {
						t.Fatalf("%s: instance %d pixel of class %d, category %d", name, k+1, cls.Pix[p], a.CategoryID)
					}
				}
			}
			if float64(area) != a.Area {
				t.Errorf("%s: area %g, %d pixels", name, a.Area, area)
			}
		}
	}
	// The segmentation reader takes the folder as it is.
	ds, err := dense.Open(dir, "val", dense.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 3 || !slices.Equal(ds.Classes(), Classes()) || ds.Name(2) != "val_000002" {
		t.Fatalf("read back %d samples, classes %v", ds.Len(), ds.Classes())
	}
	for i := range ds.Len() {
		if img, m, err := ds.Get(i); err != nil || img.Width != 48 || m.Height != 48 {
			t.Fatalf("sample %d: %v", i, err)
		}
	}
	// Same config, other folder and one worker: byte-identical files.
	dir2 := filepath.Join(root, "again")
	cfg.Workers = 1
	if err := Build(context.Background(), dir2, train, val, cfg, nil); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b2, err := os.ReadFile(filepath.Join(dir2, rel))
		if err != nil || !bytes.Equal(b2, read(rel)) {
			t.Errorf("%s differs between runs (%v)", rel, err)
		}
		return nil
	})
}

func TestCanvasBuildRefused(t *testing.T) {
	train := squares(t, 10)
	root := t.TempDir()
	full := filepath.Join(root, "full")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644)
	ok := Config{Options: Options{Size: 32}, Train: 3, Val: 2}
	for _, tc := range []struct {
		name, dir   string
		train, val  data.Dataset
		cfg         Config
		errContains string
		cancel      bool
	}{
		{"non-empty folder", full, train, train, ok, "not empty", false},
		{"failing source", filepath.Join(root, "a"), train, failing{train}, ok, "item.png", false},
		{"no canvases", filepath.Join(root, "b"), train, train, Config{}, "at least one", false},
		{"bad format", filepath.Join(root, "c"), train, train, Config{Train: 1, Format: "gif"}, "gif", false},
		{"bad options", filepath.Join(root, "d"), train, train, Config{Train: 1, Options: Options{Size: 3}}, "size", false},
		{"missing source", filepath.Join(root, "e"), train, nil, ok, "no val source", false},
		{"cancelled", filepath.Join(root, "f"), train, train, ok, "context canceled", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.cancel {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			err := Build(ctx, tc.dir, tc.train, tc.val, tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want one containing %q", err, tc.errContains)
			}
		})
	}
	// Nothing written half-way: only the untouched folder is left.
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "full" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left behind: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep.txt")); string(b) != "mine" {
		t.Error("the non-empty folder was touched")
	}
}
