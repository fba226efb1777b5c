// Package zoo holds what the mobileone command ships inside its binary: a
// MobileOne trained on Fashion-MNIST by this project (fused, float16), the
// default of "mobileone predict" when no checkpoint is given, and a few
// Fashion-MNIST test images for "mobileone demo".
package zoo

import (
	"bytes"
	"embed"
	"io/fs"
	"sort"

	"github.com/mobileone-go/mobileone"
)

//go:embed fashion_mnist.safetensors
var fashionMNIST []byte

//go:embed samples/*.png
var samples embed.FS

// DefaultName names the built-in model in messages.
const DefaultName = "built-in Fashion-MNIST model"

// Default loads the built-in Fashion-MNIST model (fused).
func Default() (*mobileone.Model, error) {
	return mobileone.LoadReader(bytes.NewReader(fashionMNIST), int64(len(fashionMNIST)), DefaultName, mobileone.LoadOptions{})
}

// Sample is one built-in test image.
type Sample struct {
	Name string // file name, e.g. "9-ankle-boot-test0.png" (true class first)
	PNG  []byte
}

// Samples returns the built-in Fashion-MNIST test images, one per class.
func Samples() []Sample {
	entries, _ := fs.ReadDir(samples, "samples")
	var out []Sample
	for _, e := range entries {
		b, err := samples.ReadFile("samples/" + e.Name())
		if err == nil {
			out = append(out, Sample{Name: e.Name(), PNG: b})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
