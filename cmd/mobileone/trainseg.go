package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
	"github.com/mobileone-go/mobileone/train"
)

const trainSegUsage = `usage: mobileone train --task segment --data DIR [-m s0..s4] [--init CKPT|builtin] [--size 256]
                       [--output-stride 16] [--rates 12,24,36] [--epochs 30] [--batch 8] -o RUN/
       mobileone train --resume RUN/

Trains DeepLabV3 (ASPP with a 1x1 branch, three dilated 3x3 branches and an
image-pooling branch, 256 channels, then a 3x3 layer and a 1x1 classifier;
torchvision's DeepLabHead) on a train-time MobileOne whose last stage is
dilated instead of strided (output stride 16; 8 dilates stages 3 and 4), with
per-pixel cross-entropy (mask value 255 ignored) on the logits upsampled
bilinearly to the input size.

--data DIR is a segmentation dataset: the Pascal VOC layout (JPEGImages/,
SegmentationClass/, ImageSets/Segmentation/{train,val}.txt; what "mobileone
data canvases" writes), DIR/{train,val}/{images,masks}/, or DIR/images +
DIR/masks (then there is no validation). Class names come from labels.txt
(one a line, index order), else VOC's 21 for the VOC layout.

Augmentation (image and mask together): the image's long side is resized to
--size times a random scale in [--scale-min, --scale-max] (0.5..2), flipped
left-right with probability 0.5, and a --size x --size crop taken at random
(padded with the mean colour, the mask with 255, where the image is smaller).
Normalisation: ImageNet mean and std.

Validation after every epoch, on the val split: each whole image is resized
so that its long side is --size (aspect kept), padded to --size x --size,
predicted, and the class map (padding removed, resized back with nearest
neighbour) scored against the image's own mask at its own size: mIoU over the
classes present in the targets or predictions, and pixel accuracy. This is
what "mobileone segment" and "mobileone eval --task segment" do with the
model's stored size, so their scores match the trainer's.

Optimiser: SGD with momentum 0.9 and weight decay 1e-4 (not on BatchNorm and
biases), learning rate 0.02 after a 1-epoch linear warm-up, then DeepLab's
"poly" decay lr*(1-t)^0.9 to 0 (--schedule cosine: the classifier trainer's
cosine), dropout 0.5 after ASPP, no EMA and no label smoothing.

--init starts the backbone from a classification checkpoint and fixes its
architecture (a -m that differs is an error); without it the backbone starts
from random weights. It takes a train-time checkpoint (the authors'
mobileone_sN_unfused.pth.tar, a run's model_unfused.pth.tar), a fused one
(mobileone_sN.pth.tar, a run's model.safetensors), or "builtin": the built-in
Fashion-MNIST model (S0's widths, k=1, grey, stem stride 1 on 28 px items),
the natural start on canvases made of Fashion-MNIST items. The classifier is
dropped. A fused backbone gets each block's kernel in its first conv branch,
the other branches silenced (BatchNorm scale 0), and its BatchNorms
calibrated on a first batch so that training-mode BatchNorm reproduces the
fused features; a grey stem reads the RGB image's luma. The segmentation
backbone's stem has stride 2: with the built-in model train canvases at
--size 256, where items (42-112 px) reach stage 1 at 21-56 px, about the
28 px it was trained on.

The run folder gets checkpoint.safetensors (train-time weights, optimiser
state, position: --resume continues exactly, on the same data; Ctrl-C saves
and stops) and model.safetensors (the fused model for "mobileone segment"
and "mobileone eval --task segment", with its output stride, rates, class
names and size in the metadata), both written atomically after every epoch,
and log.csv and curves.png (loss, train pixel accuracy, val mIoU and pixel
accuracy against time).`

// segTrainArgs are the segmentation trainer's arguments, stored in the
// checkpoint so that --resume needs nothing else.
type segTrainArgs struct {
	Task               string
	Data               string
	Variant            string
	Widths, Blocks     string
	K                  int
	Init               string
	Schedule           string
	Size               int
	OutputStride       int
	Rates              string
	ScaleMin, ScaleMax float64
	NoFlip             bool
	Hyper              train.Hyper
	Threads            int
	Out, Resume        string
}

