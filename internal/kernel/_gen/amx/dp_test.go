package main

import "testing"

// TestEvexDPBF16PS checks the hand encoder against GNU as 2.40
// (objdump -d of "vdpbf16ps %zmmR, %zmmS, %zmmD").
func TestEvexDPBF16PS(t *testing.T) {
	for _, c := range []struct {
		d, s, r int
		want    [6]byte
	}{
		{3, 18, 17, [6]byte{0x62, 0xb2, 0x6e, 0x40, 0x52, 0xd9}},
		{15, 24, 16, [6]byte{0x62, 0x32, 0x3e, 0x40, 0x52, 0xf8}},
		{0, 2, 1, [6]byte{0x62, 0xf2, 0x6e, 0x48, 0x52, 0xc1}},
		{31, 9, 25, [6]byte{0x62, 0x02, 0x36, 0x48, 0x52, 0xf9}},
	} {
		if got := evexDPBF16PS(c.d, c.s, c.r); got != c.want {
			t.Errorf("VDPBF16PS Z%d, Z%d, Z%d: % x, want % x", c.r, c.s, c.d, got, c.want)
		}
	}
}
