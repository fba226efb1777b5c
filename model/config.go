// Package model holds MobileOne as data: the S0–S4 zoo is a table of
// configurations, and a Model is built from any Config (custom widths,
// branch count, SE placement, classes, input channels, stem stride).
package model

import (
	"fmt"
	"strings"
)

// Config describes a MobileOne network.
type Config struct {
	Name       string `json:"name"`
	Channels   [5]int `json:"channels"`    // stem, stage1..stage4 output channels
	Blocks     [4]int `json:"blocks"`      // depthwise+pointwise pairs per stage
	K          int    `json:"k"`           // conv branches at train time (the stem always has 1)
	SEPairs    [4]int `json:"se_pairs"`    // trailing pairs of each stage with Squeeze-Excite
	NumClasses int    `json:"num_classes"` // classifier outputs; 0 means no classifier (backbone only)
	InChannels int    `json:"in_channels"`
	StemStride int    `json:"stem_stride"`
	// ResizeShort is the short-side resize used before the centre crop of
	// 224 in ImageNet preprocessing (256 for S0, 248 for S1–S4); 0 if unknown.
	ResizeShort int `json:"resize_short,omitempty"`
}

// Widths builds the channel counts from the four width multipliers the
// paper uses: stem min(64, int(64·a1)), stages int(64·a1), int(128·a2),
// int(256·a3), int(512·a4).
func Widths(a1, a2, a3, a4 float64) [5]int {
	c1 := int(64 * a1)
	return [5]int{min(64, c1), c1, int(128 * a2), int(256 * a3), int(512 * a4)}
}

// DefaultBlocks are the pairs per stage of every zoo variant.
var DefaultBlocks = [4]int{2, 8, 10, 1}

// Zoo is the published model family, in order.
var Zoo = []Config{
	{Name: "s0", Channels: Widths(0.75, 1.0, 1.0, 2.0), Blocks: DefaultBlocks, K: 4, NumClasses: 1000, InChannels: 3, StemStride: 2, ResizeShort: 256},
	{Name: "s1", Channels: Widths(1.5, 1.5, 2.0, 2.5), Blocks: DefaultBlocks, K: 1, NumClasses: 1000, InChannels: 3, StemStride: 2, ResizeShort: 248},
	{Name: "s2", Channels: Widths(1.5, 2.0, 2.5, 4.0), Blocks: DefaultBlocks, K: 1, NumClasses: 1000, InChannels: 3, StemStride: 2, ResizeShort: 248},
	{Name: "s3", Channels: Widths(2.0, 2.5, 3.0, 4.0), Blocks: DefaultBlocks, K: 1, NumClasses: 1000, InChannels: 3, StemStride: 2, ResizeShort: 248},
	{Name: "s4", Channels: Widths(3.0, 3.5, 3.5, 4.0), Blocks: DefaultBlocks, K: 1, SEPairs: [4]int{0, 0, 5, 1}, NumClasses: 1000, InChannels: 3, StemStride: 2, ResizeShort: 248},
}

// Variant returns the zoo configuration named s0..s4 (case-insensitive,
// "mobileone_s1" accepted).
func Variant(name string) (Config, error) {
	n := strings.TrimPrefix(strings.ToLower(name), "mobileone_")
	n = strings.TrimPrefix(n, "mobileone-")
	for _, c := range Zoo {
		if c.Name == n {
			return c, nil
		}
	}
	return Config{}, fmt.Errorf("unknown variant %q (want one of s0, s1, s2, s3, s4)", name)
}

// Validate checks that the configuration describes a buildable network.
func (c Config) Validate() error {
	for i, ch := range c.Channels {
		if ch <= 0 {
			return fmt.Errorf("config %s: channel count %d of stage%d must be positive", c.Name, ch, i)
		}
	}
	for i, b := range c.Blocks {
		if b <= 0 {
			return fmt.Errorf("config %s: stage%d needs at least one block pair, got %d", c.Name, i+1, b)
		}
		if c.SEPairs[i] < 0 || c.SEPairs[i] > b {
			return fmt.Errorf("config %s: stage%d has %d pairs but %d SE pairs", c.Name, i+1, b, c.SEPairs[i])
		}
	}
	if c.K < 1 {
		return fmt.Errorf("config %s: k (conv branches) must be at least 1, got %d", c.Name, c.K)
	}
	if c.NumClasses < 0 {
		return fmt.Errorf("config %s: negative number of classes", c.Name)
	}
	if c.InChannels < 1 {
		return fmt.Errorf("config %s: input channels must be at least 1, got %d", c.Name, c.InChannels)
	}
	if c.StemStride != 1 && c.StemStride != 2 {
		return fmt.Errorf("config %s: stem stride must be 1 or 2, got %d", c.Name, c.StemStride)
	}
	return nil
}

// SameArchitecture reports whether two configurations build the same
// network (names and preprocessing aside).
func (c Config) SameArchitecture(d Config) bool {
	return c.Channels == d.Channels && c.Blocks == d.Blocks && c.K == d.K && c.SEPairs == d.SEPairs &&
		c.NumClasses == d.NumClasses && c.InChannels == d.InChannels && c.StemStride == d.StemStride
}

// Describe returns a one-line summary of the architecture.
func (c Config) Describe() string {
	return fmt.Sprintf("channels %v, pairs %v, k=%d, SE pairs %v, %d classes, %d input channels, stem stride %d",
		c.Channels, c.Blocks, c.K, c.SEPairs, c.NumClasses, c.InChannels, c.StemStride)
}
