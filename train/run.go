package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// Hyper are a run's hyper-parameters (stored in its checkpoint).
type Hyper struct {
	Epochs         int     `json:"epochs"`
	BatchSize      int     `json:"batch_size"`
	LR             float64 `json:"lr"`     // peak learning rate
	MinLR          float64 `json:"min_lr"` // end of the cosine
	WarmupEpochs   float64 `json:"warmup_epochs"`
	ConstantLR     bool    `json:"constant_lr,omitempty"`
	PolyPower      float64 `json:"poly_power,omitempty"` // > 0: poly decay instead of the cosine (Schedule)
	Momentum       float64 `json:"momentum"`
	Nesterov       bool    `json:"nesterov"`
	WDStart        float64 `json:"wd_start"`
	WDEnd          float64 `json:"wd_end"`
	ConstantWD     bool    `json:"constant_wd,omitempty"`
	LabelSmoothing float64 `json:"label_smoothing"`
	EMADecay       float64 `json:"ema_decay"`  // 0: no EMA
	EMAWarmup      bool    `json:"ema_warmup"` // decay min(EMADecay, (1+t)/(10+t)) at step t
	// EMARecalibrate re-estimates the EMA model's BatchNorm statistics on
	// this many training batches before it is evaluated or shipped (0: off).
	EMARecalibrate int    `json:"ema_recalibrate"`
	Seed           uint64 `json:"seed"`
	Workers        int    `json:"workers"`
	// BF16 runs the dense convolutions' matrix multiplies in bfloat16 on
	// AMX or AVX512-BF16 (Net.SetBF16); evaluation stays float32.
	BF16 bool `json:"bf16,omitempty"`
	// PruneRatio, if > 0, prunes the samples the network has learned, as
	// InfoBatch does (see pruner): each sample whose last training loss is
	// below the mean is left out of an epoch with this probability, and
	// the gradient of those kept is scaled up to make up for it.
	PruneRatio float64 `json:"prune_ratio,omitempty"`
	// PruneAnneal is the fraction of the epochs, at the end, that train on
	// every sample (with PruneRatio > 0).
	PruneAnneal float64 `json:"prune_anneal,omitempty"`
	// LastBatch says what becomes of an epoch's last, partial batch:
	// LastBatchEven (the default of new runs) splits the epoch into
	// ceil(n/BatchSize) batches of equal size (±1), every image seen;
	// LastBatchDrop (or "", runs from before the field) drops it.
	LastBatch string `json:"last_batch,omitempty"`
}

// Values of Hyper.LastBatch.
const (
	LastBatchEven = "even"
	LastBatchDrop = "drop"
)

// loaderOptions are the training loader's batching options.
func (h Hyper) loaderOptions() (data.Options, error) {
	o := data.Options{BatchSize: h.BatchSize, Shuffle: true, Workers: h.Workers, Seed: h.Seed}
	switch h.LastBatch {
	case LastBatchEven:
		o.Even = true
	case LastBatchDrop, "":
		o.DropLast = true
	default:
		return o, fmt.Errorf("train: last batch %q: want %s or %s", h.LastBatch, LastBatchEven, LastBatchDrop)
	}
	return o, nil
}

// FullEpochs is how many epochs at the end of a pruned run train on every
// sample: round(PruneAnneal·Epochs).
func (h Hyper) FullEpochs() int { return int(math.Round(h.PruneAnneal * float64(h.Epochs))) }

// DefaultHyper is the paper's recipe scaled to a small data set.
func DefaultHyper() Hyper {
	return Hyper{Epochs: 30, BatchSize: 128, LR: 0.1, MinLR: 0, WarmupEpochs: 1, Momentum: 0.9,
		WDStart: 1e-4, WDEnd: 1e-5, LabelSmoothing: 0.1, EMADecay: DefaultEMADecay, EMAWarmup: true, EMARecalibrate: 50, Seed: 1,
		LastBatch: LastBatchEven}
}

