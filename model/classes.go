package model

import (
	_ "embed"
	"strings"
)

//go:embed imagenet_classes.txt
var imagenetClasses string

// ImageNetClasses returns the 1000 ImageNet class names in index order.
func ImageNetClasses() []string {
	return strings.Split(strings.TrimRight(imagenetClasses, "\n"), "\n")
}
