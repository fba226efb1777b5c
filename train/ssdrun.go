package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// SSDRun is one SSDLite training run (SSDNet on a detect.Dataset), in the
// run folder layout of Run and SegRun: checkpoint.safetensors (resumable,
// written atomically at the end of every epoch and on interruption),
// log.csv and curves.png (train loss, validation COCO AP and AP50 against
// time), and, with every checkpoint, model.safetensors: the fused detector
// (SSDNet.FusedStateDict: the backbone re-parameterised) with the metadata
// the detect and eval commands read (SSDMeta).
//
// It shares SegRun's batching (ceil(n/batch) batches of equal size ±1, at
// least 2 images each: BatchNorm over the 1×1 maps needs two), shuffling
// and the rest of Run's pieces (Hyper, Schedule, SGD, the run log,
// Progress, ErrInterrupted). Hyper's LabelSmoothing, EMA and pruning
// fields are not used.
type SSDRun struct {
	Dir   string
	Hyper Hyper
	Net   *SSDNet

	Train, Val *detect.Dataset
	// Size is the side of the network's square input: every image,
	// augmented, is resized to Size×Size (torchvision's fixed-size
	// transform), and so is every validation image.
	Size      int
	Recipe    detect.Recipe // the box-aware augmentation of the training images
	Mean, Std [3]float32
	Labels    []string          // class names, index 0 the background
	Meta      map[string]string // stored in the checkpoint as is

	OnStep  func(Progress)
	OnEpoch func(runlog.Row)

	start   ssdState
	sgdInit map[string]*tensor.Tensor
}

type ssdState struct {
	Epoch      int     `json:"epoch"`
	Step       int     `json:"step"`
	GlobalStep int     `json:"global_step"`
	Seconds    float64 `json:"seconds"`
	LossSum    float64 `json:"loss_sum"` // Σ batch loss × batch images
	Images     int     `json:"images"`
	LastAP     float64 `json:"last_ap"`
	LastAP50   float64 `json:"last_ap50"`
	Done       bool    `json:"done"`
}

// SSDCheckpointFormat is the "format" metadata of a detection run's
// checkpoint.
const SSDCheckpointFormat = "mobileone-dettrain"

// SSDModelName is the fused detector SSDRun writes in the run folder.
const SSDModelName = "model.safetensors"

type ssdBatch struct {
	x       *tensor.Tensor
	targets []detect.Target
	err     error
}

// SSDBatch decodes, augments (recipe, seeded per sample by seed, epoch and
// index: data.SampleSeed) and resizes samples idx of ds to size×size and
// returns them as a normalised batch (N, 3, size, size) with their targets
// (boxes in pixels of the resized image, crowd and difficult objects left
// out). Workers goroutines decode in parallel (0: 2).
func SSDBatch(ds *detect.Dataset, idx []int, recipe detect.Recipe, size int, mean, std [3]float32, seed uint64, epoch, workers int) (*tensor.Tensor, []detect.Target, error) {
	plane := 3 * size * size
	x := tensor.New(len(idx), 3, size, size)
	targets := make([]detect.Target, len(idx))
	errs := make([]error, len(idx))
	parallel(len(idx), workers, func(k int) {
		img, s, err := ds.Get(idx[k])
		if err != nil {
			errs[k] = err
			return
		}
		objs := s.Objects
		if recipe != (detect.Recipe{}) {
			img, objs = recipe.Apply(img, objs, data.NewRNG(data.SampleSeed(seed, epoch, idx[k])))
		}
		img, objs = detect.Resize(img, objs, size, size)
		s.Objects = objs
		targets[k] = s.Target()
		copy(x.Data[k*plane:(k+1)*plane], dense.CHW(img, mean, std))
	})
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return x, targets, nil
}

