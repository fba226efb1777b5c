package data

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/mobileone-go/mobileone/imageproc"
)

// ImageExtensions are the file extensions LoadFolder picks up
// (case-insensitive); other files are ignored.
var ImageExtensions = []string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}

// FolderOptions configure LoadFolder.
type FolderOptions struct {
	// MaxPixels is the decoding limit per image (imageproc.Decode); 0 means
	// imageproc.DefaultMaxPixels.
	MaxPixels int
	// Gray decodes to one channel (PIL's convert('L')) instead of RGB.
	Gray bool
	// Cache keeps every decoded image in memory after its first use
	// (width*height*channels bytes each). Off by default: ImageNet-sized
	// folders do not fit.
	Cache bool
	// Classes, if set, fixes the class list (and order) instead of the
	// sorted sub-folder names; every sub-folder must be in it. Use it to
	// give a validation split the training split's indices.
	Classes []string
}

// Folder is a dataset of image files, one sub-folder per class
// (torchvision's ImageFolder layout). Images are decoded on Get.
type Folder struct {
	Root    string
	Paths   []string
	Labels  []int
	classes []string
	opts    FolderOptions

	mu    sync.Mutex
	cache map[int]*imageproc.Image8
}

// LoadFolder lists dir: every sub-folder is a class (class index = position
// of its name in sorted order, or in opts.Classes), and every file with an
// image extension below it (recursively, sorted, hidden files skipped) is a
// sample. Nothing is decoded yet: a broken file gives an error naming it
// when the loader reaches it. Empty class folders are allowed; a folder with
// no images at all is an error.
func LoadFolder(dir string, opts FolderOptions) (*Folder, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var found []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			found = append(found, e.Name())
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("data: %s has no class sub-folders (want dir/<class>/<image>)", dir)
	}
	classes := found // os.ReadDir sorts by name
	if opts.Classes != nil {
		classes = opts.Classes
		for _, c := range found {
			if !slices.Contains(classes, c) {
				return nil, fmt.Errorf("data: %s: class folder %q is not one of the %d given classes", dir, c, len(classes))
			}
		}
	}
	f := &Folder{Root: dir, classes: classes, opts: opts}
	for _, c := range found {
		label := slices.Index(classes, c)
		err := filepath.WalkDir(filepath.Join(dir, c), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !slices.Contains(ImageExtensions, strings.ToLower(filepath.Ext(name))) {
				return nil
			}
			f.Paths = append(f.Paths, p)
			f.Labels = append(f.Labels, label)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
	}
	if len(f.Paths) == 0 {
		return nil, fmt.Errorf("data: no images (%s) under %s", strings.Join(ImageExtensions, " "), dir)
	}
	if opts.Cache {
		f.cache = make(map[int]*imageproc.Image8)
	}
	return f, nil
}

// LoadFolderSplits loads dir/train and dir/val (torchvision's ImageNet
// layout); the validation split uses the training split's class indices,
// and a validation class folder unknown to training is an error.
func LoadFolderSplits(dir string, opts FolderOptions) (train, val *Folder, err error) {
	train, err = LoadFolder(filepath.Join(dir, "train"), opts)
	if err != nil {
		return nil, nil, err
	}
	vopts := opts
	vopts.Classes = train.classes
	val, err = LoadFolder(filepath.Join(dir, "val"), vopts)
	if err != nil {
		return nil, nil, err
	}
	return train, val, nil
}

func (f *Folder) Len() int          { return len(f.Paths) }
func (f *Folder) Classes() []string { return f.classes }

// Get decodes image i (with the pixel limit) to 8-bit RGB, or grey with
// FolderOptions.Gray. Errors name the file.
func (f *Folder) Get(i int) (*imageproc.Image8, int, error) {
	if i < 0 || i >= len(f.Paths) {
		return nil, 0, fmt.Errorf("data: sample %d out of range [0, %d)", i, len(f.Paths))
	}
	if f.cache != nil {
		f.mu.Lock()
		m := f.cache[i]
		f.mu.Unlock()
		if m != nil {
			return m, f.Labels[i], nil
		}
	}
	img, err := imageproc.DecodeFile(f.Paths[i], f.opts.MaxPixels)
	if err != nil {
		return nil, 0, err // DecodeFile's errors name the file
	}
	m := imageproc.ToImage8(img, f.opts.Gray)
	if f.cache != nil {
		f.mu.Lock()
		f.cache[i] = m
		f.mu.Unlock()
	}
	return m, f.Labels[i], nil
}
