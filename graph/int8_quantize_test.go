package graph

import (
	"math"
	"math/rand/v2"
	"testing"
)

// quantizeRef is ONNX QuantizeLinear literally: saturate(roundHalfEven(x /
// Scale) + Zero), the division in float32, the rest in float64.
func quantizeRef(q QParam, x float32) uint8 {
	f := float64(float32(x / q.Scale))
	if math.IsNaN(f) {
		return uint8(q.Zero)
	}
	r := math.RoundToEven(f) + float64(q.Zero)
	return uint8(max(0, min(255, r)))
}

// TestQuantizeFast: QParam.Quantize's magic-number rounding equals the
// literal formula on ties, saturation, infinities, NaN and random values.
func TestQuantizeFast(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	inf := float32(math.Inf(1))
	special := []float32{0, -0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, 128.5, 254.5, 255.5, 256.5, -255.5, -256.5,
		1e30, -1e30, inf, -inf, float32(math.NaN()), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		math.MaxFloat32, -math.MaxFloat32, 4194304.5, 8388609}
	for _, q := range []QParam{{1, 0}, {1, 128}, {1, 255}, {0.5, 3}, {0.0078125, 77}, {3e-5, 200}, {1e-38, 1}} {
		for _, x := range special {
			if got, want := q.Quantize(x), quantizeRef(q, x); got != want {
				t.Fatalf("Quantize(%v) with %+v = %d, want %d", x, q, got, want)
			}
		}
	}
	for range 1000000 {
		q := QParam{Scale: float32(math.Ldexp(0.5+r.Float64(), -r.IntN(12))), Zero: int32(r.IntN(256))}
		x := float32((r.Float64()*2 - 1) * math.Ldexp(1, r.IntN(12)-3))
		if r.IntN(4) == 0 { // ties: a half-integer multiple of the scale
			x = (float32(r.IntN(1200)-600) + 0.5) * q.Scale
		}
		if got, want := q.Quantize(x), quantizeRef(q, x); got != want {
			t.Fatalf("Quantize(%v) with %+v = %d, want %d", x, q, got, want)
		}
	}
}
