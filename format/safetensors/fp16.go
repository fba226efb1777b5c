package safetensors

import "math"

// Float32ToFloat16 converts f to IEEE 754 binary16 bits, rounding to the
// nearest value with ties to even. Values too small for the smallest
// subnormal round to a signed zero, values too large become infinity, and
// NaNs stay NaNs with the sign and the top bits of the payload kept (as
// numpy does).
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00 // infinity
		}
		h := uint16(0x7c00 | mant>>13)
		if h == 0x7c00 {
			h++ // payload only in the dropped bits: keep it a NaN
		}
		return sign | h
	}
	e := exp - 127 + 15 // binary16 biased exponent
	switch {
	case e >= 0x1f:
		return sign | 0x7c00 // overflow
	case e <= 0:
		// Subnormal (or zero) in binary16: the result is the 24-bit
		// significand m scaled by 2^(exp-126), i.e. m >> (14-e) units of 2^-24.
		if e < -10 {
			return sign // below half the smallest subnormal (float32 zeros and subnormals too): zero
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && h&1 == 1 {
			h++ // may carry into the smallest normal, which is correct
		}
		return sign | uint16(h)
	}
	h := uint16(e)<<10 | uint16(mant>>13)
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry into the exponent is correct, up to infinity
	}
	return sign | h
}

// Float16ToFloat32 converts IEEE 754 binary16 bits to float32 exactly.
// Subnormals, infinities and NaN payloads are preserved.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		// Zero or subnormal: mant * 2^-24, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// bfloat16ToFloat32 converts bfloat16 bits to float32 exactly.
func bfloat16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}
