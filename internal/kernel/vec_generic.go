//go:build !amd64 || purego

package kernel

// vecAsm is empty: without assembly every level runs the portable kernels.
var vecAsm [0]*vecImpl
