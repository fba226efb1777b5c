package quant

import (
	"testing"

	"github.com/mobileone-go/mobileone/internal/zoo"
)

// BenchmarkInt8Builtin: one image through the int8 built-in model.
func BenchmarkInt8Builtin(b *testing.B) {
	m, err := zoo.Default()
	if err != nil {
		b.Fatal(err)
	}
	imgs := testImages{4}
	cal, err := Calibrate(m, imgs)
	if err != nil {
		b.Fatal(err)
	}
	q, err := cal.Quantize(Options{})
	if err != nil {
		b.Fatal(err)
	}
	p, err := q.NewPlan(1, 28, 28)
	if err != nil {
		b.Fatal(err)
	}
	x, _ := imgs.Image(0)
	b.ResetTimer()
	for range b.N {
		if _, err := p.Run(x); err != nil {
			b.Fatal(err)
		}
	}
}