// Execute trains until the last epoch (see SSDRun).
func (r *SSDRun) Execute(ctx context.Context) error {
	h := r.Hyper
	if h.Epochs < 1 || h.BatchSize < 2 {
		return fmt.Errorf("train: need epochs ≥ 1 and batch size ≥ 2, got %d and %d", h.Epochs, h.BatchSize)
	}
	n := r.Train.Len()
	if n < 2 {
		return fmt.Errorf("train: %d training images: need at least 2 (BatchNorm on the 1×1 maps)", n)
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	if err := r.Net.SetBF16(h.BF16); err != nil {
		return err
	}
	opt := NewSGD(r.Net.Params(), h.LR, h.Momentum, h.WDStart, h.Nesterov)
	if r.sgdInit != nil {
		if err := opt.LoadState(r.sgdInit); err != nil {
			return fmt.Errorf("train: resuming optimiser: %w", err)
		}
	}
	steps := segBatches(n, h.BatchSize)
	sched := Schedule{PeakLR: h.LR, MinLR: h.MinLR, WDStart: h.WDStart, WDEnd: h.WDEnd,
		WarmupSteps: int(math.Round(h.WarmupEpochs * float64(steps))), TotalSteps: h.Epochs * steps,
		ConstantLR: h.ConstantLR, ConstantWD: h.ConstantWD}
	log, err := runlog.Open(r.Dir, r.start.Epoch)
	if err != nil {
		return err
	}
	log.Detect = true
	st := r.start
	for ; st.Epoch < h.Epochs; st.Epoch++ {
		t0 := time.Now()
		secs0 := st.Seconds
		imgs := 0
		order := segOrder(h.Seed, st.Epoch, n)
		load := func(s int) <-chan ssdBatch {
			ch := make(chan ssdBatch, 1)
			go func() {
				x, t, err := SSDBatch(r.Train, order[s*n/steps:(s+1)*n/steps], r.Recipe, r.Size, r.Mean, r.Std, h.Seed, st.Epoch, h.Workers)
				ch <- ssdBatch{x, t, err}
			}()
			return ch
		}
		var next <-chan ssdBatch
		if st.Step < steps {
			next = load(st.Step)
		}
		for st.Step < steps {
			b := <-next
			if b.err != nil {
				return b.err
			}
			if st.Step+1 < steps {
				next = load(st.Step + 1)
			}
			pos := st.Epoch*steps + st.Step
			opt.SetLR(sched.LR(pos))
			opt.SetWeightDecay(sched.WeightDecay(pos))
			r.Net.ZeroGrad()
			loss, err := r.Net.Forward(b.x, b.targets, true)
			if err != nil {
				return err
			}
			if l := loss.Total(); math.IsNaN(l) || math.IsInf(l, 0) {
				return fmt.Errorf("train: loss is %v at epoch %d step %d (learning rate %g too high?)", l, st.Epoch+1, st.Step+1, opt.LR())
			}
			if err := r.Net.Backward(); err != nil {
				return err
			}
			opt.Step()
			bs := b.x.Shape[0]
			st.LossSum += loss.Total() * float64(bs)
			st.Images += bs
			imgs += bs
			st.Step++
			st.GlobalStep++
			st.Seconds = secs0 + time.Since(t0).Seconds()
			if r.OnStep != nil {
				r.OnStep(Progress{Epoch: st.Epoch + 1, Epochs: h.Epochs, Step: st.Step, Steps: steps,
					Loss: st.LossSum / float64(max(st.Images, 1)), ImagesPerSec: float64(imgs) / time.Since(t0).Seconds(), LR: opt.LR()})
			}
			if ctx.Err() != nil && st.Step < steps {
				if next != nil {
					<-next // let the loading goroutine finish
				}
				if err := r.save(st, opt); err != nil {
					return fmt.Errorf("interrupted, and saving failed: %w", err)
				}
				return ErrInterrupted
			}
		}
		row := runlog.Row{Epoch: st.Epoch + 1, Seconds: st.Seconds, LR: opt.LR(), WeightDecay: opt.WeightDecay(),
			TrainLoss: st.LossSum / float64(max(st.Images, 1)), ImagesPerSec: float64(imgs) / time.Since(t0).Seconds(), Images: st.Images}
		if r.Val != nil {
			rep, _, err := SSDEvaluate(r.Net, r.Val, r.Size, r.Mean, r.Std, h.BatchSize, h.Workers)
			if err != nil {
				return err
			}
			row.ValAP, row.ValAP50 = 100*max(rep.AP, 0), 100*max(rep.AP50, 0)
		}
		st.LastAP, st.LastAP50 = row.ValAP, row.ValAP50
		st.Step, st.LossSum, st.Images = 0, 0, 0
		if st.Epoch+1 == h.Epochs {
			st.Done = true
		}
		nextSt := st
		nextSt.Epoch++
		r.start = nextSt
		if err := r.save(nextSt, opt); err != nil {
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

// SSDEvaluate scores an SSDNet (evaluation mode) on ds with COCO's metric:
// every image is resized to size×size, normalised with mean and std,
// run in batches of up to batch images, post-processed as torchvision
// does (detect.Postprocess's defaults) and its boxes scaled back to the
// image (detect.Rescale): the protocol of "mobileone eval --task detect"
// on the fused graph. It also returns the detections (COCO results).
func SSDEvaluate(net *SSDNet, ds *detect.Dataset, size int, mean, std [3]float32, batch, workers int) (*detect.Report, []detect.Result, error) {
	n := ds.Len()
	batch = max(batch, 1)
	k := net.opt.NumClasses
	results := []detect.Result{}
	for lo := 0; lo < n; lo += batch {
		hi := min(n, lo+batch)
		idx := make([]int, hi-lo)
		for i := range idx {
			idx[i] = lo + i
		}
		x, _, err := SSDBatch(ds, idx, detect.Recipe{}, size, mean, std, 0, 0, workers)
		if err != nil {
			return nil, nil, err
		}
		if _, err := net.Forward(x, nil, false); err != nil {
			return nil, nil, err
		}
		a := len(net.anchors)
		for i, j := range idx {
			dets, err := detect.Postprocess(net.logits[i*a*k:(i+1)*a*k], net.regs[i*a*4:(i+1)*a*4], net.anchors, k, size, size, detect.PostOptions{})
			if err != nil {
				return nil, nil, err
			}
			s := ds.Samples[j]
			detect.Rescale(dets, size, size, s.Height, s.Width)
			res, err := detect.ToResults(s.ID, dets, ds.CategoryIDs)
			if err != nil {
				return nil, nil, err
			}
			results = append(results, res...)
		}
	}
	imgs, cats, gts := ds.GroundTruth()
	rep, err := detect.Evaluate(imgs, cats, gts, results, ds.Names())
	if err != nil {
		return nil, nil, err
	}
	return rep, results, nil
}

// SSDMeta is the metadata of a fused detector, as the detect and eval
// commands read it: labels (JSON, index 0 the background), size (the
// training input side), width (of the extra blocks), task "detect".
func SSDMeta(opt SSDOptions, labels []string, size int) map[string]string {
	lj, _ := json.Marshal(labels)
	return map[string]string{"task": "detect", "labels": string(lj), "size": strconv.Itoa(size),
		"width": strconv.FormatFloat(opt.Width, 'g', -1, 64)}
}

// WriteSSDModel writes the net's fused detector with SSDMeta to path,
// atomically.
func WriteSSDModel(path string, net *SSDNet, labels []string, size int) error {
	keys, sd := net.FusedStateDict()
	return safetensors.WriteFile(path, keys, sd, SSDMeta(net.opt, labels, size), safetensors.F32)
}

// save writes the resumable state and the fused model, each atomically.
func (r *SSDRun) save(st ssdState, opt *SGD) error {
	keys, sd := r.Net.StateDict()
	all := map[string]*tensor.Tensor{}
	var order []string
	for _, k := range keys {
		all["model/"+k] = sd[k]
		order = append(order, "model/"+k)
	}
	for k, v := range opt.State() {
		all["sgd/"+k] = v
		order = append(order, "sgd/"+k)
	}
	cfg, _ := json.Marshal(r.Net.Backbone.Model().Config)
	so := r.Net.opt
	so.Boxes = detect.DefaultBoxes{} // always SSDLiteBoxes
	soj, _ := json.Marshal(so)
	hy, _ := json.Marshal(r.Hyper)
	stj, _ := json.Marshal(st)
	labels, _ := json.Marshal(r.Labels)
	meta := map[string]string{"format": SSDCheckpointFormat, "config": string(cfg), "ssd": string(soj), "hyper": string(hy),
		"state": string(stj), "labels": string(labels), "size": strconv.Itoa(r.Size)}
	for k, v := range r.Meta {
		meta["meta."+k] = v
	}
	if err := safetensors.WriteFile(filepath.Join(r.Dir, CheckpointName), order, all, meta, safetensors.F32); err != nil {
		return err
	}
	return WriteSSDModel(filepath.Join(r.Dir, SSDModelName), r.Net, r.Labels, r.Size)
}

// IsSSDCheckpoint reports whether the run folder dir holds a detection
// run's checkpoint.
func IsSSDCheckpoint(dir string) bool {
	f, err := safetensors.ReadFile(filepath.Join(dir, CheckpointName))
	return err == nil && f.Metadata["format"] == SSDCheckpointFormat
}

// ResumeSSD reads a detection run folder's checkpoint: the net, the
// optimiser state, the hyper-parameters and where to continue. The caller
// sets the data sets, augmentation and normalisation (from Meta).
func ResumeSSD(dir string) (*SSDRun, error) {
	var cfg model.Config
	var opt SSDOptions
	r := &SSDRun{Dir: dir}
	c, err := readDenseCheckpoint(dir, SSDCheckpointFormat, "detection", []jsonField{{"config", &cfg}, {"ssd", &opt},
		{"hyper", &r.Hyper}, {"state", &r.start}, {"labels", &r.Labels}})
	if err != nil {
		return nil, err
	}
	path, msd := c.path, c.model
	r.Size, r.Meta, r.sgdInit = c.size, c.meta, c.sgd
	bb, err := model.New(cfg, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Net, err = NewSSDNet(bb, opt); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := r.Net.LoadStateDict(msd); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Finished reports whether a resumed run has already done its last epoch.
func (r *SSDRun) Finished() bool { return r.start.Done || r.start.Epoch >= r.Hyper.Epochs }

// StartEpoch is the 0-based epoch the run continues at, and the batch.
func (r *SSDRun) StartEpoch() (epoch, step int) { return r.start.Epoch, r.start.Step }

// LastVal returns the last epoch's validation AP and AP50 (percent).
func (r *SSDRun) LastVal() (ap, ap50 float64) { return r.start.LastAP, r.start.LastAP50 }
