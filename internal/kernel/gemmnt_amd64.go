//go:build amd64 && !purego

package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

//go:generate go -C _gen run ./ntdot -out ../gemmnt_amd64.s -stubs ../gemmnt_stub_amd64.go

// ntAsm holds the assembly dot kernels by level (gemmnt_amd64.s, generated
// by _gen/ntdot): AVX-512 only; AVX2 machines use the packed GEMM.
var ntAsm = [...]*ntImpl{
	cpu.AVX512: {
		level: cpu.AVX512,
		kern: [ntRows + 1][ntCols + 1]ntDotKernel{
			1: {1: ntDotAVX512x1x1, 2: ntDotAVX512x1x2, 3: ntDotAVX512x1x3, 4: ntDotAVX512x1x4},
			2: {1: ntDotAVX512x2x1, 2: ntDotAVX512x2x2, 3: ntDotAVX512x2x3, 4: ntDotAVX512x2x4},
			3: {1: ntDotAVX512x3x1, 2: ntDotAVX512x3x2, 3: ntDotAVX512x3x3, 4: ntDotAVX512x3x4},
			4: {1: ntDotAVX512x4x1, 2: ntDotAVX512x4x2, 3: ntDotAVX512x4x3, 4: ntDotAVX512x4x4},
			5: {1: ntDotAVX512x5x1, 2: ntDotAVX512x5x2, 3: ntDotAVX512x5x3, 4: ntDotAVX512x5x4},
			6: {1: ntDotAVX512x6x1, 2: ntDotAVX512x6x2, 3: ntDotAVX512x6x3, 4: ntDotAVX512x6x4},
		},
	},
}
