package model

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

// StateDict returns the model's tensors under the authors' key names (as in
// mobileone_sN.pth.tar and mobileone_sN_unfused.pth.tar), in the order
// PyTorch registers them. The tensors are the model's own, not copies.
func (m *Model) StateDict() (keys []string, sd map[string]*tensor.Tensor) {
	sd = map[string]*tensor.Tensor{}
	add := func(k string, t *tensor.Tensor) {
		keys = append(keys, k)
		sd[k] = t
	}
	addBN := func(p string, bn *nn.BatchNorm) {
		add(p+".weight", bn.Weight)
		add(p+".bias", bn.Bias)
		add(p+".running_mean", bn.RunningMean)
		add(p+".running_var", bn.RunningVar)
		add(p+".num_batches_tracked", &tensor.Tensor{Shape: []int{}, Data: []float32{bn.NumBatchesTracked}})
	}
	for _, nb := range m.Blocks() {
		p, b := nb.Name, nb.Block
		if b.SE != nil {
			add(p+".se.reduce.weight", b.SE.Reduce.Weight)
			add(p+".se.reduce.bias", b.SE.Reduce.Bias)
			add(p+".se.expand.weight", b.SE.Expand.Weight)
			add(p+".se.expand.bias", b.SE.Expand.Bias)
		}
		if b.Fused != nil {
			add(p+".reparam_conv.weight", b.Fused.Weight)
			add(p+".reparam_conv.bias", b.Fused.Bias)
			continue
		}
		if b.Skip != nil {
			addBN(p+".rbr_skip", b.Skip)
		}
		for i, cb := range b.Convs {
			q := fmt.Sprintf("%s.rbr_conv.%d", p, i)
			add(q+".conv.weight", cb.Conv.Weight)
			addBN(q+".bn", cb.BN)
		}
		if b.Scale != nil {
			add(p+".rbr_scale.conv.weight", b.Scale.Conv.Weight)
			addBN(p+".rbr_scale.bn", b.Scale.BN)
		}
	}
	if m.Linear != nil {
		add("linear.weight", m.Linear.Weight)
		add("linear.bias", m.Linear.Bias)
	}
	return keys, sd
}

// LoadStateDict copies the tensors of sd (authors' key names; see
// CanonicalKeys for other namings) into the model. It is strict: a missing
// key, an unexpected key or a shape that differs is an error that names the
// key (and both shapes). Only num_batches_tracked may be absent, since
// inference does not use it.
func (m *Model) LoadStateDict(sd map[string]*tensor.Tensor) error {
	keys, own := m.StateDict()
	var missing []string
	for _, k := range keys {
		t, ok := sd[k]
		if !ok {
			if !strings.HasSuffix(k, ".num_batches_tracked") {
				missing = append(missing, k)
			}
			continue
		}
		want := own[k]
		if !tensor.SameShape(t.Shape, want.Shape) && !(want.Numel() == 1 && t.Numel() == 1) {
			return fmt.Errorf("key %q has shape %s in the checkpoint but the model (%s) expects %s",
				k, tensor.ShapeString(t.Shape), m.Config.label(), tensor.ShapeString(want.Shape))
		}
		if len(t.Data) != want.Numel() {
			return fmt.Errorf("key %q: shape %s but %d values", k, tensor.ShapeString(t.Shape), len(t.Data))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("checkpoint is missing key %q%s (model %s)", missing[0], more(len(missing)-1), m.Config.label())
	}
	var unexpected []string
	for k := range sd {
		if _, ok := own[k]; !ok {
			unexpected = append(unexpected, k)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		return fmt.Errorf("checkpoint has unexpected key %q%s (model %s)", unexpected[0], more(len(unexpected)-1), m.Config.label())
	}
	// All checks passed: copy.
	for _, k := range keys {
		t, ok := sd[k]
		if !ok {
			continue
		}
		if strings.HasSuffix(k, ".num_batches_tracked") {
			m.setNumBatches(k, t.Data[0])
			continue
		}
		copy(own[k].Data, t.Data)
	}
	return nil
}

func (m *Model) setNumBatches(key string, v float32) {
	for _, nb := range m.Blocks() {
		b := nb.Block
		set := func(p string, bn *nn.BatchNorm) {
			if key == p+".num_batches_tracked" {
				bn.NumBatchesTracked = v
			}
		}
		if b.Skip != nil {
			set(nb.Name+".rbr_skip", b.Skip)
		}
		for i, cb := range b.Convs {
			set(fmt.Sprintf("%s.rbr_conv.%d.bn", nb.Name, i), cb.BN)
		}
		if b.Scale != nil {
			set(nb.Name+".rbr_scale.bn", b.Scale.BN)
		}
	}
}

func more(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" (and %d more)", n)
}

func (c Config) label() string {
	if c.Name != "" {
		return c.Name
	}
	return "custom"
}
