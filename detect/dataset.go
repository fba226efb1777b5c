package detect

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/imageproc"
)

// Object is one annotated object of a Sample.
type Object struct {
	Box        Box     // pixels, inside the image
	Label      int     // contiguous label 1..len(Classes)-1
	CategoryID int     // the data set's own category id (COCO), = Label for VOC
	Area       float64 // COCO's annotation area (of the segment); w×h when the file gives none
	Crowd      bool    // COCO iscrowd
	Difficult  bool    // Pascal VOC difficult
}

// Sample is one image of a Dataset and its objects.
type Sample struct {
	ID            int    // COCO image id; VOC: index in the split + 1
	Name          string // file name as the annotations give it
	Path          string // image file
	Width, Height int
	Objects       []Object
}

// Target returns the training target of the sample: its boxes and labels
// without crowd regions and difficult objects (torchvision's COCO reference
// drops iscrowd annotations from training targets).
func (s Sample) Target() Target {
	var t Target
	for _, o := range s.Objects {
		if !o.Crowd && !o.Difficult {
			t.Boxes = append(t.Boxes, o.Box)
			t.Labels = append(t.Labels, o.Label)
		}
	}
	return t
}

// Dataset is one split of a detection data set.
type Dataset struct {
	Split       string
	Classes     []string // label order; Classes[0] is "background"
	CategoryIDs []int    // label k's category id; CategoryIDs[0] = 0
	Samples     []Sample
	// Warnings lists the annotations left out (degenerate boxes), one a line.
	Warnings  []string
	MaxPixels int // decoding limit per image (imageproc.Decode); 0: the default
}

// Len returns the number of images.
func (d *Dataset) Len() int { return len(d.Samples) }

// Get decodes image i as RGB and returns it with its sample (a copy whose
// Objects may be changed). The image must have the size the annotations give.
func (d *Dataset) Get(i int) (*imageproc.Image8, Sample, error) {
	if i < 0 || i >= len(d.Samples) {
		return nil, Sample{}, fmt.Errorf("detect: sample %d out of range [0, %d)", i, len(d.Samples))
	}
	s := d.Samples[i]
	s.Objects = append([]Object(nil), s.Objects...)
	img, err := imageproc.DecodeFile(s.Path, d.MaxPixels)
	if err != nil {
		return nil, s, err
	}
	if b := img.Bounds(); b.Dx() != s.Width || b.Dy() != s.Height {
		return nil, s, fmt.Errorf("%s: image is %dx%d, the annotations say %dx%d", s.Path, b.Dx(), b.Dy(), s.Width, s.Height)
	}
	return imageproc.ToImage8(img, false), s, nil
}

// GroundTruth returns the split's annotations for Evaluate: image ids,
// category ids and objects (crowd regions as crowd, difficult objects as
// ignored), boxes in original image pixels.
func (d *Dataset) GroundTruth() (images, categories []int, gts []GroundTruth) {
	for _, s := range d.Samples {
		images = append(images, s.ID)
		for _, o := range s.Objects {
			gts = append(gts, GroundTruth{ImageID: s.ID, CategoryID: o.CategoryID, BBox: o.Box.XYWH(), Area: o.Area,
				Crowd: o.Crowd, Ignore: o.Difficult})
		}
	}
	return images, append([]int(nil), d.CategoryIDs[1:]...), gts
}

// Names maps category ids to class names (for Evaluate's report).
func (d *Dataset) Names() map[int]string {
	m := map[int]string{}
	for k := 1; k < len(d.Classes); k++ {
		m[d.CategoryIDs[k]] = d.Classes[k]
	}
	return m
}

