package graph

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/tensor"
)

// Load binds a state dict to the graph's weights by key, strictly: a
// missing key, an unused key (but BatchNorm's num_batches_tracked, which
// inference does not use) or a shape that differs is an error naming the
// key and both shapes. The tensors are copied. The graph is finalised.
func (g *Graph) Load(sd map[string]*tensor.Tensor) error {
	used := make(map[string]bool, len(sd))
	var missing []string
	for _, t := range g.Tensors() {
		src, ok := sd[t.Key]
		if !ok {
			missing = append(missing, t.Key)
			continue
		}
		used[t.Key] = true
		if tensor.NumelOf(src.Shape) != tensor.NumelOf(t.Shape) || !sameShapeLoose(src.Shape, t.Shape) {
			return fmt.Errorf("%s: key %q has shape %s, the architecture wants %s", g.Name, t.Key, tensor.ShapeString(src.Shape), tensor.ShapeString(t.Shape))
		}
		t.Data = append(t.Data[:0], src.Data...)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%s: %d keys missing from the checkpoint: %s", g.Name, len(missing), listKeys(missing))
	}
	var unused []string
	for k := range sd {
		if !used[k] && !strings.HasSuffix(k, "num_batches_tracked") {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		return fmt.Errorf("%s: %d checkpoint keys the architecture does not have: %s", g.Name, len(unused), listKeys(unused))
	}
	return g.Finalize()
}

// sameShapeLoose accepts a linear weight stored as a 1×1 conv and vice versa.
func sameShapeLoose(a, b []int) bool {
	trim := func(s []int) []int {
		for len(s) > 2 && s[len(s)-1] == 1 {
			s = s[:len(s)-1]
		}
		return s
	}
	return tensor.SameShape(trim(a), trim(b))
}

func listKeys(k []string) string {
	if len(k) > 6 {
		return strings.Join(k[:6], ", ") + fmt.Sprintf(", … (%d more)", len(k)-6)
	}
	return strings.Join(k, ", ")
}

// StateDict returns the graph's weights by key (sharing the data), with
// the keys in node order.
func (g *Graph) StateDict() ([]string, map[string]*tensor.Tensor) {
	var keys []string
	sd := make(map[string]*tensor.Tensor)
	for _, t := range g.Tensors() {
		keys = append(keys, t.Key)
		sd[t.Key] = &tensor.Tensor{Shape: append([]int(nil), t.Shape...), Data: t.Data}
	}
	return keys, sd
}

// InitRandom fills every weight with seeded values of the scale PyTorch's
// default initialisation gives (uniform ±1/√fan_in for weights and biases),
// BatchNorm with γ 1, β 0, mean 0 and variance 1, LayerNorm with 1 and 0,
// and finalises the graph. For benchmarks and tests: the network's outputs
// stay of order one.
func (g *Graph) InitRandom(seed uint64) {
	r := newSplitMix(seed)
	for _, n := range g.Nodes {
		fan := 1
		for i := range n.Tensors {
			t := &n.Tensors[i]
			t.Data = make([]float32, tensor.NumelOf(t.Shape))
			switch {
			case strings.HasSuffix(t.Key, "running_var"):
				fill(t.Data, 1)
			case strings.HasSuffix(t.Key, "running_mean"):
			case n.BN && i >= len(n.Tensors)-4 && strings.HasSuffix(t.Key, ".weight"), n.Kind == LayerNorm && i == 0:
				fill(t.Data, 1)
			case n.BN && i >= len(n.Tensors)-4, n.Kind == LayerNorm:
			default:
				if len(t.Shape) >= 2 {
					fan = tensor.NumelOf(t.Shape[1:])
				}
				bound := 1 / math.Sqrt(float64(fan))
				if len(t.Shape) >= 2 {
					bound *= math.Sqrt(3) // Kaiming-uniform-like gain keeps activations from vanishing
				}
				for j := range t.Data {
					t.Data[j] = float32((2*r.float() - 1) * bound)
				}
			}
		}
	}
	if err := g.Finalize(); err != nil {
		panic(err) // every tensor was just filled
	}
}

func fill(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}

// Finalize folds every BatchNorm into its convolution (in float64) and
// checks that every weight is present. Executors call it if needed.
func (g *Graph) Finalize() error {
	for _, n := range g.Nodes {
		for _, t := range n.Tensors {
			if len(t.Data) != tensor.NumelOf(t.Shape) {
				return fmt.Errorf("%s: weight %q is not loaded", g.Name, t.Key)
			}
		}
		switch n.Kind {
		case Conv:
			n.w, n.b = foldConv(n)
		case Linear:
			n.w = n.Tensors[0].Data
			n.b = nil
			if len(n.Tensors) > 1 {
				n.b = n.Tensors[1].Data
			}
		}
	}
	g.final = true
	return nil
}

// foldConv returns the convolution's effective weight and bias: with a
// BatchNorm, t = γ/√(var+eps), W' = W·t per output channel,
// b' = β + (b − mean)·t.
func foldConv(n *Node) (w, b []float32) {
	wt := n.Tensors[0]
	cout := wt.Shape[0]
	var bias []float32
	i := 1
	if n.HasBias {
		bias = n.Tensors[1].Data
		i = 2
	}
	if !n.BN {
		if bias == nil {
			bias = make([]float32, cout)
		}
		return wt.Data, bias
	}
	gamma, beta, mean, variance := n.Tensors[i].Data, n.Tensors[i+1].Data, n.Tensors[i+2].Data, n.Tensors[i+3].Data
	per := len(wt.Data) / cout
	w = make([]float32, len(wt.Data))
	b = make([]float32, cout)
	for o := 0; o < cout; o++ {
		t := float64(gamma[o]) / math.Sqrt(float64(variance[o])+n.BNEps)
		for j := o * per; j < (o+1)*per; j++ {
			w[j] = float32(float64(wt.Data[j]) * t)
		}
		b0 := 0.0
		if bias != nil {
			b0 = float64(bias[o])
		}
		b[o] = float32(float64(beta[o]) + (b0-float64(mean[o]))*t)
	}
	return w, b
}

// ConvWeights returns a Conv node's effective (BatchNorm-folded) weight
// (Cout, Cin/groups, K, KW) and bias (Cout); the graph must be finalised.
func (n *Node) ConvWeights() (w, b []float32) { return n.w, n.b }

// splitMix is a small seeded generator (SplitMix64).
type splitMix struct{ s uint64 }

func newSplitMix(seed uint64) *splitMix { return &splitMix{seed} }

func (r *splitMix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *splitMix) float() float64 { return float64(r.next()>>11) / (1 << 53) }
