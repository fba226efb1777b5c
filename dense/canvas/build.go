package canvas

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/dense"
)

// Config describes a whole canvases dataset.
type Config struct {
	Options
	Train, Val int    // canvases per split
	Seed       uint64 // canvas i of a split depends only on (Seed, split, i)
	// Format of the images: "png" (default: lossless, so the exact masks
	// match the pixels) or "jpg" (quality 95, smaller, as VOC ships).
	Format  string
	Workers int // 0: GOMAXPROCS
}

// Build composes cfg.Train canvases from the train source and cfg.Val from
// the val source (Fashion-MNIST's train and test splits, so the two sets
// share no item) and writes them to dir in Pascal VOC layout plus COCO
// detection JSON:
//
//	JPEGImages/train_000000.png ...     the images (.png or .jpg, see Config.Format)
//	SegmentationClass/train_000000.png  class per pixel, palette PNG (VOC palette), 0 = background
//	SegmentationObject/train_000000.png instance per pixel, palette PNG, 0 = background, k = k-th annotation of the image
//	ImageSets/Segmentation/{train,val,trainval}.txt  image ids, one a line
//	annotations/instances_{train,val}.json  COCO detection: categories 1..10, bbox [x,y,w,h] and area
//	                                    of the visible part, iscrowd 0, segmentation as uncompressed RLE
//	labels.txt                          the 11 class names, index order (0 = background)
//
// There is no ignore (255) border: the masks are exact. Items are never
// fully hidden (see Options.MinVisible), and one that would be is left out
// of every annotation. Everything is written to a temporary folder next to
// dir, renamed to dir at the end; dir must not exist or be empty. On an
// error, or when ctx is cancelled, the temporary folder is removed and dir
// left as it was. progress, if not nil, is called after each canvas (from one goroutine at a time).
func Build(ctx context.Context, dir string, train, val data.Dataset, cfg Config, progress func(done, total int)) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Train < 0 || cfg.Val < 0 || cfg.Train+cfg.Val == 0 {
		return fmt.Errorf("canvases: %d train and %d val canvases: want at least one", cfg.Train, cfg.Val)
	}
	switch cfg.Format {
	case "":
		cfg.Format = "png"
	case "png", "jpg":
	default:
		return fmt.Errorf("canvases: image format %q, want png or jpg", cfg.Format)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty: choose a new folder", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(filepath.Clean(dir))+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, d := range []string{"JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation", "annotations"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return err
		}
	}
	total := cfg.Train + cfg.Val
	done := 0
	var mu sync.Mutex
	tick := func() {
		mu.Lock()
		defer mu.Unlock()
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	var ids [2][]string
	for s, sp := range []struct {
		name string
		src  data.Dataset
		n    int
	}{{"train", train, cfg.Train}, {"val", val, cfg.Val}} {
		if sp.n == 0 {
			continue
		}
		if sp.src == nil {
			return fmt.Errorf("canvases: no %s source", sp.name)
		}
		coco, names, err := buildSplit(ctx, tmp, sp.name, uint64(s), sp.src, cfg, tick)
		if err != nil {
			return err
		}
		ids[s] = names
		if err := writeJSON(filepath.Join(tmp, "annotations", "instances_"+sp.name+".json"), coco); err != nil {
			return err
		}
	}
	for name, list := range map[string][]string{"train": ids[0], "val": ids[1], "trainval": append(ids[0][:len(ids[0]):len(ids[0])], ids[1]...)} {
		if err := writeText(filepath.Join(tmp, "ImageSets", "Segmentation", name+".txt"), list); err != nil {
			return err
		}
	}
	if err := writeText(filepath.Join(tmp, "labels.txt"), Classes()); err != nil {
		return err
	}
	os.Remove(dir) // an empty folder given as the target
	return os.Rename(tmp, dir)
}

