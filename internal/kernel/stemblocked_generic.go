//go:build !amd64 || purego

package kernel

// stembAsm is empty: without assembly every level runs the pure-Go twin.
var stembAsm [0]*stembImpl
