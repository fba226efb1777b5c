//go:build amd64 && !purego

package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

//go:generate go -C _gen run ./peak -out ../peak_amd64.s -stubs ../peak_stub_amd64.go

func init() {
	if !cpu.Detected.AVX2 || !cpu.Detected.FMA {
		return
	}
	peakFamilies = []PeakFamily{
		{Name: "VFMADD231PS ymm (float32 FMA)", Use: "float32 and bf16 inference (this build's bf16 computes on float32 FMA)", MACsPerIter: 12 * 8, run: peakFMAAVX2},
		{Name: "VPMADDWD + VPADDD ymm (exact int16 pairs into int32)", Use: "our exact int8 kernels", MACsPerIter: 6 * 16, run: peakMADDWDAVX2},
		{Name: "VPMADDWD ymm alone", Use: "(the instruction's own rate)", MACsPerIter: 12 * 16, run: peakMADDWDOnlyAVX2},
		{Name: "VPMADDUBSW + VPMADDWD + VPADDD ymm (u8×s8, int16 pair sums saturate)", Use: "ONNX Runtime's int8 without VNNI; exact here only for 7-bit weights", MACsPerIter: 6 * 32, run: peakMADDUBSWAVX2},
	}
}
