// Package tensor holds shapes and float32 storage only; it does no math.
//
// Tensors are dense, row-major (C order). Shapes are written in one
// vocabulary across the project: x: (N, C, H, W).
package tensor

import (
	"fmt"
	"strings"
)

// Tensor is a dense row-major float32 array with a shape.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zeroed tensor of the given shape.
func New(shape ...int) *Tensor {
	n := NumelOf(shape)
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}
}

// FromData wraps data (not copied) with a shape; it fails if the sizes differ.
func FromData(data []float32, shape ...int) (*Tensor, error) {
	if n := NumelOf(shape); n != len(data) {
		return nil, fmt.Errorf("tensor: shape %s needs %d values, have %d", ShapeString(shape), n, len(data))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// NumelOf returns the number of elements of a shape (1 for a scalar shape).
func NumelOf(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Numel returns the number of elements.
func (t *Tensor) Numel() int { return NumelOf(t.Shape) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ShapeString formats a shape as (a, b, c).
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// String describes the tensor's shape.
func (t *Tensor) String() string { return "Tensor" + ShapeString(t.Shape) }