// Progress is reported after every training step.
type Progress struct {
	Epoch, Epochs int // 1-based epoch
	Step, Steps   int // 1-based step within the epoch
	Loss, Acc     float64
	ImagesPerSec  float64
	LR            float64
}

// Run describes one training run.
type Run struct {
	Dir   string // run folder: checkpoint.safetensors, log.csv, curves.png, final models
	Hyper Hyper
	Model *model.Model // train-time model to train (its weights are updated in place)

	Train, Val                    data.Dataset
	TrainTransform, EvalTransform *data.Transform
	// TransformFor, if set, gives the training transform of each epoch
	// (0-based): progressive resolution. It replaces TrainTransform.
	TransformFor func(epoch int) *data.Transform
	// EvalTransformFor, if set, gives the validation transform of each
	// epoch (0-based), so that a progressive run is validated at the size
	// it is training at; the final models are evaluated with EvalTransform.
	EvalTransformFor func(epoch int) *data.Transform
	Labels           []string

	// Meta is stored in the checkpoint as is (the command keeps its
	// arguments there so that --resume needs nothing else).
	Meta map[string]string

	OnStep  func(Progress)   // optional, after every step
	OnEpoch func(runlog.Row) // optional, after every epoch's evaluation

	// Resumed state (set by Resume).
	start     state
	ema       *EMA
	sgdInit   map[string]*tensor.Tensor
	pruneInit map[string]*tensor.Tensor
	prune     *pruner
}

// state is where a run is, stored in its checkpoint.
type state struct {
	Epoch      int     `json:"epoch"` // 0-based epoch in progress
	Step       int     `json:"step"`  // next batch of that epoch
	GlobalStep int     `json:"global_step"`
	Seconds    float64 `json:"seconds"` // training time so far
	LossSum    float64 `json:"loss_sum"`
	Correct    int     `json:"correct"`
	Seen       int     `json:"seen"`
	BestAcc    float64 `json:"best_acc"`
	LastAcc    float64 `json:"last_acc"`     // validation top-1 of the last epoch, raw weights
	LastAccEMA float64 `json:"last_acc_ema"` // and EMA weights
	Done       bool    `json:"done"`
}

// ErrInterrupted is returned when the context is cancelled; the run was
// saved and can be resumed.
var ErrInterrupted = errors.New("training interrupted; state saved")

// CheckpointName is the run's resumable state in its folder.
const CheckpointName = "checkpoint.safetensors"

