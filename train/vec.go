package train

import "github.com/mobileone-go/mobileone/internal/kernel"

// Vector primitives of the trainer: the kernel package's SIMD vector
// kernels (pure Go with -tags purego or on other architectures).

func vdot64(a, b []float32) float64        { return kernel.Dot64(a, b) }
func vaxpy(alpha float32, x, y []float32)  { kernel.Axpy(alpha, x, y) }
func vadd(x, y []float32)                  { kernel.Add(x, y) }
func vscale(alpha float32, x, y []float32) { kernel.Scale(alpha, x, y) }
