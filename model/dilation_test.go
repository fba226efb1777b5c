package model

import (
	"fmt"
	"testing"
)

// TestDenseStrides: the stride/dilation rule on a configuration with
// several pairs per stage, by hand.
func TestDenseStrides(t *testing.T) {
	c := Config{Name: "t", Channels: [5]int{8, 8, 16, 16, 32}, Blocks: [4]int{1, 1, 2, 2}, K: 1, InChannels: 3, StemStride: 2}
	// blocks: stem, s1 (dw, pw), s2 (dw, pw), s3 (dw, pw, dw, pw), s4 (dw, pw, dw, pw)
	for _, tc := range []struct {
		os             int
		stride, dilate string
	}{
		{32, "[2 2 1 2 1 2 1 1 1 2 1 1 1]", "[1 1 1 1 1 1 1 1 1 1 1 1 1]"},
		{16, "[2 2 1 2 1 2 1 1 1 1 1 1 1]", "[1 1 1 1 1 1 1 1 1 1 1 2 1]"},
		{8, "[2 2 1 2 1 1 1 1 1 1 1 1 1]", "[1 1 1 1 1 1 1 2 1 2 1 4 1]"},
	} {
		s, d, err := c.DenseStrides(tc.os)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(s) != tc.stride || fmt.Sprint(d) != tc.dilate {
			t.Errorf("output stride %d: strides %v dilations %v, want %s %s", tc.os, s, d, tc.stride, tc.dilate)
		}
	}
	if _, _, err := c.DenseStrides(4); err == nil {
		t.Error("output stride 4 accepted")
	}
}