// segHyper is the segmentation default recipe (see trainSegUsage).
func segHyper() train.Hyper {
	return train.Hyper{Epochs: 30, BatchSize: 8, LR: 0.02, WarmupEpochs: 1, Momentum: 0.9,
		WDStart: 1e-4, WDEnd: 1e-4, ConstantWD: true, Seed: 1, Workers: 2, LastBatch: train.LastBatchEven}
}

func cmdTrainSegment(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train --task segment", trainSegUsage, stderr)
	a := segTrainArgs{Task: "segment", Hyper: segHyper()}
	fs.StringVar(&a.Task, "task", "segment", "`segment` (classify: see mobileone train -h)")
	fs.StringVar(&a.Data, "data", "", "segmentation dataset `folder` (VOC layout or images/ + masks/)")
	fs.StringVar(&a.Variant, "m", "s0", "backbone variant `s0..s4`")
	fs.StringVar(&a.Widths, "channels-override", "", "custom widths `stem,c1,c2,c3,c4` instead of the variant's")
	fs.StringVar(&a.Blocks, "blocks", "", "custom block pairs per stage `b1,b2,b3,b4` instead of the variant's")
	fs.IntVar(&a.K, "k", 0, "conv branches at train time (0: the variant's)")
	fs.StringVar(&a.Init, "init", "", "initialise the backbone from this classification `checkpoint` (train-time or fused), or builtin")
	fs.IntVar(&a.Size, "size", 256, "training crop and validation input side `S`")
	fs.IntVar(&a.OutputStride, "output-stride", 16, "backbone output stride `16 or 8`")
	fs.StringVar(&a.Rates, "rates", "12,24,36", "ASPP atrous `rates` (three, comma-separated)")
	fs.Float64Var(&a.ScaleMin, "scale-min", 0.5, "smallest random scale (of the image resized to --size)")
	fs.Float64Var(&a.ScaleMax, "scale-max", 2, "largest random scale")
	fs.BoolVar(&a.NoFlip, "no-flip", false, "no horizontal flips")
	fs.IntVar(&a.Hyper.Epochs, "epochs", a.Hyper.Epochs, "epochs")
	fs.IntVar(&a.Hyper.BatchSize, "batch", a.Hyper.BatchSize, "batch size (at least 2)")
	fs.Float64Var(&a.Hyper.LR, "lr", a.Hyper.LR, "peak learning rate")
	fs.StringVar(&a.Schedule, "schedule", "poly", "learning-rate decay after the warm-up: `poly` ((1-t)^0.9, DeepLab's) or cosine")
	fs.Float64Var(&a.Hyper.MinLR, "min-lr", a.Hyper.MinLR, "learning rate at the end of the cosine")
	fs.Float64Var(&a.Hyper.WarmupEpochs, "warmup", a.Hyper.WarmupEpochs, "linear warm-up `epochs`")
	fs.Float64Var(&a.Hyper.Momentum, "momentum", a.Hyper.Momentum, "SGD momentum")
	fs.BoolVar(&a.Hyper.Nesterov, "nesterov", false, "Nesterov momentum")
	fs.Float64Var(&a.Hyper.WDStart, "wd", a.Hyper.WDStart, "weight decay")
	fs.Uint64Var(&a.Hyper.Seed, "seed", a.Hyper.Seed, "seed of the initial weights, shuffling, augmentation and dropout")
	fs.IntVar(&a.Hyper.Workers, "workers", a.Hyper.Workers, "data loading goroutines")
	fs.BoolVar(&a.Hyper.BF16, "bf16", false, "matrix multiplies in bfloat16 with float32 sums (AMX or AVX512-BF16); evaluation and the saved models stay float32")
	fs.IntVar(&a.Threads, "threads", runtime.GOMAXPROCS(0), "threads for the compute kernels")
	fs.StringVar(&a.Out, "o", "", "run `folder`")
	fs.StringVar(&a.Resume, "resume", "", "continue the run in this `folder`")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var run *train.SegRun
	fusedInit := false
	if a.Resume != "" {
		if err := resumeFlagsOnly(set); err != nil {
			return err
		}
		threads, dir := a.Threads, a.Resume
		if run, err = train.ResumeSeg(dir); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(run.Meta["args"]), &a); err != nil {
			return fmt.Errorf("%s: the checkpoint's arguments: %v", dir, err)
		}
		a.Threads, a.Out, a.Resume, a.Hyper = threads, dir, dir, run.Hyper
		if run.Finished() {
			fmt.Fprintf(stdout, "%s: all %d epochs are done; writing the final model\n", a.Out, run.Hyper.Epochs)
		} else {
			e, s := run.StartEpoch()
			fmt.Fprintf(stdout, "%s: resuming at epoch %d, batch %d\n", a.Out, e+1, s)
		}
	} else {
		if err := newRunFolder(a.Out, fs.Usage); err != nil {
			return err
		}
		if a.Data == "" {
			return errors.New("--task segment needs --data DIR: a segmentation dataset (VOC layout or images/ + masks/)")
		}
	}
	rates, err := parseRates(a.Rates)
	switch {
	case err != nil:
		return err
	case len(rates) != 3:
		return fmt.Errorf("--rates %q: ASPP takes three atrous rates", a.Rates)
	case a.OutputStride != 16 && a.OutputStride != 8:
		return fmt.Errorf("--output-stride %d: want 16 (the last stage dilated) or 8 (the last two)", a.OutputStride)
	case a.Size < 32 || a.Size > 2048:
		return fmt.Errorf("--size %d: want 32..2048", a.Size)
	case a.Size%a.OutputStride != 0:
		return fmt.Errorf("--size %d is not a multiple of the output stride %d", a.Size, a.OutputStride)
	case !(a.ScaleMin > 0) || !(a.ScaleMax >= a.ScaleMin) || a.ScaleMax > 8:
		return fmt.Errorf("--scale-min %g, --scale-max %g: want 0 < min <= max <= 8", a.ScaleMin, a.ScaleMax)
	case a.Hyper.BatchSize < 2:
		return fmt.Errorf("--batch %d: want at least 2 (BatchNorm needs two images)", a.Hyper.BatchSize)
	case a.Hyper.Epochs < 1:
		return fmt.Errorf("--epochs %d: want at least 1", a.Hyper.Epochs)
	case !(a.Hyper.LR > 0):
		return fmt.Errorf("--lr %g: want a positive learning rate", a.Hyper.LR)
	case a.Threads < 1:
		return errors.New("--threads must be at least 1")
	case a.Hyper.BF16 && !kernel.HaveBF16():
		return fmt.Errorf("--bf16 needs AMX-BF16 (Intel Xeon since Sapphire Rapids, on Linux 5.16+) or AVX512-BF16 (AMD Zen 4 and later); this CPU has %s", cpu.Detected)
	}
	a.Hyper.WDEnd = a.Hyper.WDStart
	if a.Resume == "" {
		switch a.Schedule {
		case "poly":
			a.Hyper.PolyPower = 0.9
		case "cosine":
			a.Hyper.PolyPower = 0
		default:
			return fmt.Errorf("--schedule %q: want poly or cosine", a.Schedule)
		}
	}
	kernel.SetThreads(a.Threads)

	trainDS, valDS, err := openSegData(a.Data)
	if err != nil {
		return err
	}
	labels := trainDS.Classes()
	if run != nil {
		if !slices.Equal(run.Labels, labels) {
			return fmt.Errorf("%s: the data's classes changed since the run started: it was trained on %d classes (%s), the data now has %d (%s)",
				a.Out, len(run.Labels), shortList(run.Labels), len(labels), shortList(labels))
		}
		if s := run.Meta["train_images"]; s != strconv.Itoa(trainDS.Len()) {
			return fmt.Errorf("%s: the run started on %s training images, the data now has %d; --resume needs the same data to continue exactly",
				a.Out, s, trainDS.Len())
		}
	} else {
		net, fi, err := newSegTrainNet(&a, len(labels), rates, set, stdout)
		if err != nil {
			return err
		}
		fusedInit = fi
		argsJSON, _ := json.Marshal(a)
		run = &train.SegRun{Dir: a.Out, Hyper: a.Hyper, Net: net, Labels: labels, Size: a.Size,
			Meta: map[string]string{"args": string(argsJSON), "train_images": strconv.Itoa(trainDS.Len())}}
		cfg := net.Backbone.Model().Config
		val := "none (no val split)"
		if valDS != nil {
			val = fmt.Sprintf("%d images", valDS.Len())
		}
		fmt.Fprintf(stdout, "training DeepLabV3 on MobileOne (%s), output stride %d, rates %v, on %s: %d images, %d classes, %dx%d crops; validation: %s\n",
			cfg.Describe(), a.OutputStride, rates, a.Data, trainDS.Len(), len(labels), a.Size, a.Size, val)
		params := 0
		for _, p := range net.Params() {
			params += p.W.Numel()
		}
		fmt.Fprintf(stdout, "%s train-time parameters, %d epochs of %d images in batches of up to %d, %d threads\n",
			commas(int64(params)), a.Hyper.Epochs, trainDS.Len(), a.Hyper.BatchSize, a.Threads)
	}
	run.Train, run.Val = trainDS, nil
	if valDS != nil { // not a typed nil in the interface
		run.Val = valDS
	}
	run.Mean, run.Std, run.Fill = imageproc.ImageNetMean, imageproc.ImageNetStd, meanFill
	flip := 0.5
	if a.NoFlip {
		flip = 0
	}
	run.Augment = dense.Augment{ScaleMin: a.ScaleMin, ScaleMax: a.ScaleMax, Base: a.Size, Flip: flip, Crop: a.Size, Fill: meanFill}
	if fusedInit {
		if err := calibrateFusedInit(run, 16); err != nil {
			return fmt.Errorf("--init %s: calibrating the backbone: %w", a.Init, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, func(p train.Progress) string {
		return fmt.Sprintf("loss %.4f  pixel acc %.2f%%", p.Loss, p.Acc)
	})
	run.OnStep = bar.step
	run.OnEpoch = func(r runlog.Row) {
		bar.finish()
		val := ""
		if run.Val != nil {
			val = fmt.Sprintf("  val mIoU %.2f%%  pixel acc %.2f%%", r.ValMIoU, r.ValPixelAcc)
		}
		fmt.Fprintf(stdout, "epoch %3d/%d  %6.1f min  lr %.4f  loss %.4f  pixel acc %.2f%%%s  %.1f img/s\n",
			r.Epoch, a.Hyper.Epochs, r.Seconds/60, r.LR, r.TrainLoss, r.TrainAcc, val, r.ImagesPerSec)
	}
	if !run.Finished() {
		if err := run.Execute(ctx); err != nil {
			if errors.Is(err, train.ErrInterrupted) {
				fmt.Fprintf(stdout, "\ninterrupted: saved %s; continue with: mobileone train --resume %s\n", filepath.Join(a.Out, train.CheckpointName), a.Out)
				return nil
			}
			return err
		}
	}
	return finishSegRun(run, stdout)
}

// openSegData opens the training split and, if the dataset has one, the
// validation split.
func openSegData(dir string) (trainDS, valDS *dense.Files, err error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("--data: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("--data %s is not a folder", dir)
	}
	if trainDS, err = dense.Open(dir, "train", dense.Options{}); err != nil {
		return nil, nil, err
	}
	if !hasSplit(dir, "val") {
		return trainDS, nil, nil
	}
	if valDS, err = dense.Open(dir, "val", dense.Options{}); err != nil {
		return nil, nil, err
	}
	if !slices.Equal(valDS.Classes(), trainDS.Classes()) {
		return nil, nil, fmt.Errorf("%s: the val split's classes (%s) differ from the train split's (%s)", dir, shortList(valDS.Classes()), shortList(trainDS.Classes()))
	}
	return trainDS, valDS, nil
}

// hasSplit reports whether dir has the split (VOC list or folder).
func hasSplit(dir, split string) bool {
	for _, p := range []string{filepath.Join(dir, "ImageSets", "Segmentation", split+".txt"), filepath.Join(dir, split, "images")} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// newSegTrainNet builds the net to train: the variant's (or custom)
// backbone with random weights, or the --init checkpoint's, and a new head.
// fusedInit reports a backbone loaded from fused weights, which
// calibrateFusedInit must then adapt to the data before training.
func newSegTrainNet(a *segTrainArgs, classes int, rates []int, set map[string]bool, stdout io.Writer) (net *train.SegNet, fusedInit bool, err error) {
	if a.Init != "" {
		for _, f := range []string{"k", "channels-override", "blocks"} {
			if set[f] {
				return nil, false, fmt.Errorf("--%s cannot be combined with --init: the checkpoint fixes the architecture", f)
			}
		}
		var m *mobileone.Model
		what := "--init " + a.Init
		if a.Init == "builtin" {
			if m, err = zoo.Default(); err != nil {
				return nil, false, err
			}
			what = "--init builtin (" + zoo.DefaultName + ")"
		} else if m, err = fusedClassifier(a.Init); err != nil {
			return nil, false, err
		}
		if m != nil {
			net, err := segNetFromFused(a, m, what, classes, rates, set, stdout)
			return net, true, err
		}
	}
	cfg, initSD, err := denseBackbone(denseBackboneArgs{Variant: a.Variant, Widths: a.Widths, Blocks: a.Blocks, K: a.K, Init: a.Init},
		set, "segmentation")
	if err != nil {
		return nil, false, err
	}
	net, err = segNetFor(cfg, a, classes, rates)
	if err != nil {
		return nil, false, err
	}
	if initSD != nil {
		if err := net.LoadBackbone(initSD); err != nil {
			return nil, false, fmt.Errorf("--init %s: %w", a.Init, err)
		}
	}
	return net, false, nil
}

// fusedClassifier loads path if it is a fused classification checkpoint
// (nil if it is a train-time one, which denseBackbone reads).
func fusedClassifier(path string) (*mobileone.Model, error) {
	sd, _, err := readStateDict(path)
	if err != nil {
		return nil, err
	}
	if _, ok := sd["backbone.stage0.reparam_conv.weight"]; ok {
		return nil, fmt.Errorf("--init %s is a fused segmentation model or detector; --init takes a classification checkpoint", path)
	}
	c, _, err := model.CanonicalKeys(sd)
	if err != nil {
		return nil, fmt.Errorf("--init %s: %w", path, err)
	}
	if _, fused, err := model.DetectConfig(c); err != nil {
		return nil, fmt.Errorf("--init %s: %w", path, err)
	} else if !fused {
		return nil, nil
	}
	m, err := mobileone.Load(path, mobileone.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("--init %s: %w", path, err)
	}
	return m, nil
}

// checkInitVariant refuses a -m that is not the --init checkpoint's
// architecture.
func checkInitVariant(a *segTrainArgs, cfg model.Config, what string, set map[string]bool) error {
	if !set["m"] {
		return nil
	}
	v, err := model.Variant(a.Variant)
	if err != nil {
		return err
	}
	if v.Channels != cfg.Channels || v.Blocks != cfg.Blocks || v.SEPairs != cfg.SEPairs {
		return fmt.Errorf("%s has widths %v, blocks %v and SE pairs %v, not those of -m %s (%v, %v, %v); -m is not needed with --init",
			what, cfg.Channels, cfg.Blocks, cfg.SEPairs, a.Variant, v.Channels, v.Blocks, v.SEPairs)
	}
	return nil
}

// segNetFromFused makes the net on a fused classifier's backbone
// (train.SegNet.LoadFusedBackbone): its architecture and k, RGB input (a
// grey model's stem is converted with train.GreyStemToRGB for ImageNet
// normalisation) and a stride-2 stem, as every segmentation backbone here.
func segNetFromFused(a *segTrainArgs, m *mobileone.Model, what string, classes int, rates []int, set map[string]bool, stdout io.Writer) (*train.SegNet, error) {
	cfg := m.Config
	if err := checkInitVariant(a, cfg, what, set); err != nil {
		return nil, err
	}
	_, fsd := m.StateDict()
	switch cfg.InChannels {
	case 3:
	case 1:
		pre := m.Preprocessing()
		w, err := train.GreyStemToRGB(fsd["stage0.reparam_conv.weight"], imageproc.ImageNetMean, imageproc.ImageNetStd, pre.Std[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		fsd["stage0.reparam_conv.weight"] = w
		fmt.Fprintf(stdout, "%s is a grey model: its stem now reads the RGB image's luma (ImageNet normalisation)\n", what)
	default:
		return nil, fmt.Errorf("%s takes %d input channels; want 1 (grey, converted) or 3", what, cfg.InChannels)
	}
	if cfg.StemStride != 2 {
		fmt.Fprintf(stdout, "%s has a stem of stride %d; the segmentation backbone's has stride 2: items reach stage 1 at half the size they have in the image (the built-in model saw 28 px items: train canvases at --size 256)\n",
			what, cfg.StemStride)
	}
	net, err := segNetFor(cfg, a, classes, rates)
	if err != nil {
		return nil, err
	}
	if err := net.LoadFusedBackbone(fsd); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return net, nil
}

// calibrateFusedInit adapts a backbone loaded from fused weights to
// training-mode BatchNorm (train.SegNet.CalibrateFusedBackbone) on the
// first training batch (as augmented in epoch 1).
func calibrateFusedInit(run *train.SegRun, n int) error {
	idx := make([]int, min(n, run.Train.Len()))
	for i := range idx {
		idx[i] = i
	}
	x, _, c, h, w, err := dense.Batch(run.Train, idx, dense.BatchOptions{Augment: run.Augment, Mean: run.Mean, Std: run.Std,
		Seed: run.Hyper.Seed ^ 0xca1, Workers: run.Hyper.Workers})
	if err != nil {
		return err
	}
	return run.Net.CalibrateFusedBackbone(&tensor.Tensor{Shape: []int{len(idx), c, h, w}, Data: x})
}

// segNetFor makes a SegNet on a backbone of cfg (random weights from the
// seed) for RGB images and a stride-2 stem.
func segNetFor(cfg model.Config, a *segTrainArgs, classes int, rates []int) (*train.SegNet, error) {
	cfg.NumClasses, cfg.InChannels, cfg.StemStride, cfg.ResizeShort = 0, 3, 2, 0
	bb, err := model.New(cfg, false)
	if err != nil {
		return nil, err
	}
	bb.InitRandom(a.Hyper.Seed)
	return train.NewSegNet(bb, train.SegOptions{NumClasses: classes, OutputStride: a.OutputStride, Rates: rates, Seed: a.Hyper.Seed})
}

// finishSegRun re-writes the fused model from the final weights and
// scores it with the inference graph, as "mobileone eval --task segment"
// does, next to the trainer's own score of the train-time net.
func finishSegRun(run *train.SegRun, stdout io.Writer) error {
	path := filepath.Join(run.Dir, train.SegModelName)
	if err := train.WriteSegModel(path, run.Net, run.Labels, run.Size); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (fused; segment with: mobileone segment -w %s IMAGE...)\n", path, path)
	if run.Val == nil {
		return nil
	}
	seg, err := loadSegmenter(path, segOptions{Size: run.Size})
	if err != nil {
		return err
	}
	cm, err := evalSegmenter(seg, run.Val, nil)
	if err != nil {
		return err
	}
	miou, pa := run.LastVal()
	fmt.Fprintf(stdout, "validation mIoU: train-time net %.2f%%, fused model %.2f%%; pixel accuracy %.2f%% / %.2f%% (%d images)\n",
		miou, 100*cm.MeanIoU(), pa, 100*cm.PixelAccuracy(), run.Val.Len())
	return nil
}