// Open finds the train and val splits of a detection data set in dir:
//
//   - COCO: dir/annotations/instances_{train,val}.json (or
//     instances_{train,val}2017.json), images under dir/JPEGImages/,
//     dir/images/ or dir/{train,val}[2017]/ (the first that holds the first
//     image); this is the layout of `mobileone data canvases`;
//   - Pascal VOC: dir/Annotations/*.xml with dir/ImageSets/Main/{train,val}.txt,
//     images in dir/JPEGImages/, the 20 VOC classes.
//
// A split that is absent is returned nil; both absent is an error.
func Open(dir string) (train, val *Dataset, err error) {
	for _, split := range []string{"train", "val"} {
		ds, err := OpenSplit(dir, split)
		if errors.Is(err, errNoSplit) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if split == "train" {
			train = ds
		} else {
			val = ds
		}
	}
	if train == nil && val == nil {
		return nil, nil, fmt.Errorf("detect: %s: no annotations/instances_{train,val}.json nor Annotations/ with ImageSets/Main/{train,val}.txt", dir)
	}
	return train, val, nil
}

var errNoSplit = errors.New("no such split")

// OpenSplit reads one split (see Open for the layouts).
func OpenSplit(dir, split string) (*Dataset, error) {
	for _, name := range []string{split, split + "2017"} {
		ann := filepath.Join(dir, "annotations", "instances_"+name+".json")
		if _, err := os.Stat(ann); err == nil {
			var cands []string
			for _, sub := range []string{"JPEGImages", "images", name, split} {
				cands = append(cands, filepath.Join(dir, sub))
			}
			ds, err := ReadCOCO(ann, cands...)
			if ds != nil {
				ds.Split = split
			}
			return ds, err
		}
	}
	list := filepath.Join(dir, "ImageSets", "Main", split+".txt")
	if _, err := os.Stat(list); err == nil && isDir(filepath.Join(dir, "Annotations")) {
		return ReadVOC(dir, split, nil)
	}
	return nil, fmt.Errorf("detect: %s: split %q: %w", dir, split, errNoSplit)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

type cocoFile struct {
	Images []struct {
		ID       *int   `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	} `json:"images"`
	Categories []struct {
		ID   *int   `json:"id"`
		Name string `json:"name"`
	} `json:"categories"`
	Annotations []struct {
		ID         int       `json:"id"`
		ImageID    int       `json:"image_id"`
		CategoryID int       `json:"category_id"`
		Bbox       []float64 `json:"bbox"`
		Area       float64   `json:"area"`
		IsCrowd    int       `json:"iscrowd"`
	} `json:"annotations"`
}

// ReadCOCO reads a COCO detection file (instances_*.json): categories
// sorted by id become labels 1..C, images keep their ids (images without
// annotations are kept), annotations become objects. Image files are
// looked for in the imageDirs given (none: the JSON file's folder), the first holding the first image
// being used for all; every file must exist.
//
// Errors name the file and the item: corrupt JSON, duplicate or missing
// ids, an annotation of an unknown image or category, a bbox that is not
// 4 finite numbers, has a negative side or lies wholly outside its image,
// an image without a size or its file. A box partly outside its image is
// clipped to it; a box of zero width or height (after clipping) is left
// out with a line in Warnings.
func ReadCOCO(annFile string, imageDirs ...string) (*Dataset, error) {
	b, err := os.ReadFile(annFile)
	if err != nil {
		return nil, err
	}
	var f cocoFile
	if err := json.Unmarshal(b, &f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s: corrupt JSON at byte %d: %w", annFile, se.Offset, err)
		}
		return nil, fmt.Errorf("%s: %w", annFile, err)
	}
	if len(f.Categories) == 0 {
		return nil, fmt.Errorf("%s: no categories", annFile)
	}
	ds := &Dataset{Classes: []string{"background"}, CategoryIDs: []int{0}}
	sort.SliceStable(f.Categories, func(i, j int) bool { return derefOr(f.Categories[i].ID) < derefOr(f.Categories[j].ID) })
	label := map[int]int{}
	for i, c := range f.Categories {
		if c.ID == nil {
			return nil, fmt.Errorf("%s: category %d (%q) has no id", annFile, i, c.Name)
		}
		if _, dup := label[*c.ID]; dup {
			return nil, fmt.Errorf("%s: category id %d appears twice", annFile, *c.ID)
		}
		label[*c.ID] = len(ds.Classes)
		ds.Classes = append(ds.Classes, c.Name)
		ds.CategoryIDs = append(ds.CategoryIDs, *c.ID)
	}
	if len(imageDirs) == 0 {
		imageDirs = []string{filepath.Dir(annFile)}
	}
	dir := ""
	if len(f.Images) > 0 {
		for _, d := range imageDirs {
			if _, err := os.Stat(filepath.Join(d, f.Images[0].FileName)); err == nil {
				dir = d
				break
			}
		}
		if dir == "" {
			return nil, fmt.Errorf("%s: image %q not found in %s", annFile, f.Images[0].FileName, strings.Join(imageDirs, ", "))
		}
	}
	index := map[int]int{}
	for i, im := range f.Images {
		if im.ID == nil {
			return nil, fmt.Errorf("%s: image %d (%q) has no id", annFile, i, im.FileName)
		}
		if _, dup := index[*im.ID]; dup {
			return nil, fmt.Errorf("%s: image id %d appears twice", annFile, *im.ID)
		}
		if im.Width <= 0 || im.Height <= 0 || im.FileName == "" {
			return nil, fmt.Errorf("%s: image id %d: file %q size %dx%d", annFile, *im.ID, im.FileName, im.Width, im.Height)
		}
		p := filepath.Join(dir, im.FileName)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: image id %d: %w", annFile, *im.ID, err)
		}
		index[*im.ID] = i
		ds.Samples = append(ds.Samples, Sample{ID: *im.ID, Name: im.FileName, Path: p, Width: im.Width, Height: im.Height})
	}
	for i, a := range f.Annotations {
		where := fmt.Sprintf("%s: annotation %d (id %d)", annFile, i, a.ID)
		si, ok := index[a.ImageID]
		if !ok {
			return nil, fmt.Errorf("%s: unknown image id %d", where, a.ImageID)
		}
		l, ok := label[a.CategoryID]
		if !ok {
			return nil, fmt.Errorf("%s: unknown category id %d", where, a.CategoryID)
		}
		s := &ds.Samples[si]
		box, warn, err := checkBox(a.Bbox, s.Width, s.Height)
		if err != nil {
			return nil, fmt.Errorf("%s, image %q: %w", where, s.Name, err)
		}
		if warn != "" {
			ds.Warnings = append(ds.Warnings, fmt.Sprintf("%s, image %q: %s: left out", where, s.Name, warn))
			continue
		}
		area := a.Area
		if area <= 0 {
			area = a.Bbox[2] * a.Bbox[3]
		}
		s.Objects = append(s.Objects, Object{Box: box, Label: l, CategoryID: a.CategoryID, Area: area, Crowd: a.IsCrowd != 0})
	}
	return ds, nil
}

func derefOr(p *int) int {
	if p == nil {
		return math.MinInt
	}
	return *p
}

// checkBox validates COCO's [x, y, w, h] in a w×h image: an error for
// non-finite values, a negative side or a box wholly outside; a warning
// for a zero side; otherwise the box clipped to the image.
func checkBox(b []float64, w, h int) (Box, string, error) {
	if len(b) != 4 {
		return Box{}, "", fmt.Errorf("bbox %v: want [x, y, w, h]", b)
	}
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Box{}, "", fmt.Errorf("bbox %v not finite", b)
		}
	}
	if b[2] < 0 || b[3] < 0 {
		return Box{}, "", fmt.Errorf("bbox %v has a negative side", b)
	}
	if b[0] >= float64(w) || b[1] >= float64(h) || b[0]+b[2] <= 0 || b[1]+b[3] <= 0 {
		if b[2] > 0 && b[3] > 0 {
			return Box{}, "", fmt.Errorf("bbox %v lies outside the %dx%d image", b, w, h)
		}
	}
	box := FromXYWH(b[0], b[1], b[2], b[3]).Clip(float32(w), float32(h))
	if !box.Valid() {
		return Box{}, fmt.Sprintf("bbox %v has no area", b), nil
	}
	return box, "", nil
}

// VOCClasses are Pascal VOC's 21 names in label order: "background", then the 20 object classes.
var VOCClasses = dense.VOCClasses

type vocXML struct {
	Filename string `xml:"filename"`
	Size     struct {
		Width  int `xml:"width"`
		Height int `xml:"height"`
	} `xml:"size"`
	Objects []struct {
		Name      string `xml:"name"`
		Difficult int    `xml:"difficult"`
		Box       struct {
			XMin float64 `xml:"xmin"`
			YMin float64 `xml:"ymin"`
			XMax float64 `xml:"xmax"`
			YMax float64 `xml:"ymax"`
		} `xml:"bndbox"`
	} `xml:"object"`
}

// ReadVOC reads a Pascal VOC detection split: the ids in
// root/ImageSets/Main/<split>.txt, each with root/Annotations/<id>.xml and
// its image root/JPEGImages/<filename> (<id>.jpg when the XML names none).
// classes are the names in label order with "background" first (nil:
// VOCClasses); an object of another name is an error naming the file.
//
// VOC's boxes are 1-based inclusive pixel indexes; a box becomes
// (xmin-1, ymin-1, xmax, ymax), the continuous extent of its pixels.
// "difficult" objects are kept with Difficult set: Sample.Target leaves
// them out of training and GroundTruth marks them ignored for Evaluate
// (neither a miss nor a false positive, as VOC's own evaluation).
// Image ids are the line numbers (1-based); category ids are the labels.
func ReadVOC(root, split string, classes []string) (*Dataset, error) {
	if classes == nil {
		classes = VOCClasses
	}
	list := filepath.Join(root, "ImageSets", "Main", split+".txt")
	b, err := os.ReadFile(list)
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Split: split, Classes: append([]string(nil), classes...)}
	label := map[string]int{}
	for k, c := range classes {
		ds.CategoryIDs = append(ds.CategoryIDs, k)
		if k > 0 {
			label[c] = k
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		id := f[0]
		xf := filepath.Join(root, "Annotations", id+".xml")
		xb, err := os.ReadFile(xf)
		if err != nil {
			return nil, fmt.Errorf("%s: image %q: %w", list, id, err)
		}
		var v vocXML
		if err := xml.Unmarshal(xb, &v); err != nil {
			return nil, fmt.Errorf("%s: corrupt XML: %w", xf, err)
		}
		if v.Size.Width <= 0 || v.Size.Height <= 0 {
			return nil, fmt.Errorf("%s: image size %dx%d", xf, v.Size.Width, v.Size.Height)
		}
		name := v.Filename
		if name == "" {
			name = id + ".jpg"
		}
		p := filepath.Join(root, "JPEGImages", name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w", xf, err)
		}
		s := Sample{ID: len(ds.Samples) + 1, Name: name, Path: p, Width: v.Size.Width, Height: v.Size.Height}
		for k, o := range v.Objects {
			l, ok := label[strings.TrimSpace(o.Name)]
			if !ok {
				return nil, fmt.Errorf("%s: object %d: unknown class %q", xf, k, o.Name)
			}
			bb := o.Box
			box, warn, err := checkBox([]float64{bb.XMin - 1, bb.YMin - 1, bb.XMax - bb.XMin + 1, bb.YMax - bb.YMin + 1}, s.Width, s.Height)
			if err != nil {
				return nil, fmt.Errorf("%s: object %d (%s): %w", xf, k, o.Name, err)
			}
			if warn != "" {
				ds.Warnings = append(ds.Warnings, fmt.Sprintf("%s: object %d (%s): %s: left out", xf, k, o.Name, warn))
				continue
			}
			s.Objects = append(s.Objects, Object{Box: box, Label: l, CategoryID: l, Area: float64(box.Area()), Difficult: o.Difficult != 0})
		}
		ds.Samples = append(ds.Samples, s)
	}
	return ds, nil
}
