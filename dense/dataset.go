package dense

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
)

// Dataset is an indexed collection of images with per-pixel class maps.
//
// Get returns sample i (0 <= i < Len()): an RGB image and a mask of the
// same size whose values are indices into Classes() or Ignore. Both are the
// caller's to modify. Name returns the sample's file stem (for naming
// predicted masks like the inputs). Get must be safe for concurrent use; an
// error names the offending file.
type Dataset interface {
	Len() int
	Classes() []string
	Name(i int) string
	Get(i int) (*imageproc.Image8, *Mask, error)
}

// VOCClasses are Pascal VOC 2012's 21 segmentation classes, index order.
var VOCClasses = []string{
	"background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
	"diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
}

// Options configure the readers.
type Options struct {
	// Classes fixes the class names (index order). If nil, the readers
	// read labels.txt (one name a line) from the data folder, or for a
	// split folder from it or its parent; failing that the VOC layout
	// takes VOCClasses and the images/ + masks/ layout is an error.
	Classes []string
	// MaxPixels is the decoding limit per image (imageproc.Decode); 0
	// means imageproc.DefaultMaxPixels.
	MaxPixels int
}

// Files is a dataset of image and mask files, decoded on Get.
type Files struct {
	Images, Masks []string // paths, sample order
	Names         []string // file stems
	classes       []string
	maxPixels     int
}

func (f *Files) Len() int                         { return len(f.Images) }
func (f *Files) Classes() []string                { return f.classes }
func (f *Files) Name(i int) string                { return f.Names[i] }
func (f *Files) Paths(i int) (image, mask string) { return f.Images[i], f.Masks[i] }

// Get decodes sample i: the image as RGB (imageproc.ToImage8), the mask
// with ReadMaskFile. It checks that both have the same size and that every
// mask value is a class index or Ignore.
func (f *Files) Get(i int) (*imageproc.Image8, *Mask, error) {
	if i < 0 || i >= len(f.Images) {
		return nil, nil, fmt.Errorf("dense: sample %d out of range [0, %d)", i, len(f.Images))
	}
	img, err := imageproc.DecodeFile(f.Images[i], f.maxPixels)
	if err != nil {
		return nil, nil, err
	}
	m, err := readMask(f.Masks[i], f.maxPixels)
	if err != nil {
		return nil, nil, err
	}
	b := img.Bounds()
	if b.Dx() != m.Width || b.Dy() != m.Height {
		return nil, nil, sizeErr(f.Masks[i], m.Width, m.Height, f.Images[i], b.Dx(), b.Dy())
	}
	if err := m.Check(len(f.classes)); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.Masks[i], err)
	}
	return imageproc.ToImage8(img, false), m, nil
}

// ErrSize is matched (errors.Is) by a mask whose size differs from its
// image's.
var ErrSize = errors.New("mask and image sizes differ")

func sizeErr(mask string, mw, mh int, img string, iw, ih int) error {
	return fmt.Errorf("%s: %w: mask is %dx%d, its image %s is %dx%d", mask, ErrSize, mw, mh, img, iw, ih)
}

