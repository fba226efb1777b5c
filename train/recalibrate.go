package train

import (
	"fmt"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/model"
)

// RecalibrateBN re-estimates the BatchNorm running statistics of a
// train-time model for its current weights by running batches of ds
// through it in training mode (no weight update), as
// torch.optim.swa_utils.update_bn does for averaged weights. An EMA of the
// weights needs it: the average of past running statistics does not match
// the averaged weights (in channels that are nearly constant, tiny
// variances amplify the mismatch until the network predicts one class).
// With momentum 0.1, the old statistics weigh 0.9^batches at the end.
func RecalibrateBN(m *model.Model, ds data.Dataset, tr *data.Transform, batch, batches, workers int, seed uint64) error {
	if m.IsFused() {
		return fmt.Errorf("train: RecalibrateBN needs a train-time model")
	}
	net, err := NewNet(m)
	if err != nil {
		return err
	}
	l, err := data.NewLoader(ds, data.Options{BatchSize: batch, Shuffle: true, DropLast: true, Workers: workers, Transform: tr, Seed: seed})
	if err != nil {
		return err
	}
	n := 0
	for b, err := range l.Epoch(0) {
		if err != nil {
			return err
		}
		net.Forward(b.X, true)
		b.Release()
		if n++; n >= batches {
			break
		}
	}
	return nil
}