// Execute trains until the last epoch, saving a checkpoint at the end of
// every epoch (and when ctx is cancelled), logging to the run folder.
func (r *Run) Execute(ctx context.Context) error {
	h := r.Hyper
	if h.Epochs < 1 || h.BatchSize < 2 {
		return fmt.Errorf("train: need epochs ≥ 1 and batch size ≥ 2, got %d and %d", h.Epochs, h.BatchSize)
	}
	if r.Train.Len() < h.BatchSize {
		return fmt.Errorf("train: %d training images, fewer than one batch of %d", r.Train.Len(), h.BatchSize)
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	net, err := NewNet(r.Model)
	if err != nil {
		return err
	}
	if err := net.SetBF16(h.BF16); err != nil {
		return err
	}
	opt := NewSGD(net.Params(), h.LR, h.Momentum, h.WDStart, h.Nesterov)
	if r.sgdInit != nil {
		if err := opt.LoadState(r.sgdInit); err != nil {
			return fmt.Errorf("train: resuming optimiser: %w", err)
		}
	}
	if h.EMADecay > 0 && r.ema == nil {
		r.ema = NewEMA(r.Model, h.EMADecay)
	}
	lo, err := h.loaderOptions()
	if err != nil {
		return err
	}
	lo.Transform = r.TrainTransform
	loader, err := data.NewLoader(r.Train, lo)
	if err != nil {
		return err
	}
	steps := loader.Len()
	if h.PruneRatio > 0 {
		if r.prune, err = r.newPruner(); err != nil {
			return err
		}
	}
	var weights, losses []float32
	sched := Schedule{PeakLR: h.LR, MinLR: h.MinLR, WDStart: h.WDStart, WDEnd: h.WDEnd,
		WarmupSteps: int(math.Round(h.WarmupEpochs * float64(steps))), TotalSteps: h.Epochs * steps,
		ConstantLR: h.ConstantLR, ConstantWD: h.ConstantWD}
	log, err := runlog.Open(r.Dir, r.start.Epoch)
	if err != nil {
		return err
	}
	st := r.start
	for ; st.Epoch < h.Epochs; st.Epoch++ {
		if r.TransformFor != nil {
			r.TrainTransform = r.TransformFor(st.Epoch)
			if err := loader.SetTransform(r.TrainTransform); err != nil {
				return err
			}
		}
		t0 := time.Now()
		secs0 := st.Seconds
		imgs := 0
		order := loader.Order(st.Epoch)
		if r.prune != nil {
			order = r.prune.begin(st.Epoch, st.Step == 0, order)
		}
		nb := loader.Batches(len(order))
		for b, err := range loader.EpochOrder(st.Epoch, st.Step, order) {
			if err != nil {
				return err
			}
			// The schedule runs on the epoch's progress (a pruned epoch has
			// fewer steps): for unpruned epochs this is the global step.
			pos := st.Epoch*steps + st.Step*steps/nb
			opt.SetLR(sched.LR(pos))
			opt.SetWeightDecay(sched.WeightDecay(pos))
			net.ZeroGrad()
			logits := net.Forward(b.X, true)
			var w, ls []float32
			if r.prune != nil {
				weights = r.prune.weights(b.Indices, weights)
				losses = grow(losses, len(b.Indices))
				w, ls = weights, losses
			}
			loss, dl := crossEntropy(logits, b.Labels, h.LabelSmoothing, w, ls)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				b.Release()
				return fmt.Errorf("train: loss is %v at epoch %d step %d (learning rate %g too high?)", loss, st.Epoch+1, st.Step+1, opt.LR())
			}
			if r.prune != nil {
				r.prune.update(b.Indices, ls)
			}
			net.Backward(dl)
			opt.Step()
			if r.ema != nil {
				var err error
				if h.EMAWarmup {
					err = r.ema.UpdateAt(r.Model, st.GlobalStep)
				} else {
					err = r.ema.Update(r.Model)
				}
				if err != nil {
					return err
				}
			}
			n := len(b.Labels)
			st.LossSum += loss * float64(n)
			st.Correct += correct(logits, b.Labels)
			st.Seen += n
			imgs += n
			b.Release()
			st.Step++
			st.GlobalStep++
			st.Seconds = secs0 + time.Since(t0).Seconds()
			if r.OnStep != nil {
				r.OnStep(Progress{Epoch: st.Epoch + 1, Epochs: h.Epochs, Step: st.Step, Steps: nb,
					Loss: st.LossSum / float64(st.Seen), Acc: 100 * float64(st.Correct) / float64(st.Seen),
					ImagesPerSec: float64(imgs) / time.Since(t0).Seconds(), LR: opt.LR()})
			}
			if ctx.Err() != nil {
				if err := r.save(st, opt); err != nil {
					return fmt.Errorf("interrupted, and saving failed: %w", err)
				}
				return ErrInterrupted
			}
		}
		row := runlog.Row{Epoch: st.Epoch + 1, Seconds: st.Seconds, LR: opt.LR(), WeightDecay: opt.WeightDecay(),
			TrainLoss: st.LossSum / float64(max(st.Seen, 1)), TrainAcc: 100 * float64(st.Correct) / float64(max(st.Seen, 1)),
			ImagesPerSec: float64(imgs) / time.Since(t0).Seconds(), Images: st.Seen}
		if r.Val != nil {
			evalT := r.EvalTransform
			if r.EvalTransformFor != nil {
				evalT = r.EvalTransformFor(st.Epoch)
			}
			ev, err := Evaluate(r.Model, r.Val, evalT, h.BatchSize, h.Workers)
			if err != nil {
				return err
			}
			row.ValLoss, row.ValAcc = ev.Loss, ev.Top1
			if r.ema != nil {
				em, err := r.emaModel(st.Epoch)
				if err != nil {
					return err
				}
				eev, err := Evaluate(em, r.Val, evalT, h.BatchSize, h.Workers)
				if err != nil {
					return err
				}
				row.ValAccEMA = eev.Top1
			}
		}
		st.BestAcc = math.Max(st.BestAcc, math.Max(row.ValAcc, row.ValAccEMA))
		st.LastAcc, st.LastAccEMA = row.ValAcc, row.ValAccEMA
		st.Step, st.LossSum, st.Correct, st.Seen = 0, 0, 0, 0
		if st.Epoch+1 == h.Epochs {
			st.Done = true
		}
		next := st
		next.Epoch++
		r.start = next
		if err := r.save(next, opt); err != nil {
			return err
		}
		if err := log.Append(row); err != nil {
			return err
		}
		if r.OnEpoch != nil {
			r.OnEpoch(row)
		}
	}
	return nil
}