// Open reads a segmentation dataset from dir, finding its layout:
//   - Pascal VOC: dir/ImageSets/Segmentation/<split>.txt lists the ids,
//     images are dir/JPEGImages/<id>.jpg (or .png, .jpeg, ...), masks
//     dir/SegmentationClass/<id>.png; see LoadVOC;
//   - images/ + masks/: dir/<split>/images and dir/<split>/masks, or dir/images
//     and dir/masks when dir has no <split> folder; see LoadFolder.
func Open(dir, split string, o Options) (*Files, error) {
	if isDir(filepath.Join(dir, "ImageSets", "Segmentation")) {
		return LoadVOC(dir, split, o)
	}
	if split != "" && isDir(filepath.Join(dir, split, "images")) {
		if o.Classes == nil {
			if c, err := readLabels(filepath.Join(dir, split, "labels.txt")); err != nil {
				return nil, err
			} else if c != nil {
				o.Classes = c
			}
		}
		if o.Classes == nil {
			c, err := readLabels(filepath.Join(dir, "labels.txt"))
			if err != nil {
				return nil, err
			}
			o.Classes = c
		}
		return LoadFolder(filepath.Join(dir, split), o)
	}
	if isDir(filepath.Join(dir, "images")) {
		return LoadFolder(dir, o)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	where := filepath.Join(dir, "images")
	if split != "" {
		where = filepath.Join(dir, split, "images") + " nor " + where
	}
	return nil, fmt.Errorf("%s: not a segmentation dataset: no ImageSets/Segmentation (VOC layout) and no %s", dir, where)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// readLabels reads class names, one a line (surrounding blanks trimmed,
// empty lines skipped); a missing file gives nil, nil.
func readLabels(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		if s := strings.TrimSpace(line); s != "" {
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no class names", path)
	}
	if len(names) > Ignore {
		return nil, fmt.Errorf("%s: %d classes, at most %d (255 is the ignore index)", path, len(names), Ignore)
	}
	return names, nil
}

func classesFor(dir string, o Options, fallback []string) ([]string, error) {
	if o.Classes != nil {
		if len(o.Classes) == 0 || len(o.Classes) > Ignore {
			return nil, fmt.Errorf("dense: %d classes, want 1..%d", len(o.Classes), Ignore)
		}
		return o.Classes, nil
	}
	c, err := readLabels(filepath.Join(dir, "labels.txt"))
	if err != nil || c != nil {
		return c, err
	}
	if fallback == nil {
		return nil, fmt.Errorf("%s: no labels.txt (one class name a line, index order, 0 first): give the class names", dir)
	}
	return fallback, nil
}

// LoadVOC lists a Pascal VOC-layout split: the ids in
// dir/ImageSets/Segmentation/<split>.txt (one a line; anything after the
// first field is ignored), each image dir/JPEGImages/<id> with one of
// data.ImageExtensions (.jpg first), each mask dir/SegmentationClass/<id>.png.
// Classes: o.Classes, dir/labels.txt or VOCClasses. Every file must exist
// and the image and mask headers must give the same size; pixel values are
// checked on Get.
func LoadVOC(dir, split string, o Options) (*Files, error) {
	if split == "" {
		return nil, fmt.Errorf("%s: a VOC-layout dataset needs a split (train, val, ...)", dir)
	}
	classes, err := classesFor(dir, o, VOCClasses)
	if err != nil {
		return nil, err
	}
	list := filepath.Join(dir, "ImageSets", "Segmentation", split+".txt")
	fh, err := os.Open(list)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f := &Files{classes: classes, maxPixels: o.MaxPixels}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		id := fields[0]
		img, err := findImage(filepath.Join(dir, "JPEGImages", id))
		if err != nil {
			return nil, fmt.Errorf("%s lists %q: %w", list, id, err)
		}
		f.Images = append(f.Images, img)
		f.Masks = append(f.Masks, filepath.Join(dir, "SegmentationClass", id+".png"))
		f.Names = append(f.Names, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", list, err)
	}
	if len(f.Images) == 0 {
		return nil, fmt.Errorf("%s lists no images", list)
	}
	return f, f.checkHeaders()
}

// findImage returns stem + the first of data.ImageExtensions that exists.
func findImage(stem string) (string, error) {
	for _, ext := range data.ImageExtensions {
		for _, e := range []string{ext, strings.ToUpper(ext)} {
			if _, err := os.Stat(stem + e); err == nil {
				return stem + e, nil
			}
		}
	}
	return "", fmt.Errorf("no image %s.jpg (or %s)", stem, strings.Join(data.ImageExtensions[1:], ", "))
}

// LoadFolder lists dir/images and dir/masks: every image file (one of
// data.ImageExtensions, hidden files skipped, sorted by name) needs a mask
// with the same stem in masks/ (.png, or another lossless extension), and
// every mask an image. Classes: o.Classes or dir/labels.txt. The image and
// mask headers must give the same size; pixel values are checked on Get.
func LoadFolder(dir string, o Options) (*Files, error) {
	classes, err := classesFor(dir, o, nil)
	if err != nil {
		return nil, err
	}
	imgs, err := listImages(filepath.Join(dir, "images"), data.ImageExtensions)
	if err != nil {
		return nil, err
	}
	masks, err := listImages(filepath.Join(dir, "masks"), []string{".png", ".bmp", ".tif", ".tiff", ".gif"})
	if err != nil {
		return nil, err
	}
	f := &Files{classes: classes, maxPixels: o.MaxPixels}
	stems := slices.Sorted(maps.Keys(imgs))
	if len(stems) == 0 {
		return nil, fmt.Errorf("%s: no images", filepath.Join(dir, "images"))
	}
	for _, s := range stems {
		m, ok := masks[s]
		if !ok {
			return nil, fmt.Errorf("%s has no mask: no %s", imgs[s], filepath.Join(dir, "masks", s+".png"))
		}
		f.Images = append(f.Images, imgs[s])
		f.Masks = append(f.Masks, m)
		f.Names = append(f.Names, s)
	}
	for s, m := range masks {
		if _, ok := imgs[s]; !ok {
			return nil, fmt.Errorf("%s has no image with the stem %q in %s", m, s, filepath.Join(dir, "images"))
		}
	}
	return f, f.checkHeaders()
}

// listImages maps file stems to paths for the files of dir with one of
// exts (case-insensitive); two files with one stem are an error.
func listImages(dir string, exts []string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if e.IsDir() || strings.HasPrefix(name, ".") || !slices.Contains(exts, ext) {
			continue
		}
		stem := name[:len(name)-len(ext)]
		p := filepath.Join(dir, name)
		if prev, dup := out[stem]; dup {
			return nil, fmt.Errorf("%s and %s have the same stem", prev, p)
		}
		out[stem] = p
	}
	return out, nil
}

// checkHeaders reads every image's and mask's header: both must decode
// and give the same size.
func (f *Files) checkHeaders() error {
	for i := range f.Images {
		iw, ih, err := decodeConfig(f.Images[i])
		if err != nil {
			return err
		}
		mw, mh, err := decodeConfig(f.Masks[i])
		if err != nil {
			return err
		}
		if iw != mw || ih != mh {
			return sizeErr(f.Masks[i], mw, mh, f.Images[i], iw, ih)
		}
	}
	return nil
}

func decodeConfig(path string) (int, int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer fh.Close()
	cfg, format, err := image.DecodeConfig(bufio.NewReader(fh))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return 0, 0, fmt.Errorf("%s: %w", path, imageproc.ErrNotImage)
		}
		return 0, 0, fmt.Errorf("%s: bad %s header: %w", path, format, err)
	}
	return cfg.Width, cfg.Height, nil
}
