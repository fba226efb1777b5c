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
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// SegRun is one DeepLabV3 training run (SegNet on a dense.Dataset), in the
// run folder layout of Run: checkpoint.safetensors (resumable, written
// atomically at the end of every epoch and on interruption), log.csv and
// curves.png (train loss and pixel accuracy, validation mIoU and pixel
// accuracy), and, with every checkpoint, model.safetensors: the fused
// inference weights (SegNet.FusedStateDict) with the metadata the
// segment command reads (SegMeta).
//
// It shares Run's pieces (Hyper, Schedule, SGD, the run log, Progress,
// ErrInterrupted, the checkpoint name) but not its loop, which is built
// around a classifier (data.Loader of labelled images, EMA, data pruning).
// Hyper's LabelSmoothing, EMA and pruning fields are not used; batching is
// always "even" (ceil(n/batch) batches of equal size ±1, each at least 2
// images, since SegNet's image-pooling BatchNorm needs two).
type SegRun struct {
	Dir   string
	Hyper Hyper
	Net   *SegNet

	Train, Val dense.Dataset
	// Size is the side of the square training crops and of the
	// letterboxed validation inputs (SegEvaluate).
	Size int
	// Augment is the joint augmentation of the training images (its Crop
	// should be Size).
	Augment   dense.Augment
	Mean, Std [3]float32
	Fill      [3]uint8 // validation padding colour (FitPad)
	Labels    []string
	Meta      map[string]string // stored in the checkpoint as is

	OnStep  func(Progress)
	OnEpoch func(runlog.Row)

	start   segState
	sgdInit map[string]*tensor.Tensor
}

type segState struct {
	Epoch       int     `json:"epoch"`
	Step        int     `json:"step"`
	GlobalStep  int     `json:"global_step"`
	Seconds     float64 `json:"seconds"`
	LossSum     float64 `json:"loss_sum"`
	Correct     int64   `json:"correct"` // training pixels predicted right (not ignored)
	Pixels      int64   `json:"pixels"`
	Images      int     `json:"images"`
	DropoutStep uint64  `json:"dropout_step"`
	LastMIoU    float64 `json:"last_miou"`
	LastPixAcc  float64 `json:"last_pixel_acc"`
	Done        bool    `json:"done"`
}

// SegCheckpointFormat is the "format" metadata of a segmentation run's
// checkpoint.
const SegCheckpointFormat = "mobileone-segtrain"

// SegModelName is the fused model SegRun writes in the run folder.
const SegModelName = "model.safetensors"

// segBatches is the number of batches of an epoch of n images.
func segBatches(n, bs int) int {
	nb := (n + bs - 1) / bs
	if n/nb < 2 {
		nb = max(1, n/2)
	}
	return nb
}

// segOrder is epoch e's shuffled order of n samples (from Seed and e).
func segOrder(seed uint64, e, n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	data.NewRNG(seed^0x5e65e6, uint64(e)).Shuffle(order)
	return order
}

type segBatch struct {
	x   *tensor.Tensor
	y   []uint8
	err error
}

