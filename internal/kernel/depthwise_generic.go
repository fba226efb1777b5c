//go:build !amd64 || purego

package kernel

// dwAsm is empty: without assembly every level runs the portable kernels.
var dwAsm [0]*dwImpl
