//go:build !amd64 || purego

package kernel

// softmaxAsm is empty: without assembly every level runs softmaxGo.
var softmaxAsm [0]*softmaxImpl
