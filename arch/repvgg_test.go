package arch

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/tensor"
)

// repVGGTrainBlock adds a train-time RepVGG block: ReLU(BN(conv3×3(x)) +
// BN(conv1×1(x)) [+ BN(x)]), the identity BatchNorm written as a depthwise
// 1×1 conv of weight 1 (key p+".id.weight", which the converter must not
// see) followed by that BatchNorm.
func repVGGTrainBlock(b *graph.Builder, x graph.Value, p string, out, stride int, identity bool) graph.Value {
	y := b.Conv(x, p+".rbr_dense.conv", graph.ConvSpec{Out: out, K: 3, Stride: stride, Pad: 1, BN: true, BNName: p + ".rbr_dense.bn"})
	z := b.Conv(x, p+".rbr_1x1.conv", graph.ConvSpec{Out: out, K: 1, Stride: stride, BN: true, BNName: p + ".rbr_1x1.bn"})
	if !identity {
		return b.Add(y, z, p+".add", graph.ReLU)
	}
	y = b.Add(y, z, p+".add", graph.None)
	id := b.Conv(x, p+".id", graph.ConvSpec{Out: out, K: 1, Groups: out, BN: true, BNName: p + ".rbr_identity"})
	return b.Add(y, id, p+".add_id", graph.ReLU)
}

// TestRepVGGDeploy: the converted state dict, in the deploy graph, computes
// what the three branches compute (random weights and statistics).
func TestRepVGGDeploy(t *testing.T) {
	const c0, c1 = 3, 8
	tb := graph.NewBuilder("train", c0, 9, 9)
	x := repVGGTrainBlock(tb, tb.Input(), "stage0", c1, 2, false)
	x = repVGGTrainBlock(tb, x, "stage1.0", c1, 1, true)
	train, err := tb.Graph(x)
	if err != nil {
		t.Fatal(err)
	}
	db := graph.NewBuilder("deploy", c0, 9, 9)
	y := db.Conv(db.Input(), "stage0.rbr_reparam", graph.ConvSpec{Out: c1, K: 3, Stride: 2, Pad: 1, Bias: true, Act: graph.ReLU})
	y = db.Conv(y, "stage1.0.rbr_reparam", graph.ConvSpec{Out: c1, K: 3, Pad: 1, Bias: true, Act: graph.ReLU})
	deploy, err := db.Graph(y)
	if err != nil {
		t.Fatal(err)
	}

	r := rand.New(rand.NewSource(1))
	_, sd := train.StateDict()
	for k, v := range sd {
		v.Data = make([]float32, v.Numel())
		for i := range v.Data {
			switch {
			case strings.HasSuffix(k, ".id.weight"):
				v.Data[i] = 1
			case strings.HasSuffix(k, "running_var"), strings.HasSuffix(k, "bn.weight"), strings.HasSuffix(k, "identity.weight"):
				v.Data[i] = 0.5 + r.Float32()
			default:
				v.Data[i] = float32(r.NormFloat64())
			}
		}
	}
	if err := train.Load(sd); err != nil {
		t.Fatal(err)
	}
	in := tensor.New(2, c0, 9, 9)
	for i := range in.Data {
		in.Data[i] = float32(r.NormFloat64())
	}
	want, _, err := train.Ref(in)
	if err != nil {
		t.Fatal(err)
	}

	delete(sd, "stage1.0.id.weight")
	sd["stage1.0.rbr_identity.num_batches_tracked"] = tensor.New()
	sd["linear.weight"] = tensor.New(4, c1) // not a block's: copied
	fused, err := RepVGGDeploy(sd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sd["stage0.rbr_reparam.weight"]; ok {
		t.Fatal("RepVGGDeploy modified its input")
	}
	if _, ok := fused["linear.weight"]; !ok {
		t.Error("linear.weight was not copied")
	}
	delete(fused, "linear.weight")
	if err := deploy.Load(fused); err != nil {
		t.Fatal(err)
	}
	got, _, err := deploy.Ref(in)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got.Data, want.Data); e > 1e-6 {
		t.Errorf("deploy block differs from the train-time branches by %.3g", e)
	}

	// Idempotent on a deploy state dict; a train-time key left without its
	// partners is an error naming it.
	again, err := RepVGGDeploy(fused)
	if err != nil || len(again) != len(fused) {
		t.Errorf("a deploy state dict: %d keys, %v", len(again), err)
	}
	delete(sd, "stage1.0.rbr_1x1.bn.running_mean")
	if _, err := RepVGGDeploy(sd); err == nil || !strings.Contains(err.Error(), "stage1.0.rbr_1x1.bn.running_mean") {
		t.Errorf("a missing branch key: %v", err)
	}
}
