package quant

import (
	"math"
	"testing"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/internal/kernel/ref"
	"github.com/mobileone-go/mobileone/internal/zoo"
)

type randImages struct{ n, size int }

func (r randImages) Len() int { return r.n }
func (r randImages) Image(i int) ([]float32, error) {
	x := make([]float32, r.size)
	for j := range x {
		x[j] = float32(math.Sin(float64(i*7919+j*31))) * 1.5
	}
	return x, nil
}

func TestDebugPW3(t *testing.T) {
	m, _ := zoo.Default()
	cal, _ := Calibrate(m, randImages{4, 784})
	q, _ := cal.Quantize(Options{})
	p, _ := graph.NewInt8Plan(cal.g, q.Spec, 1)
	x, _ := randImages{4, 784}.Image(0)
	p.Run(x)
	for _, pair := range [][2]string{{"stage1.0.reparam_conv", "stage1.1.reparam_conv"}, {"stage0.reparam_conv", "stage1.0.reparam_conv"}} {
		in, iq := p.QuantizedValue(pair[0])
		out, oq := p.QuantizedValue(pair[1])
		qc := q.Spec.Conv[pair[1]]
		var nd *graph.Node
		for _, n := range cal.g.Nodes {
			if n.Name == pair[1] {
				nd = n
			}
		}
		xs, ys := cal.g.Shapes[nd.In[0]], cal.g.Shapes[nd.Out]
		s := ref.QConvShape{H: xs[1], W: xs[2], Cin: xs[0], Cout: ys[0], K: nd.K, KW: nd.KW, Stride: nd.Stride, Pad: nd.Pad, PadW: nd.PadW,
			Dilation: 1, Groups: nd.Groups, OutH: ys[1], OutW: ys[2], Hi: 255}
		mult := make([]float32, ys[0])
		for o := range mult {
			mult[o] = float32(float64(iq.Scale) * float64(qc.WScale[o]) / float64(oq.Scale))
		}
		want := make([]uint8, len(out))
		ref.QConv(s, in, qc.W, qc.Bias, mult, want)
		diff := 0
		for i := range want {
			if want[i] != out[i] {
				diff++
			}
		}
		t.Logf("%s: %d of %d differ; %v vs %v", pair[1], diff, len(want), want[:8], out[:8])
	}
}

func TestDebugPW4(t *testing.T) {
	m, _ := zoo.Default()
	cal, _ := Calibrate(m, randImages{4, 784})
	q, _ := cal.Quantize(Options{})
	p, _ := graph.NewInt8Plan(cal.g, q.Spec, 1)
	x, _ := randImages{4, 784}.Image(0)
	p.Run(x)
	in, iq := p.QuantizedValue("stage1.0.reparam_conv")
	out, oq := p.QuantizedValue("stage1.1.reparam_conv")
	qc := q.Spec.Conv["stage1.1.reparam_conv"]
	nd := cal.g.Nodes[3]
	w, b := nd.ConvWeights()
	t.Log(iq, oq)
	for _, o := range []int{0, 1, 2, 3} {
		for _, px := range []int{0, 1, 2, 50} {
			yf := float64(b[o])
			yd := float64(qc.Bias[o]) * float64(iq.Scale) * float64(qc.WScale[o])
			for c := 0; c < 48; c++ {
				xv := float64(in[px*48+c]) * float64(iq.Scale)
				yf += float64(w[o*48+c]) * xv
				yd += float64(qc.W[o*48+c]) * float64(qc.WScale[o]) * xv
			}
			t.Logf("o %d px %d: float %.4f  dequant-weights %.4f  int8 out %.4f", o, px, yf, yd, float64(out[px*48+o])*float64(oq.Scale))
		}
	}
}
