package cpu

import "testing"

func TestBestAndForced(t *testing.T) {
	all := Features{AVX2: true, FMA: true, AVX512F: true, AVX512BW: true, AVX512DQ: true, AVX512VL: true}
	tests := []struct {
		f    Features
		want Level
	}{
		{Features{}, PureGo},
		{Features{AVX2: true}, PureGo}, // no FMA
		{Features{AVX2: true, FMA: true}, AVX2},
		{Features{AVX2: true, FMA: true, AVX512F: true}, AVX2}, // AVX-512 needs BW/DQ/VL too
		{all, AVX512},
	}
	for _, tc := range tests {
		if got := tc.f.Best(); got != tc.want {
			t.Errorf("%v.Best() = %v, want %v", tc.f, got, tc.want)
		}
	}
	for _, tc := range []struct {
		env  string
		want Level
		ok   bool
	}{{"purego", PureGo, true}, {"AVX2", AVX2, true}, {"avx512", AVX512, true}, {"", PureGo, false}, {"auto", PureGo, false}} {
		t.Setenv("MOBILEONE_KERNELS", tc.env)
		if l, ok := Forced(); l != tc.want || ok != tc.ok {
			t.Errorf("MOBILEONE_KERNELS=%q: Forced() = %v, %v", tc.env, l, ok)
		}
		if s := Selected(); s > Detected.Best() {
			t.Errorf("Selected() = %v beyond what the CPU has (%v)", s, Detected.Best())
		}
	}
	if all.String() == "none" || (Features{}).String() != "none" {
		t.Error("Features.String")
	}
}