// Execute trains until the last epoch (see SegRun).
func (r *SegRun) Execute(ctx context.Context) error {
	h := r.Hyper
	if h.Epochs < 1 || h.BatchSize < 2 {
		return fmt.Errorf("train: need epochs ≥ 1 and batch size ≥ 2, got %d and %d", h.Epochs, h.BatchSize)
	}
	n := r.Train.Len()
	if n < 2 {
		return fmt.Errorf("train: %d training images: need at least 2 (BatchNorm of the image-pooling branch)", n)
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
		ConstantLR: h.ConstantLR, ConstantWD: h.ConstantWD, PolyPower: h.PolyPower}
	log, err := runlog.Open(r.Dir, r.start.Epoch)
	if err != nil {
		return err
	}
	log.Dense = true
	st := r.start
	r.Net.DropoutStep = st.DropoutStep
	for ; st.Epoch < h.Epochs; st.Epoch++ {
		t0 := time.Now()
		secs0 := st.Seconds
		imgs := 0
		order := segOrder(h.Seed, st.Epoch, n)
		load := func(s int) <-chan segBatch {
			ch := make(chan segBatch, 1)
			go func() {
				idx := order[s*n/steps : (s+1)*n/steps]
				x, y, c, hh, ww, err := dense.Batch(r.Train, idx, dense.BatchOptions{Augment: r.Augment, Mean: r.Mean, Std: r.Std,
					Seed: h.Seed, Epoch: st.Epoch, Workers: h.Workers})
				if err != nil {
					ch <- segBatch{err: err}
					return
				}
				if want := r.Net.Backbone.Model().Config.InChannels; c != want {
					ch <- segBatch{err: fmt.Errorf("train: %s has %d channels, the network takes %d", r.Train.Name(idx[0]), c, want)}
					return
				}
				ch <- segBatch{x: &tensor.Tensor{Shape: []int{len(idx), c, hh, ww}, Data: x}, y: y}
			}()
			return ch
		}
		var next <-chan segBatch
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
			loss := r.Net.Forward(b.x, b.y, true)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return fmt.Errorf("train: loss is %v at epoch %d step %d (learning rate %g too high?)", loss, st.Epoch+1, st.Step+1, opt.LR())
			}
			px := r.Net.Pixels()
			if px > 0 {
				r.Net.Backward()
				opt.Step()
			}
			st.LossSum += loss * float64(px)
			st.Correct += r.Net.correctPixels(b.y)
			st.Pixels += int64(px)
			st.Images += b.x.Shape[0]
			imgs += b.x.Shape[0]
			st.Step++
			st.GlobalStep++
			st.DropoutStep = r.Net.DropoutStep
			st.Seconds = secs0 + time.Since(t0).Seconds()
			if r.OnStep != nil {
				r.OnStep(Progress{Epoch: st.Epoch + 1, Epochs: h.Epochs, Step: st.Step, Steps: steps,
					Loss: st.LossSum / float64(max(st.Pixels, 1)), Acc: 100 * float64(st.Correct) / float64(max(st.Pixels, 1)),
					ImagesPerSec: float64(imgs) / time.Since(t0).Seconds(), LR: opt.LR()})
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
			TrainLoss: st.LossSum / float64(max(st.Pixels, 1)), TrainAcc: 100 * float64(st.Correct) / float64(max(st.Pixels, 1)),
			ImagesPerSec: float64(imgs) / time.Since(t0).Seconds(), Images: st.Images}
		if r.Val != nil {
			cm, err := SegEvaluate(r.Net, r.Val, r.Size, r.Mean, r.Std, r.Fill, h.BatchSize, h.Workers, nil)
			if err != nil {
				return err
			}
			row.ValMIoU, row.ValPixelAcc = 100*nanZero(cm.MeanIoU()), 100*nanZero(cm.PixelAccuracy())
		}
		st.LastMIoU, st.LastPixAcc = row.ValMIoU, row.ValPixelAcc
		st.Step, st.LossSum, st.Correct, st.Pixels, st.Images = 0, 0, 0, 0, 0
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

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// correctPixels counts the pixels of the last Forward's batch whose argmax
// is their (not ignored) label.
func (s *SegNet) correctPixels(mask []uint8) int64 {
	k, n, hw := s.opt.NumClasses, s.low.N, s.h*s.w
	p := hw * n
	var c int64
	for j := 0; j < p; j++ {
		t := mask[(j%n)*hw+j/n]
		if t == dense.Ignore {
			continue
		}
		best, bv := 0, s.up[j]
		for cl := 1; cl < k; cl++ {
			if v := s.up[cl*p+j]; v > bv {
				best, bv = cl, v
			}
		}
		if best == int(t) {
			c++
		}
	}
	return c
}

// SegEvaluate scores a SegNet (evaluation mode) on ds: every image is
// letterboxed to size×size (dense.FitPad with fill, then normalised with
// mean and std), predicted in batches of up to batch images, and the
// predicted class map, its padding removed, is resized to the image's
// size with nearest neighbour and counted against the image's own mask:
// the protocol of the segment and eval commands on the fused graph.
// keep, if not nil, receives each image's predicted mask (index, mask).
func SegEvaluate(net *SegNet, ds dense.Dataset, size int, mean, std [3]float32, fill [3]uint8, batch, workers int,
	keep func(i int, m *dense.Mask) error) (*dense.Confusion, error) {
	cm := dense.NewConfusion(net.opt.NumClasses)
	n := ds.Len()
	batch = max(batch, 1)
	for lo := 0; lo < n; lo += batch {
		hi := min(n, lo+batch)
		type item struct {
			x    []float32
			mask *dense.Mask
			w, h int
		}
		items := make([]item, hi-lo)
		errs := make([]error, hi-lo)
		parallel(hi-lo, workers, func(k int) {
			img, m, err := ds.Get(lo + k)
			if err != nil {
				errs[k] = err
				return
			}
			if img.Channels != 3 {
				errs[k] = fmt.Errorf("%s: %d channels, want RGB", ds.Name(lo+k), img.Channels)
				return
			}
			x, w, h := dense.FitPad(img, size, fill)
			items[k] = item{dense.CHW(x, mean, std), m, w, h}
		})
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		plane := 3 * size * size
		x := tensor.New(hi-lo, 3, size, size)
		for k, it := range items {
			copy(x.Data[k*plane:(k+1)*plane], it.x)
		}
		pred := net.Predict(x)
		for k, it := range items {
			full := &dense.Mask{Width: size, Height: size, Pix: pred[k*size*size : (k+1)*size*size]}
			m := full.Crop(0, 0, it.w, it.h).ResizeNearest(it.mask.Width, it.mask.Height)
			if err := cm.Add(m.Pix, it.mask.Pix); err != nil {
				return nil, fmt.Errorf("%s: %w", ds.Name(lo+k), err)
			}
			if keep != nil {
				if err := keep(lo+k, m); err != nil {
					return nil, err
				}
			}
		}
	}
	return cm, nil
}

// parallel runs fn(0..n-1) on up to workers goroutines (0: 2).
func parallel(n, workers int, fn func(k int)) {
	if workers <= 0 {
		workers = 2
	}
	workers = min(workers, n)
	done := make(chan struct{})
	for wk := 0; wk < workers; wk++ {
		go func() {
			for k := wk; k < n; k += workers {
				fn(k)
			}
			done <- struct{}{}
		}()
	}
	for wk := 0; wk < workers; wk++ {
		<-done
	}
}

// SegMeta is the metadata of a fused segmentation model, as the segment
// and eval commands read it: output_stride, rates (JSON), labels (JSON),
// size (the training input side), task "segment".
func SegMeta(opt SegOptions, labels []string, size int) map[string]string {
	rates, _ := json.Marshal(opt.Rates)
	lj, _ := json.Marshal(labels)
	return map[string]string{"task": "segment", "output_stride": strconv.Itoa(opt.OutputStride), "rates": string(rates),
		"labels": string(lj), "size": strconv.Itoa(size)}
}

// WriteSegModel writes the net's fused inference weights with SegMeta to
// path, atomically.
func WriteSegModel(path string, net *SegNet, labels []string, size int) error {
	keys, sd := net.FusedStateDict()
	return safetensors.WriteFile(path, keys, sd, SegMeta(net.opt, labels, size), safetensors.F32)
}

// save writes the resumable state and the fused model, each atomically.
func (r *SegRun) save(st segState, opt *SGD) error {
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
	so, _ := json.Marshal(r.Net.opt)
	hy, _ := json.Marshal(r.Hyper)
	stj, _ := json.Marshal(st)
	labels, _ := json.Marshal(r.Labels)
	meta := map[string]string{"format": SegCheckpointFormat, "config": string(cfg), "seg": string(so), "hyper": string(hy),
		"state": string(stj), "labels": string(labels), "size": strconv.Itoa(r.Size)}
	for k, v := range r.Meta {
		meta["meta."+k] = v
	}
	if err := safetensors.WriteFile(filepath.Join(r.Dir, CheckpointName), order, all, meta, safetensors.F32); err != nil {
		return err
	}
	return WriteSegModel(filepath.Join(r.Dir, SegModelName), r.Net, r.Labels, r.Size)
}

// IsSegCheckpoint reports whether the run folder dir holds a segmentation
// run's checkpoint (false if it holds none or another kind).
func IsSegCheckpoint(dir string) bool {
	f, err := safetensors.ReadFile(filepath.Join(dir, CheckpointName))
	return err == nil && f.Metadata["format"] == SegCheckpointFormat
}

// ResumeSeg reads a segmentation run folder's checkpoint: the net, the
// optimiser state, the hyper-parameters and where to continue. The caller
// sets the data sets, augmentation and normalisation (from Meta).
func ResumeSeg(dir string) (*SegRun, error) {
	var cfg model.Config
	var opt SegOptions
	r := &SegRun{Dir: dir}
	c, err := readDenseCheckpoint(dir, SegCheckpointFormat, "segmentation", []jsonField{{"config", &cfg}, {"seg", &opt},
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
	if r.Net, err = NewSegNet(bb, opt); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := r.Net.LoadStateDict(msd); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Finished reports whether a resumed run has already done its last epoch.
func (r *SegRun) Finished() bool { return r.start.Done || r.start.Epoch >= r.Hyper.Epochs }

// StartEpoch is the 0-based epoch the run continues at, and the batch.
func (r *SegRun) StartEpoch() (epoch, step int) { return r.start.Epoch, r.start.Step }

// LastVal returns the last epoch's validation mIoU and pixel accuracy
// (percent).
func (r *SegRun) LastVal() (miou, pixelAcc float64) { return r.start.LastMIoU, r.start.LastPixAcc }
