package data

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mobileone-go/mobileone/imageproc"
)

// Dataset is an indexed collection of labelled 8-bit images.
//
// Get returns sample i (0 <= i < Len()) and its class index into Classes().
// The image is read-only: it may share memory with the dataset (Ops never
// modify their input). Get must be safe for concurrent use; the loader calls
// it from several goroutines. An error (for example an undecodable file)
// should name the sample's file.
type Dataset interface {
	Len() int
	Classes() []string
	Get(i int) (img *imageproc.Image8, label int, err error)
}

// Memory is an in-memory dataset of equally or differently sized images.
type Memory struct {
	Images     []*imageproc.Image8
	Labels     []int
	ClassNames []string
}

// NewMemory checks that images and labels match and returns the dataset.
func NewMemory(images []*imageproc.Image8, labels []int, classes []string) (*Memory, error) {
	if len(images) != len(labels) {
		return nil, fmt.Errorf("data: %d images but %d labels", len(images), len(labels))
	}
	for i, l := range labels {
		if l < 0 || l >= len(classes) {
			return nil, fmt.Errorf("data: label %d of sample %d out of range [0, %d)", l, i, len(classes))
		}
		if m := images[i]; m == nil || m.Width <= 0 || m.Height <= 0 || (m.Channels != 1 && m.Channels != 3) ||
			len(m.Pix) != m.Width*m.Height*m.Channels {
			return nil, fmt.Errorf("data: image %d is empty or malformed", i)
		}
	}
	return &Memory{Images: images, Labels: labels, ClassNames: classes}, nil
}

func (m *Memory) Len() int          { return len(m.Images) }
func (m *Memory) Classes() []string { return m.ClassNames }
func (m *Memory) Get(i int) (*imageproc.Image8, int, error) {
	if i < 0 || i >= len(m.Images) {
		return nil, 0, fmt.Errorf("data: sample %d out of range [0, %d)", i, len(m.Images))
	}
	return m.Images[i], m.Labels[i], nil
}

// IDXDataset is a grey-image dataset held as one contiguous IDX buffer
// (MNIST-style): Get returns views into it, without copying.
type IDXDataset struct {
	pix           []byte // N*H*W
	labels        []byte
	width, height int
	classes       []string
}

func (d *IDXDataset) Len() int          { return len(d.labels) }
func (d *IDXDataset) Classes() []string { return d.classes }

// Get returns a (read-only) view of image i.
func (d *IDXDataset) Get(i int) (*imageproc.Image8, int, error) {
	if i < 0 || i >= len(d.labels) {
		return nil, 0, fmt.Errorf("data: sample %d out of range [0, %d)", i, len(d.labels))
	}
	n := d.width * d.height
	return &imageproc.Image8{Width: d.width, Height: d.height, Channels: 1, Pix: d.pix[i*n : (i+1)*n : (i+1)*n]},
		int(d.labels[i]), nil
}

// Size returns the images' width and height.
func (d *IDXDataset) Size() (w, h int) { return d.width, d.height }

// FashionMNISTClasses are the ten Fashion-MNIST labels in index order.
var FashionMNISTClasses = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// Fashion-MNIST training-set pixel statistics (of x/255), for Normalize.
const (
	FashionMNISTMean = 0.2860
	FashionMNISTStd  = 0.3530
)

// FashionMNISTDir is where Debian's dataset-fashion-mnist package puts the
// files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// LoadFashionMNIST loads the "train" (60,000) or "test" (10,000) split from
// dir, which holds the four standard files (train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte),
// each gzip-compressed (.gz) or raw.
func LoadFashionMNIST(dir, split string) (*IDXDataset, error) {
	var prefix string
	switch split {
	case "train":
		prefix = "train"
	case "test", "t10k":
		prefix = "t10k"
	default:
		return nil, fmt.Errorf("data: Fashion-MNIST split %q, want \"train\" or \"test\"", split)
	}
	imgPath, err := findIDX(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lblPath, err := findIDX(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	return LoadIDXPair(imgPath, lblPath, FashionMNISTClasses)
}

func findIDX(dir, name string) (string, error) {
	for _, p := range []string{filepath.Join(dir, name+".gz"), filepath.Join(dir, name)} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("data: neither %s.gz nor %s in %s (Debian: apt-get install dataset-fashion-mnist)", name, name, dir)
}

// LoadIDXPair loads an images file (N, H, W) and a labels file (N) in IDX
// format (raw or gzip) as a dataset with the given class names. It checks
// the dimensions, that the counts agree and that every label is a valid
// class index.
func LoadIDXPair(imagesPath, labelsPath string, classes []string) (*IDXDataset, error) {
	imgs, err := ReadIDXFile(imagesPath)
	if err != nil {
		return nil, err
	}
	lbls, err := ReadIDXFile(labelsPath)
	if err != nil {
		return nil, err
	}
	return NewIDXDataset(imgs, lbls, classes, imagesPath, labelsPath)
}

// NewIDXDataset validates a parsed images/labels pair; the names are used in
// error messages only.
func NewIDXDataset(imgs, lbls *IDX, classes []string, imagesName, labelsName string) (*IDXDataset, error) {
	if len(imgs.Dims) != 3 {
		return nil, fmt.Errorf("%s: %w: images need 3 dimensions (N, H, W), file has %v", imagesName, ErrIDX, imgs.Dims)
	}
	if len(lbls.Dims) != 1 {
		return nil, fmt.Errorf("%s: %w: labels need 1 dimension (N), file has %v", labelsName, ErrIDX, lbls.Dims)
	}
	n, h, w := imgs.Dims[0], imgs.Dims[1], imgs.Dims[2]
	if h == 0 || w == 0 {
		return nil, fmt.Errorf("%s: %w: zero-size images %dx%d", imagesName, ErrIDX, w, h)
	}
	if n != lbls.Dims[0] {
		return nil, fmt.Errorf("data: %s has %d images but %s has %d labels", imagesName, n, labelsName, lbls.Dims[0])
	}
	if n == 0 {
		return nil, fmt.Errorf("data: %s holds no images", imagesName)
	}
	for i, l := range lbls.Data {
		if int(l) >= len(classes) {
			return nil, fmt.Errorf("%s: %w: label %d of sample %d out of range [0, %d)", labelsName, ErrIDX, l, i, len(classes))
		}
	}
	return &IDXDataset{pix: imgs.Data, labels: lbls.Data, width: w, height: h, classes: classes}, nil
}
