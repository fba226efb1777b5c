//go:build amd64 && !purego

package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

//go:generate go -C _gen run ./q8pw -out ../q8pw_amd64.s -stubs ../q8pw_stub_amd64.go

const q8pwHaveAVX2 = true

// q8pwAsm lists the assembly micro-kernels the machine can run, by name,
// for the tests (each against q8pwGo).
var q8pwAsm = map[string]q8pwKernel{}

// q8dwAsm: the same for the depthwise kernels.
var q8dwAsm = map[string]q8dwKernel{}

// q8widenAsm: the same for the widening (each against widenU8).
var q8widenAsm = map[string]func(dst []int16, src []uint8){}

func init() {
	if cpu.Detected.AVX2 {
		q8pwAsm["avx2"] = q8pwAVX2
		q8pwImpl = q8pwAVX2
		q8dwAsm["avx2"] = q8dwAVX2
		q8dwImpl = q8dwAVX2
		q8widenAsm["avx2"] = q8widenAVX2
		q8widenImpl = q8widenAVX2
	}
}
