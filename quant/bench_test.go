package quant

import (
	"os"
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

// BenchmarkInt8File: one image through the int8 model in
// $MOBILEONE_INT8_FILE at its preprocessing's size.
func BenchmarkInt8File(b *testing.B) {
	path := os.Getenv("MOBILEONE_INT8_FILE")
	if path == "" {
		b.Skip("MOBILEONE_INT8_FILE names an int8 model")
	}
	q, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	c := q.Preprocessing().Crop
	p, err := q.NewPlan(1, c, c)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, q.Config.InChannels*c*c)
	for i := range x {
		x[i] = float32(i%17) / 17
	}
	b.ResetTimer()
	for range b.N {
		if _, err := p.Run(x); err != nil {
			b.Fatal(err)
		}
	}
}