func writeText(path string, lines []string) error {
	s := strings.Join(lines, "\n")
	if len(lines) > 0 {
		s += "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeFile writes a file of the temporary folder (no fsync per file: the
// folder as a whole is renamed into place).
func writeFile(path string, enc func(w io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := enc(bw); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// COCO is the subset of COCO's detection format Build writes (and the
// detection reader of the canvases reads back).
type COCO struct {
	Info        COCOInfo         `json:"info"`
	Images      []COCOImage      `json:"images"`
	Categories  []COCOCategory   `json:"categories"`
	Annotations []COCOAnnotation `json:"annotations"`
}

// COCOInfo records how a file was made.
type COCOInfo struct {
	Description string  `json:"description"`
	Version     string  `json:"version"`
	Split       string  `json:"split"`
	Seed        uint64  `json:"seed"`
	Size        int     `json:"size"`
	MinItems    int     `json:"min_items"`
	MaxItems    int     `json:"max_items"`
	MinScale    float64 `json:"min_scale"`
	MaxScale    float64 `json:"max_scale"`
}

// COCOImage is one entry of "images"; FileName is relative to JPEGImages/.
type COCOImage struct {
	ID       int    `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

// COCOCategory is one entry of "categories".
type COCOCategory struct {
	ID            int    `json:"id"`
	Name          string `json:"name"`
	Supercategory string `json:"supercategory"`
}

// RLE is COCO's uncompressed run-length encoding of a binary mask: runs of
// alternating 0s and 1s (starting with 0s) over the pixels in column-major
// order; Size is [height, width].
type RLE struct {
	Counts []int  `json:"counts"`
	Size   [2]int `json:"size"`
}

// COCOAnnotation is one object; Bbox is [x, y, w, h] in pixels.
type COCOAnnotation struct {
	ID           int        `json:"id"`
	ImageID      int        `json:"image_id"`
	CategoryID   int        `json:"category_id"`
	Bbox         [4]float64 `json:"bbox"`
	Area         float64    `json:"area"`
	IsCrowd      int        `json:"iscrowd"`
	Segmentation RLE        `json:"segmentation"`
}

// EncodeRLE returns the RLE of the pixels of m equal to v.
func EncodeRLE(m *dense.Mask, v uint8) RLE {
	w, h := m.Width, m.Height
	var counts []int
	cur, run := false, 0
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			on := m.Pix[y*w+x] == v
			if on != cur {
				counts = append(counts, run)
				cur, run = on, 0
			}
			run++
		}
	}
	counts = append(counts, run)
	return RLE{Counts: counts, Size: [2]int{h, w}}
}

func buildSplit(ctx context.Context, dir, split string, splitID uint64, src data.Dataset, cfg Config, tick func()) (*COCO, []string, error) {
	n := cfg.Train
	if split == "val" {
		n = cfg.Val
	}
	o := cfg.Options.withDefaults()
	coco := &COCO{
		Info: COCOInfo{Description: "MobileOne canvases: Fashion-MNIST items on textured backgrounds", Version: "1",
			Split: split, Seed: cfg.Seed, Size: o.Size, MinItems: o.MinItems, MaxItems: o.MaxItems, MinScale: o.MinScale, MaxScale: o.MaxScale},
		Images:      make([]COCOImage, n),
		Categories:  make([]COCOCategory, 0, 10),
		Annotations: []COCOAnnotation{},
	}
	for k, name := range Classes()[1:] {
		coco.Categories = append(coco.Categories, COCOCategory{ID: k + 1, Name: name, Supercategory: "fashion"})
	}
	names := make([]string, n)
	anns := make([][]COCOAnnotation, n)
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	next := make(chan int)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var once sync.Once
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := func() error {
					if err := ctx.Err(); err != nil {
						return err
					}
					name := fmt.Sprintf("%s_%06d", split, i)
					names[i] = name
					c, err := Generate(src, cfg.Options, data.NewRNG(data.SampleSeed(cfg.Seed, int(splitID), i)))
					if err != nil {
						return err
					}
					file := name + "." + cfg.Format
					coco.Images[i] = COCOImage{ID: i + 1, FileName: file, Width: o.Size, Height: o.Size}
					for k, it := range c.Items {
						anns[i] = append(anns[i], COCOAnnotation{ImageID: i + 1, CategoryID: it.Class,
							Bbox: [4]float64{float64(it.Box.Min.X), float64(it.Box.Min.Y), float64(it.Box.Dx()), float64(it.Box.Dy())},
							Area: float64(it.Area), Segmentation: EncodeRLE(c.Instance, uint8(k+1))})
					}
					rgb := c.Image.NRGBA()
					if err := writeFile(filepath.Join(dir, "JPEGImages", file), func(w io.Writer) error {
						if cfg.Format == "jpg" {
							return jpeg.Encode(w, rgb, &jpeg.Options{Quality: 95})
						}
						return png.Encode(w, rgb)
					}); err != nil {
						return err
					}
					if err := writeFile(filepath.Join(dir, "SegmentationClass", name+".png"), func(w io.Writer) error { return dense.WriteMaskPNG(w, c.Class) }); err != nil {
						return err
					}
					return writeFile(filepath.Join(dir, "SegmentationObject", name+".png"), func(w io.Writer) error { return dense.WriteMaskPNG(w, c.Instance) })
				}(); err != nil {
					errs[w] = err
					once.Do(func() { close(stop) })
					return
				}
				tick()
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-stop:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	id := 0
	for _, a := range anns {
		for _, x := range a {
			id++
			x.ID = id
			coco.Annotations = append(coco.Annotations, x)
		}
	}
	return coco, names, nil
}
