//go:build !amd64 || purego

package kernel

// actAsm is empty: without assembly every level runs the portable kernels.
var actAsm [0]*actImpl
