// Package arch holds the architectures this project runs, as tables and
// builders of graph.Graph: MobileOne and a comparison zoo of mobile CNNs,
// named as torchvision names them where it has the model. It knows no
// kernels: a builder only says which operators, shapes and weight names a
// network has; package graph counts, runs and plans it.
package arch

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/graph"
)

// Preprocess is a model's evaluation transform (as its reference
// publishes it): resize the short side to Resize with Interpolation,
// centre-crop Crop, scale to [0, 1], normalise with Mean and Std.
type Preprocess struct {
	Resize        int        `json:"resize"`
	Crop          int        `json:"crop"`
	Interpolation string     `json:"interpolation"` // bilinear or bicubic
	Mean          [3]float32 `json:"mean"`
	Std           [3]float32 `json:"std"`
	// Note says what the transform cannot express (printed by predict).
	Note string `json:"note,omitempty"`
}

var imagenetMean, imagenetStd = [3]float32{0.485, 0.456, 0.406}, [3]float32{0.229, 0.224, 0.225}

func imagenet(resize, crop int, interp string) Preprocess {
	return Preprocess{Resize: resize, Crop: crop, Interpolation: interp, Mean: imagenetMean, Std: imagenetStd}
}

// Spec is one architecture of the zoo.
type Spec struct {
	Name string
	// Source names where the architecture (and its key names) come from.
	Source string
	// Preprocess is the evaluation transform of its published weights.
	Preprocess Preprocess
	// Classes is the classifier's width (1000 for ImageNet).
	Classes int
	// Build makes the graph for an h×w RGB input.
	Build func(h, w int) (*graph.Graph, error)
}

var registry = map[string]*Spec{}

func register(s *Spec) {
	if _, dup := registry[s.Name]; dup {
		panic("arch: " + s.Name + " registered twice")
	}
	if s.Classes == 0 {
		s.Classes = 1000
	}
	registry[s.Name] = s
}

// Names lists the registered architectures, sorted.
func Names() []string {
	var n []string
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Get returns the architecture called name.
func Get(name string) (*Spec, error) {
	s, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown model %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// makeDivisible rounds v to the nearest multiple of d (at least min), never
// below 90 % of v: torchvision's _make_divisible.
func makeDivisible(v float64, d int) int {
	n := max(d, int(v+float64(d)/2)/d*d)
	if float64(n) < 0.9*v {
		n += d
	}
	return n
}
