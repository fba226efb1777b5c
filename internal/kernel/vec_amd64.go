//go:build amd64 && !purego

package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

//go:generate go -C _gen run ./vec -out ../vec_amd64.s -stubs ../vec_stub_amd64.go

// vecAsm holds the assembly vector kernels by level (vec_amd64.s, generated
// by _gen/vec): ZMM with K-masked tails for AVX-512, YMM + FMA with
// VMASKMOVPS tails for AVX2; four vectors per iteration.
var vecAsm = [...]*vecImpl{
	cpu.AVX2: {
		level:    cpu.AVX2,
		dot:      vecDotAVX2,
		dotSums:  vecDotSumsAVX2,
		sumSq:    vecSumSqAVX2,
		conv3:    [2]func(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int){vecConv3AVX2, vecConv3AddAVX2},
		corr3:    vecCorr3AVX2,
		dotAxpy:  vecDotAxpyAVX2,
		maskSums: vecReLUMaskDotSumsAVX2,
		axpy:     vecAxpyAVX2,
		scale:    vecScaleAVX2,
		add:      vecAddAVX2,
		relu:     vecReLUAVX2,
		reluMask: vecReLUMaskAVX2,
		bnNorm: [3]func(src, xhat, out []float32, mean, invstd, gamma, beta float32){
			bnNormX: vecBNNormAVX2, bnNormStore: vecBNNormStoreAVX2, bnNormAcc: vecBNNormAccAVX2,
		},
		bnBack: vecBNBackAVX2,
	},
	cpu.AVX512: {
		level:    cpu.AVX512,
		dot:      vecDotAVX512,
		dotSums:  vecDotSumsAVX512,
		sumSq:    vecSumSqAVX512,
		conv3:    [2]func(w [9]float32, x, zrow, out []float32, y0, y1, h, width, s int){vecConv3AVX512, vecConv3AddAVX512},
		corr3:    vecCorr3AVX512,
		dotAxpy:  vecDotAxpyAVX512,
		maskSums: vecReLUMaskDotSumsAVX512,
		axpy:     vecAxpyAVX512,
		scale:    vecScaleAVX512,
		add:      vecAddAVX512,
		relu:     vecReLUAVX512,
		reluMask: vecReLUMaskAVX512,
		bnNorm: [3]func(src, xhat, out []float32, mean, invstd, gamma, beta float32){
			bnNormX: vecBNNormAVX512, bnNormStore: vecBNNormStoreAVX512, bnNormAcc: vecBNNormAccAVX512,
		},
		bnBack: vecBNBackAVX512,
	},
}
