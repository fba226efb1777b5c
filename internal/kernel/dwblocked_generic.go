//go:build !amd64 || purego

package kernel

// dwbAsm is empty: without assembly every level runs the portable kernels.
var dwbAsm [0]*dwbImpl
