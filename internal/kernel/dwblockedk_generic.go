//go:build !amd64 || purego

package kernel

// dwbkAsm is empty: without assembly every level runs the portable kernels.
var dwbkAsm [0]*dwbkImpl