func correct(logits *tensor.Tensor, labels []int) int {
	c := logits.Shape[1]
	n := 0
	for i, l := range labels {
		row := logits.Data[i*c : (i+1)*c]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == l {
			n++
		}
	}
	return n
}

// save writes the resumable state atomically.
func (r *Run) save(st state, opt *SGD) error {
	keys, sd := r.Model.StateDict()
	all := map[string]*tensor.Tensor{}
	var order []string
	for _, k := range keys {
		all["model/"+k] = sd[k]
		order = append(order, "model/"+k)
	}
	if r.ema != nil {
		ek, esd := r.ema.StateDict()
		for _, k := range ek {
			all["ema/"+k] = esd[k]
			order = append(order, "ema/"+k)
		}
	}
	for k, v := range opt.State() {
		all["sgd/"+k] = v
		order = append(order, "sgd/"+k)
	}
	if p := r.prune; p != nil {
		all["prune/score"] = &tensor.Tensor{Shape: []int{len(p.score)}, Data: p.score}
		all["prune/start"] = &tensor.Tensor{Shape: []int{len(p.start)}, Data: p.start}
		order = append(order, "prune/score", "prune/start")
	}
	cfg, _ := json.Marshal(r.Model.Config)
	hy, _ := json.Marshal(r.Hyper)
	stj, _ := json.Marshal(st)
	labels, _ := json.Marshal(r.Labels)
	meta := map[string]string{"format": "mobileone-train", "config": string(cfg), "hyper": string(hy), "state": string(stj), "labels": string(labels)}
	for k, v := range r.Meta {
		meta["meta."+k] = v
	}
	return safetensors.WriteFile(filepath.Join(r.Dir, CheckpointName), order, all, meta, safetensors.F32)
}

