package pth

import (
	"encoding/binary"
	"math"
)

// dtype describes one storage element type.
type dtype struct {
	name string // storage class name, e.g. "FloatStorage"
	size int    // bytes per element
}

var dtypes = map[string]*dtype{
	"FloatStorage":    {"FloatStorage", 4},
	"HalfStorage":     {"HalfStorage", 2},
	"BFloat16Storage": {"BFloat16Storage", 2},
	"DoubleStorage":   {"DoubleStorage", 8},
	"LongStorage":     {"LongStorage", 8},
	"IntStorage":      {"IntStorage", 4},
	"ShortStorage":    {"ShortStorage", 2},
	"CharStorage":     {"CharStorage", 1},
	"ByteStorage":     {"ByteStorage", 1},
	"BoolStorage":     {"BoolStorage", 1},
}

// at decodes element i of raw (little-endian); i must be in range.
func (d *dtype) at(raw []byte, i int) float32 {
	switch d.name {
	case "FloatStorage":
		return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	case "HalfStorage":
		return halfToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
	case "BFloat16Storage":
		return math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
	case "DoubleStorage":
		return float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
	case "LongStorage":
		return float32(int64(binary.LittleEndian.Uint64(raw[8*i:])))
	case "IntStorage":
		return float32(int32(binary.LittleEndian.Uint32(raw[4*i:])))
	case "ShortStorage":
		return float32(int16(binary.LittleEndian.Uint16(raw[2*i:])))
	case "CharStorage":
		return float32(int8(raw[i]))
	case "ByteStorage":
		return float32(raw[i])
	case "BoolStorage":
		if raw[i] != 0 {
			return 1
		}
		return 0
	}
	panic("pth: unknown dtype " + d.name) // unreachable: dtypes is closed
}

// decode fills dst with len(dst) consecutive elements starting at element start.
func (d *dtype) decode(dst []float32, raw []byte, start int) {
	if d.name == "FloatStorage" {
		b := raw[4*start : 4*(start+len(dst))]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return
	}
	for i := range dst {
		dst[i] = d.at(raw, start+i)
	}
}

// halfToFloat32 converts an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0:
		f := float32(mant) / (1 << 24) // zero or subnormal: mant * 2^-24
		if sign != 0 {
			f = -f
		}
		return f
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}
