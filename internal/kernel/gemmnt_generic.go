//go:build !amd64 || purego

package kernel

// ntAsm is empty: without assembly GemmNT uses the packed GEMM.
var ntAsm [0]*ntImpl