// Resume reads a run folder's checkpoint: the model (train-time form), the
// optimiser and EMA state, the hyper-parameters and where to continue. The
// caller sets the data sets and transforms (from Meta) before Execute.
func Resume(dir string) (*Run, error) {
	path := filepath.Join(dir, CheckpointName)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if f.Metadata["format"] != "mobileone-train" {
		return nil, fmt.Errorf("%s is not a mobileone training checkpoint", path)
	}
	var cfg model.Config
	var r Run
	if err := json.Unmarshal([]byte(f.Metadata["config"]), &cfg); err != nil {
		return nil, fmt.Errorf("%s: config: %v", path, err)
	}
	if err := json.Unmarshal([]byte(f.Metadata["hyper"]), &r.Hyper); err != nil {
		return nil, fmt.Errorf("%s: hyper-parameters: %v", path, err)
	}
	if err := json.Unmarshal([]byte(f.Metadata["state"]), &r.start); err != nil {
		return nil, fmt.Errorf("%s: state: %v", path, err)
	}
	if l := f.Metadata["labels"]; l != "" && l != "null" {
		if err := json.Unmarshal([]byte(l), &r.Labels); err != nil {
			return nil, fmt.Errorf("%s: labels: %v", path, err)
		}
	}
	r.Meta = map[string]string{}
	for k, v := range f.Metadata {
		if strings.HasPrefix(k, "meta.") {
			r.Meta[strings.TrimPrefix(k, "meta.")] = v
		}
	}
	part := func(prefix string) map[string]*tensor.Tensor {
		out := map[string]*tensor.Tensor{}
		for k, v := range f.Tensors {
			if strings.HasPrefix(k, prefix) {
				out[strings.TrimPrefix(k, prefix)] = v
			}
		}
		return out
	}
	m, err := model.New(cfg, false)
	if err != nil {
		return nil, err
	}
	if err := m.LoadStateDict(part("model/")); err != nil {
		return nil, fmt.Errorf("%s: model: %w", path, err)
	}
	r.Model, r.Dir = m, dir
	if r.Hyper.EMADecay > 0 {
		r.ema = NewEMA(m, r.Hyper.EMADecay)
		_, esd := r.ema.StateDict()
		saved := part("ema/")
		for k, t := range esd {
			s, ok := saved[k]
			if !ok || len(s.Data) != len(t.Data) {
				return nil, fmt.Errorf("%s: EMA tensor %q missing or misshaped", path, k)
			}
			copy(t.Data, s.Data)
		}
	}
	r.sgdInit = part("sgd/")
	r.pruneInit = part("prune/")
	return &r, nil
}

// newPruner makes the run's pruner, with the scores of a resumed run.
func (r *Run) newPruner() (*pruner, error) {
	p, err := newPruner(r.Train.Len(), r.Hyper)
	if err != nil || (r.start.Epoch == 0 && r.start.Step == 0) {
		return p, err
	}
	for name, dst := range map[string][]float32{"score": p.score, "start": p.start} {
		t := r.pruneInit[name]
		if t == nil || len(t.Data) != len(dst) {
			return nil, fmt.Errorf("train: the checkpoint has no pruning scores %q for the %d training images", name, len(dst))
		}
		copy(dst, t.Data)
	}
	return p, nil
}

// Finished reports whether a resumed run has already done its last epoch.
func (r *Run) Finished() bool { return r.start.Done || r.start.Epoch >= r.Hyper.Epochs }

// StartEpoch is the 0-based epoch the run continues at (and Step the batch).
func (r *Run) StartEpoch() (epoch, step int) { return r.start.Epoch, r.start.Step }

// Final returns the model to ship (train-time form) and whether it is the
// EMA: the EMA weights if the run keeps an average and they scored at least
// as well as the raw weights in the last validation (or there was none),
// else the trained weights.
func (r *Run) Final() (*model.Model, bool, error) {
	if r.ema != nil && (r.Val == nil || r.start.LastAccEMA >= r.start.LastAcc) {
		m, err := r.emaModel(r.Hyper.Epochs - 1)
		return m, true, err
	}
	return r.Model, false, nil
}

// emaModel returns the EMA weights as a model, its BatchNorm statistics
// recalibrated (deterministically for the epoch) when the run asks for it.
func (r *Run) emaModel(epoch int) (*model.Model, error) {
	m, err := r.ema.Copy()
	if err != nil || r.Hyper.EMARecalibrate <= 0 || r.Train == nil {
		return m, err
	}
	seed := r.Hyper.Seed ^ (0x9e3779b97f4a7c15 * uint64(epoch+1))
	return m, RecalibrateBN(m, r.Train, r.TrainTransform, r.Hyper.BatchSize, r.Hyper.EMARecalibrate, r.Hyper.Workers, seed)
}
