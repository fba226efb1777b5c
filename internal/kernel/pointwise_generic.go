//go:build !amd64 || purego

package kernel

// pwAsm is empty: without assembly every level runs the portable kernels.
var pwAsm [0]*pwImpl
