//go:build !amd64 || purego

package kernel

// amxTilesCall is never reached without the assembly: amxReady is false.
func amxTilesCall(*[14]uintptr) { panic("kernel: no AMX kernel in this build") }

// dpTilesCall is never reached without the assembly: dpReady is false.
func dpTilesCall(*[14]uintptr) { panic("kernel: no AVX512-BF16 kernel in this build") }

func amxPermit() bool { return false }

func bf16RowAVX512([]float32, []uint16)                 { panic("kernel: no assembly") }
func bf16PairsAVX512(_, _ []float32, _ []uint32, _ int) { panic("kernel: no assembly") }
func bf16ColsAVX512([]float32, []uint32)                { panic("kernel: no assembly") }
