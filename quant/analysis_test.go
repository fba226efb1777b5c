package quant

import (
	"fmt"
	"math"
	"os"
	"sort"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/tensor"
)

func TestAnalysis(t *testing.T) {
	if os.Getenv("ANALYSE") == "" {
		t.Skip()
	}
	m, _ := zoo.Default()
	ds, _ := data.LoadFashionMNIST(data.FashionMNISTDir, "train")
	p := m.Preprocessing()
	tr := data.EvalTransform(0, 28, 1, []float32{p.Mean[0]}, []float32{p.Std[0]})
	g, _ := m.Graph(28, 28)
	g.Finalize()
	vals := map[string][]float32{}
	for i := 0; i < 16; i++ {
		img, _, _ := ds.Get(i * 1000)
		x, _ := tr.Tensor(img, nil)
		_, v, _ := g.Ref(&tensor.Tensor{Shape: []int{1, 1, 28, 28}, Data: x.Data})
		for _, nd := range g.Nodes[1:8] {
			vals[nd.Name] = append(vals[nd.Name], v[nd.Out]...)
		}
	}
	for _, nd := range g.Nodes[1:8] {
		v := append([]float32(nil), vals[nd.Name]...)
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		nz := 0
		for _, x := range v {
			if x > 0 {
				nz++
			}
		}
		q := func(f float64) float32 { return v[int(f*float64(len(v)-1))] }
		t.Logf("%s nonzero %.2f p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f p99.99 %.3f max %.3f", nd.Name, float64(nz)/float64(len(v)), q(.5), q(.9), q(.99), q(.999), q(.9999), v[len(v)-1])
		w, _ := nd.ConvWeights()
		cout := g.Shapes[nd.Out][0]
		per := len(w) / cout
		var ratios []float64
		for o := 0; o < cout; o++ {
			var mx, ss float64
			for _, x := range w[o*per : (o+1)*per] {
				mx = math.Max(mx, math.Abs(float64(x)))
				ss += float64(x * x)
			}
			ratios = append(ratios, mx/math.Sqrt(ss/float64(per)))
		}
		sort.Float64s(ratios)
		t.Logf("   weight max/rms per channel: median %.1f max %.1f", ratios[len(ratios)/2], ratios[len(ratios)-1])
	}
}

func TestAnalysis2(t *testing.T) {
	if os.Getenv("ANALYSE") == "" {
		t.Skip()
	}
	m, _ := zoo.Default()
	ds, _ := data.LoadFashionMNIST(data.FashionMNISTDir, "train")
	p := m.Preprocessing()
	tr := data.EvalTransform(0, 28, 1, []float32{p.Mean[0]}, []float32{p.Std[0]})
	g, _ := m.Graph(28, 28)
	g.Finalize()
	nd := g.Nodes[3] // stage1.1
	w, _ := nd.ConvWeights()
	sum := make([]float64, 48)
	sq := make([]float64, 48)
	mx := make([]float64, 48)
	cnt := 0.0
	for i := 0; i < 32; i++ {
		img, _, _ := ds.Get(i * 1000)
		x, _ := tr.Tensor(img, nil)
		_, v, _ := g.Ref(&tensor.Tensor{Shape: []int{1, 1, 28, 28}, Data: x.Data})
		in := v[nd.In[0]]
		for c := 0; c < 48; c++ {
			for _, f := range in[c*196 : (c+1)*196] {
				sum[c] += float64(f)
				sq[c] += float64(f * f)
				mx[c] = math.Max(mx[c], float64(f))
			}
		}
		cnt += 196
	}
	for o := 0; o < 48; o++ {
		best := 0
		for c := 1; c < 48; c++ {
			if math.Abs(float64(w[o*48+c])) > math.Abs(float64(w[o*48+best])) {
				best = c
			}
		}
		c := best
		mean := sum[c] / cnt
		t.Logf("out %d: biggest |w| %.2f on in %d (mean %.4f rms %.4f max %.3f); next biggest ~", o, w[o*48+c], c, mean, math.Sqrt(sq[c]/cnt), mx[c])
	}
}

func TestAnalysis3(t *testing.T) {
	if os.Getenv("ANALYSE") == "" {
		t.Skip()
	}
	m, _ := zoo.Default()
	g, _ := m.Graph(28, 28)
	g.Finalize()
	for _, ni := range []int{1, 2, 3, 4, 5, 6} {
		nd := g.Nodes[ni]
		w, b := nd.ConvWeights()
		cout := g.Shapes[nd.Out][0]
		per := len(w) / cout
		dead := 0
		var ex []string
		for o := 0; o < cout; o++ {
			var mx float64
			for _, v := range w[o*per : (o+1)*per] {
				mx = math.Max(mx, math.Abs(float64(v)))
			}
			if mx < 1e-3 {
				dead++
				if len(ex) < 4 {
					ex = append(ex, fmt.Sprintf("%d:max|w| %.2g b %.3f", o, mx, b[o]))
				}
			}
		}
		t.Logf("%s: %d of %d channels with max|w| < 1e-3: %v", nd.Name, dead, cout, ex)
	}
}
