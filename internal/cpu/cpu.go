// Package cpu reads the processor's features once and decides which kernel
// implementation family may run. It is the only place that knows the ISA;
// internal/kernel asks it, model code never does.
//
// MOBILEONE_KERNELS forces a family: "purego" (no assembly), "avx2" (AVX2+FMA
// at most) or "avx512"; unset or "auto" picks the best the CPU has.
package cpu

import (
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// Level is a kernel implementation family, ordered by capability.
type Level int

// The kernel families.
const (
	PureGo Level = iota // portable Go, the twin of every assembly kernel
	AVX2                // AVX2 + FMA3 (amd64)
	AVX512              // AVX-512 F/BW/DQ/VL (amd64)
)

func (l Level) String() string {
	switch l {
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	}
	return "purego"
}

// Features lists what the processor supports, as seen at start-up.
type Features struct {
	AVX2, FMA, AVX512F, AVX512BW, AVX512DQ, AVX512VL, AVX512BF16, AVX512VNNI bool
	// AMXTile and AMXBF16: the tile unit and its bfloat16 dot products
	// (kernel.GemmBF16, opt-in for training).
	AMXTile, AMXBF16 bool
}

// Detected holds the features read at start-up.
var Detected = Features{
	AVX2: cpu.X86.HasAVX2, FMA: cpu.X86.HasFMA,
	AVX512F: cpu.X86.HasAVX512F, AVX512BW: cpu.X86.HasAVX512BW, AVX512DQ: cpu.X86.HasAVX512DQ,
	AVX512VL: cpu.X86.HasAVX512VL, AVX512BF16: cpu.X86.HasAVX512BF16, AVX512VNNI: cpu.X86.HasAVX512VNNI,
	AMXTile: cpu.X86.HasAMXTile, AMXBF16: cpu.X86.HasAMXBF16,
}

// String lists the present features.
func (f Features) String() string {
	var s []string
	add := func(ok bool, name string) {
		if ok {
			s = append(s, name)
		}
	}
	add(f.AVX2, "avx2")
	add(f.FMA, "fma")
	add(f.AVX512F, "avx512f")
	add(f.AVX512BW, "avx512bw")
	add(f.AVX512DQ, "avx512dq")
	add(f.AVX512VL, "avx512vl")
	add(f.AVX512BF16, "avx512bf16")
	add(f.AVX512VNNI, "avx512vnni")
	add(f.AMXTile, "amx-tile")
	add(f.AMXBF16, "amx-bf16")
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// Best is the most capable family the processor supports (amd64 only; other
// architectures always get PureGo from the kernels' build tags).
func (f Features) Best() Level {
	switch {
	case f.AVX512F && f.AVX512BW && f.AVX512DQ && f.AVX512VL && f.AVX2 && f.FMA:
		return AVX512
	case f.AVX2 && f.FMA:
		return AVX2
	}
	return PureGo
}

// Forced returns the family named by MOBILEONE_KERNELS, if any.
func Forced() (Level, bool) {
	switch strings.ToLower(os.Getenv("MOBILEONE_KERNELS")) {
	case "purego", "go", "generic":
		return PureGo, true
	case "avx2":
		return AVX2, true
	case "avx512":
		return AVX512, true
	}
	return PureGo, false
}

// Selected is the family the kernels use: the forced one if the CPU has it
// (never more than the CPU supports), else the best.
func Selected() Level {
	best := Detected.Best()
	if l, ok := Forced(); ok && l <= best {
		return l
	}
	return best
}
