package train

import (
	"math"
	"testing"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

func vecParam(name string, noDecay bool, w ...float32) Param {
	wt, _ := tensor.FromData(append([]float32(nil), w...), len(w))
	return Param{Name: name, W: wt, G: tensor.New(len(w)), NoDecay: noDecay}
}

// TestSGDRule follows torch.optim.SGD (dampening 0) step by step in float64.
func TestSGDRule(t *testing.T) {
	for _, nesterov := range []bool{false, true} {
		ps := []Param{vecParam("a", false, []float32{1, -2}...), vecParam("b", true, []float32{0.5}...)}
		copy(ps[0].G.Data, []float32{0.3, 0.1})
		ps[1].G.Data[0] = -0.2
		lr, mom, wd := 0.1, 0.9, 0.01
		opt := NewSGD(ps, lr, mom, wd, nesterov)
		type st struct{ w, buf float64 }
		ref := []st{{1, 0}, {-2, 0}, {0.5, 0}}
		decays := []bool{true, true, false}
		grads := [][]float64{{0.3, 0.1, -0.2}, {-0.5, 0.25, 0.7}, {0.05, 0.05, 0.05}}
		for step, g := range grads {
			copy(ps[0].G.Data, []float32{float32(g[0]), float32(g[1])})
			ps[1].G.Data[0] = float32(g[2])
			opt.Step()
			for i := range ref {
				d := g[i]
				if decays[i] {
					d += wd * ref[i].w
				}
				if step == 0 {
					ref[i].buf = d
				} else {
					ref[i].buf = mom*ref[i].buf + d
				}
				if nesterov {
					d += mom * ref[i].buf
				} else {
					d = ref[i].buf
				}
				ref[i].w -= lr * d
			}
			got := []float32{ps[0].W.Data[0], ps[0].W.Data[1], ps[1].W.Data[0]}
			for i := range ref {
				if math.Abs(float64(got[i])-ref[i].w) > 1e-6 {
					t.Errorf("nesterov=%v step %d param %d: %v, want %v", nesterov, step, i, got[i], ref[i].w)
				}
			}
		}
	}
}

// TestSGDStateResume checks that State/LoadState resume exactly.
func TestSGDStateResume(t *testing.T) {
	mk := func() []Param {
		return []Param{vecParam("a", false, 1, 2, 3), vecParam("b", true, -1)}
	}
	grads := [][]float32{{0.1, -0.2, 0.3, 0.4}, {0.5, 0.1, -0.1, -0.3}, {0.2, 0.2, 0.2, 0.2}, {-0.4, 0, 0.1, 1}}
	setG := func(ps []Param, g []float32) {
		copy(ps[0].G.Data, g[:3])
		ps[1].G.Data[0] = g[3]
	}
	full := mk()
	o := NewSGD(full, 0.1, 0.9, 1e-2, true)
	for _, g := range grads {
		setG(full, g)
		o.Step()
	}
	part := mk()
	o1 := NewSGD(part, 0.1, 0.9, 1e-2, true)
	for _, g := range grads[:2] {
		setG(part, g)
		o1.Step()
	}
	st := o1.State()
	if len(st) != 2 || !tensor.SameShape(st["a"].Shape, []int{3}) {
		t.Fatalf("state %v", st)
	}
	o2 := NewSGD(part, 0.1, 0.9, 1e-2, true)
	if err := o2.LoadState(st); err != nil {
		t.Fatal(err)
	}
	st["a"].Data[0] = 1e9 // State returns copies
	for _, g := range grads[2:] {
		setG(part, g)
		o2.Step()
	}
	for i := range full {
		for j := range full[i].W.Data {
			if full[i].W.Data[j] != part[i].W.Data[j] {
				t.Errorf("resumed %s[%d] = %v, uninterrupted %v", full[i].Name, j, part[i].W.Data[j], full[i].W.Data[j])
			}
		}
	}
	bad := map[string]*tensor.Tensor{"zzz": tensor.New(1)}
	if err := o2.LoadState(bad); err == nil {
		t.Error("unknown key accepted")
	}
	bad = map[string]*tensor.Tensor{"a": tensor.New(2)}
	if err := o2.LoadState(bad); err == nil {
		t.Error("wrong shape accepted")
	}
	o2.SetLR(0.5)
	o2.SetWeightDecay(0)
	if o2.LR() != 0.5 || o2.WeightDecay() != 0 {
		t.Error("SetLR/SetWeightDecay")
	}
}

func TestEMA(t *testing.T) {
	m, net := tinyNet(t, tinyConfig, 8)
	w0 := m.Linear.Weight.Data[3]
	rm0 := m.Stem.Convs[0].BN.RunningMean.Data[1]
	e := NewEMA(m, 0)
	if e.Decay != DefaultEMADecay {
		t.Errorf("default decay %v", e.Decay)
	}
	e.Decay = 0.9
	x := randInput(9, 2, 3, 16, 16)
	net.ZeroGrad()
	_, dl := CrossEntropy(net.Forward(x, true), []int{1, 2}, 0.1)
	net.Backward(dl)
	NewSGD(net.Params(), 0.1, 0.9, 0, false).Step()
	if err := e.Update(m); err != nil {
		t.Fatal(err)
	}
	w1 := m.Linear.Weight.Data[3]
	rm1 := m.Stem.Convs[0].BN.RunningMean.Data[1]
	c, err := e.Copy()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Linear.Weight.Data[3], 0.9*w0+0.1*w1; math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("EMA weight %v, want %v", got, want)
	}
	if got, want := c.Stem.Convs[0].BN.RunningMean.Data[1], 0.9*rm0+0.1*rm1; math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("EMA running mean %v, want %v", got, want)
	}
	if c.Stem.Convs[0].BN.NumBatchesTracked != m.Stem.Convs[0].BN.NumBatchesTracked {
		t.Error("num_batches_tracked not copied")
	}
	if m.Linear.Weight.Data[3] != w1 {
		t.Error("Copy changed the model")
	}
	if err := e.Apply(m); err != nil {
		t.Fatal(err)
	}
	if m.Linear.Weight.Data[3] != c.Linear.Weight.Data[3] {
		t.Error("Apply did not load the average")
	}
}

// UpdateAt warms the decay up: at step 0 it is 1/10, so the average moves
// 90 % of the way to the model; later it is capped at Decay.
func TestEMAWarmup(t *testing.T) {
	cfg := model.Config{Channels: [5]int{4, 4, 4, 4, 4}, Blocks: [4]int{1, 1, 1, 1}, K: 1, NumClasses: 2, InChannels: 1, StemStride: 1}
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEMA(m, 0.99)
	w := m.Linear.Weight
	old := w.Data[0]
	w.Data[0] = old + 1
	if err := e.UpdateAt(m, 0); err != nil {
		t.Fatal(err)
	}
	_, sd := e.StateDict()
	if got, want := sd["linear.weight"].Data[0], old+0.9; math.Abs(float64(got-want)) > 1e-6 {
		t.Errorf("after UpdateAt(0): %v, want %v", got, want)
	}
	before := sd["linear.weight"].Data[0]
	w.Data[0] = before + 1
	if err := e.UpdateAt(m, 100000); err != nil {
		t.Fatal(err)
	}
	if got, want := sd["linear.weight"].Data[0], before+0.01; math.Abs(float64(got-want)) > 1e-5 {
		t.Errorf("late UpdateAt: %v, want %v (decay capped at 0.99)", got, want)
	}
}
