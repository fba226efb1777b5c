// Command peak generates the peak-rate loops of package kernel for AVX2:
// internal/kernel/peak_amd64.s and its Go stub.
//
//	cd internal/kernel/_gen && go run ./peak -out ../peak_amd64.s -stubs ../peak_stub_amd64.go
//
// Each loop runs n iterations of independent chains of one instruction
// family, enough chains to cover the instructions' latency, on registers
// only (no memory traffic), so that its rate is the core's throughput for
// that family: the ceiling any kernel built on it can reach (peak.go).
//
//   - peakFMAAVX2: 12 VFMADD231PS chains, 8 float32 multiply-adds each;
//   - peakMADDWDAVX2: 6 chains of VPMADDWD + VPADDD (16 exact int16
//     multiply-adds into int32: the exact int8 kernels' arithmetic);
//   - peakMADDWDOnlyAVX2: 12 VPMADDWD alone (the instruction's own rate);
//   - peakMADDUBSWAVX2: 6 chains of VPMADDUBSW + VPMADDWD by ones + VPADDD
//     (32 u8×s8 multiply-adds, the int16 pair sums saturating: ONNX
//     Runtime's int8 path on CPUs without VNNI).
package main

import (
	"flag"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// loop emits: n := param n; if n ≤ 0 return; body once per iteration.
func loop(name, doc string, setup func(), body func()) {
	TEXT(name, NOSPLIT, "func(n int)")
	Doc(name + " " + doc + "; see peak.go.")
	n := Load(Param("n"), GP64())
	setup()
	TESTQ(n, n)
	JLE(LabelRef(name + "_done"))
	Label(name + "_loop")
	body()
	DECQ(n)
	JNZ(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

func zeros(k int) []VecVirtual {
	v := make([]VecVirtual, k)
	for i := range v {
		v[i] = YMM()
		VPXOR(v[i], v[i], v[i])
	}
	return v
}

func main() {
	flag.Parse()
	if f := flag.Lookup("pkg"); f.Value.String() == "" {
		_ = f.Value.Set("kernel")
	}
	ConstraintExpr("amd64,!purego")

	var acc, src []VecVirtual
	loop("peakFMAAVX2", "runs n iterations of 12 independent VFMADD231PS (96 float32 multiply-adds)",
		func() { acc, src = zeros(12), zeros(2) },
		func() {
			for _, a := range acc {
				VFMADD231PS(src[0], src[1], a)
			}
		})

	var tmp []VecVirtual
	loop("peakMADDWDAVX2", "runs n iterations of 6 independent VPMADDWD + VPADDD (96 int16 multiply-adds into int32)",
		func() { acc, tmp, src = zeros(6), zeros(6), zeros(2) },
		func() {
			for i := range acc {
				VPMADDWD(src[0], src[1], tmp[i])
			}
			for i := range acc {
				VPADDD(tmp[i], acc[i], acc[i])
			}
		})

	loop("peakMADDWDOnlyAVX2", "runs n iterations of 12 independent VPMADDWD (192 int16 multiply-adds)",
		func() { tmp, src = zeros(12), zeros(2) },
		func() {
			for _, t := range tmp {
				VPMADDWD(src[0], src[1], t)
			}
		})

	loop("peakMADDUBSWAVX2", "runs n iterations of 6 independent VPMADDUBSW + VPMADDWD (by ones) + VPADDD (192 u8×s8 multiply-adds)",
		func() { acc, tmp, src = zeros(6), zeros(6), zeros(3) },
		func() {
			for i := range acc {
				VPMADDUBSW(src[0], src[1], tmp[i])
			}
			for i := range acc {
				VPMADDWD(src[2], tmp[i], tmp[i])
			}
			for i := range acc {
				VPADDD(tmp[i], acc[i], acc[i])
			}
		})
	Generate()
}
