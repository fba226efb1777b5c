package graph

import (
	"time"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// The head: when the graph ends in a Linear layer on a vector (a
// classifier after global pooling), Run computes every image's vector
// first and applies the layer once for the whole batch
// (kernel.LinearBatchLimit), so that its weights (8 MB in MobileOne S3/S4,
// 8 MB in ResNet-50) are read once per batch instead of once per image;
// each output is bit-identical to the per-image kernel.Linear.

// findHead sets p.head if the graph ends in such a layer.
func (p *Plan) findHead() {
	g := p.g
	last := g.Nodes[len(g.Nodes)-1]
	if len(g.Nodes) < 2 || last.Kind != Linear || last.Out != g.Output || len(g.Outs) > 0 ||
		len(g.Shapes[last.In[0]]) != 1 || p.alt[last.In[0]] != nil {
		return
	}
	for _, n := range g.Nodes[1 : len(g.Nodes)-1] {
		for _, v := range n.In {
			if v == last.Out {
				return
			}
		}
	}
	p.head = last
	p.pooled = make([]float32, p.N*g.Shapes[last.In[0]][0])
}

// runHead applies the head to the batch's vectors.
func (p *Plan) runHead() {
	h := p.head
	if h == nil {
		return
	}
	var t0 time.Time
	if p.Profile {
		t0 = time.Now()
	}
	d, o := p.g.Shapes[h.In[0]][0], p.g.Shapes[h.Out][0]
	kernel.LinearBatchLimit(p.N, d, o, p.pooled, h.w, h.b, p.out, 0)
	actF32(p.out, h.Act)
	if p.Profile {
		if p.Times == nil {
			p.Times = make([]time.Duration, len(p.g.Nodes)-1)
		}
		p.Times[len(p.Times)-1] += time.Since(t0)
	}
}
