//go:build !amd64 || purego

package kernel

const q8pwHaveAVX2 = false

// q8pwAsm lists the assembly micro-kernels (none without amd64 assembly).
var q8pwAsm = map[string]q8pwKernel{}

// q8dwAsm lists the assembly depthwise kernels (none).
var q8dwAsm = map[string]q8dwKernel{}

// q8widenAsm lists the assembly widenings (none).
var q8widenAsm = map[string]func(dst []int16, src []uint8){}
