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

	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/train"
)

const trainDetUsage = `usage: mobileone train --task detect --data DIR [-m s0..s4] [--init CKPT] [--size 320]
                       [--width 1] [--recipe ssdlite] [--epochs 60] [--batch 16] -o RUN/
       mobileone train --resume RUN/

Trains SSDLite as torchvision builds ssdlite320_mobilenet_v3_large, with a
train-time MobileOne as the backbone: feature maps from stage3 (stride 16) and
stage4 (stride 32), four extra blocks (1x1 conv, 3x3 depthwise stride 2, 1x1
conv, each with BatchNorm and ReLU6; widths 512, 256, 256, 128 times --width, at
least 16) to six maps, SSDLite's depthwise-separable classification and box
heads, 6 default boxes per location (aspect ratios 2 and 3, scales 0.2..0.95).
Loss as torchvision's SSD: every default box matched to the ground truth it
overlaps most if IoU >= 0.5 and every ground truth to its best box; smooth-L1 on
the box codes (weights 10, 10, 5, 5) of the matched boxes and cross-entropy with
hard negative mining (3 negatives per positive), both over the positives.

--data DIR is a detection data set: COCO's layout (annotations/instances_{train,
val}.json and the images; what "mobileone data canvases" writes) or Pascal
VOC's (Annotations/*.xml, ImageSets/Main/{train,val}.txt, JPEGImages/). The
val split, when there is one, is scored after every epoch. Crowd regions and
VOC's difficult objects are not training targets (they are ignored when
scoring); boxes of zero area are left out with a warning.

Augmentation (boxes move with the image), torchvision's detection reference
recipes: --recipe ssdlite (random IoU crop, horizontal flip), ssd (also
photometric distortion and zoom-out up to 4x with the mean colour) or none.
Every image is then resized to --size x --size, ignoring its aspect ratio
(torchvision's fixed-size transform), and normalised with ImageNet's mean/std.

Validation: each val image resized to --size x --size, post-processed as
torchvision does (softmax, per class the 300 best above 0.001, class-wise NMS
at IoU 0.55, 300 per image), boxes scaled back, COCO's AP and AP50 (as
"mobileone eval --task detect" computes them on the fused model).

Optimiser: SGD with momentum 0.9, weight decay 4e-5 (not on BatchNorm and
biases), learning rate 0.05 after a 1-epoch linear warm-up, cosine-decayed to
0. --init starts the backbone from a classification checkpoint (the authors'
unfused mobileone_sN_unfused.pth.tar or a run's model_unfused.pth.tar; its
classifier is dropped); without it the backbone starts from random weights.

The run folder gets checkpoint.safetensors (train-time weights, optimiser
state, position: --resume continues exactly, on the same data; Ctrl-C saves
and stops) and model.safetensors (the fused detector: the backbone's branches
re-parameterised, with its class names, size and width in the metadata; for
"mobileone detect" and "mobileone eval --task detect"), both written
atomically after every epoch, and log.csv and curves.png (train loss, val AP
and AP50 against time).`

// detTrainArgs are the detection trainer's arguments, stored in the
// checkpoint so that --resume needs nothing else.
type detTrainArgs struct {
	Task           string
	Data           string
	Variant        string
	Widths, Blocks string
	K              int
	Init           string
	Size           int
	Width          float64
	Recipe         string
	Hyper          train.Hyper
	Threads        int
	Out, Resume    string
}

// detHyper is the detection default recipe (see trainDetUsage).
func detHyper() train.Hyper {
	return train.Hyper{Epochs: 60, BatchSize: 16, LR: 0.05, WarmupEpochs: 1, Momentum: 0.9,
		WDStart: 4e-5, WDEnd: 4e-5, ConstantWD: true, Seed: 1, Workers: 2, LastBatch: train.LastBatchEven}
}

// detRecipe returns the augmentation recipe named.
func detRecipe(name string) (detect.Recipe, error) {
	switch name {
	case "ssdlite":
		return detect.SSDLiteRecipe(), nil
	case "ssd":
		return detect.SSDRecipe(meanFill), nil
	case "none":
		return detect.Recipe{}, nil
	}
	return detect.Recipe{}, fmt.Errorf("--recipe %q: want ssdlite, ssd or none", name)
}

func cmdTrainDetect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train --task detect", trainDetUsage, stderr)
	a := detTrainArgs{Task: "detect", Hyper: detHyper()}
	fs.StringVar(&a.Task, "task", "detect", "`detect` (classify, segment: see mobileone train -h)")
	fs.StringVar(&a.Data, "data", "", "detection data set `folder` (COCO or VOC layout)")
	fs.StringVar(&a.Variant, "m", "s0", "backbone variant `s0..s4`")
	fs.StringVar(&a.Widths, "channels-override", "", "custom widths `stem,c1,c2,c3,c4` instead of the variant's")
	fs.StringVar(&a.Blocks, "blocks", "", "custom block pairs per stage `b1,b2,b3,b4` instead of the variant's")
	fs.IntVar(&a.K, "k", 0, "conv branches at train time (0: the variant's)")
	fs.StringVar(&a.Init, "init", "", "initialise the backbone from this classification `checkpoint` (train-time, unfused)")
	fs.IntVar(&a.Size, "size", 320, "network input side `S`")
	fs.Float64Var(&a.Width, "width", 1, "width multiplier of the extra blocks")
	fs.StringVar(&a.Recipe, "recipe", "ssdlite", "augmentation: `ssdlite`, ssd or none")
	fs.IntVar(&a.Hyper.Epochs, "epochs", a.Hyper.Epochs, "epochs")
	fs.IntVar(&a.Hyper.BatchSize, "batch", a.Hyper.BatchSize, "batch size (at least 2)")
	fs.Float64Var(&a.Hyper.LR, "lr", a.Hyper.LR, "peak learning rate")
	fs.Float64Var(&a.Hyper.MinLR, "min-lr", a.Hyper.MinLR, "learning rate at the end of the cosine")
	fs.Float64Var(&a.Hyper.WarmupEpochs, "warmup", a.Hyper.WarmupEpochs, "linear warm-up `epochs`")
	fs.Float64Var(&a.Hyper.Momentum, "momentum", a.Hyper.Momentum, "SGD momentum")
	fs.BoolVar(&a.Hyper.Nesterov, "nesterov", false, "Nesterov momentum")
	fs.Float64Var(&a.Hyper.WDStart, "wd", a.Hyper.WDStart, "weight decay")
	fs.Uint64Var(&a.Hyper.Seed, "seed", a.Hyper.Seed, "seed of the initial weights, shuffling and augmentation")
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

	var run *train.SSDRun
	if a.Resume != "" {
		if err := resumeFlagsOnly(set); err != nil {
			return err
		}
		threads, dir := a.Threads, a.Resume
		if run, err = train.ResumeSSD(dir); err != nil {
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
			return errors.New("--task detect needs --data DIR: a detection data set (COCO or VOC layout)")
		}
	}
	recipe, err := detRecipe(a.Recipe)
	switch {
	case err != nil:
		return err
	case a.Size < 32 || a.Size > 2048:
		return fmt.Errorf("--size %d: want 32..2048", a.Size)
	case !(a.Width > 0) || a.Width > 8:
		return fmt.Errorf("--width %g: want 0 < width <= 8", a.Width)
	case a.Hyper.BatchSize < 2:
		return fmt.Errorf("--batch %d: want at least 2 (BatchNorm over the 1x1 maps needs two images)", a.Hyper.BatchSize)
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
	kernel.SetThreads(a.Threads)

	trainDS, valDS, err := detect.Open(a.Data)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	if trainDS == nil {
		return fmt.Errorf("--data %s has no train split", a.Data)
	}
	if valDS != nil && !slices.Equal(valDS.Classes, trainDS.Classes) {
		return fmt.Errorf("%s: the val split's classes (%s) differ from the train split's (%s)", a.Data, shortList(valDS.Classes), shortList(trainDS.Classes))
	}
	for _, ds := range []*detect.Dataset{trainDS, valDS} {
		if ds == nil {
			continue
		}
		if n := len(ds.Warnings); n > 0 {
			fmt.Fprintf(stderr, "mobileone train: %s split: %d annotations left out, e.g. %s\n", ds.Split, n, ds.Warnings[0])
		}
	}
	labels := trainDS.Classes
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
		cfg, initSD, err := denseBackbone(denseBackboneArgs{Variant: a.Variant, Widths: a.Widths, Blocks: a.Blocks, K: a.K, Init: a.Init},
			set, "detection")
		if err != nil {
			return err
		}
		net, err := ssdNetFor(cfg, &a, len(labels))
		if err != nil {
			return err
		}
		if initSD != nil {
			if err := net.LoadBackbone(initSD); err != nil {
				return fmt.Errorf("--init %s: %w", a.Init, err)
			}
		}
		argsJSON, _ := json.Marshal(a)
		run = &train.SSDRun{Dir: a.Out, Hyper: a.Hyper, Net: net, Labels: labels, Size: a.Size,
			Meta: map[string]string{"args": string(argsJSON), "train_images": strconv.Itoa(trainDS.Len())}}
		val := "none (no val split)"
		if valDS != nil {
			val = fmt.Sprintf("%d images", valDS.Len())
		}
		fmt.Fprintf(stdout, "training SSDLite on MobileOne (%s), extra width %g, on %s: %d images, %d classes with the background, %dx%d inputs, recipe %s; validation: %s\n",
			net.Backbone.Model().Config.Describe(), a.Width, a.Data, trainDS.Len(), len(labels), a.Size, a.Size, a.Recipe, val)
		params := 0
		for _, p := range net.Params() {
			params += p.W.Numel()
		}
		fmt.Fprintf(stdout, "%s train-time parameters, %d epochs of %d images in batches of up to %d, %d threads\n",
			commas(int64(params)), a.Hyper.Epochs, trainDS.Len(), a.Hyper.BatchSize, a.Threads)
	}
	run.Train, run.Val = trainDS, valDS
	run.Mean, run.Std, run.Recipe = imageproc.ImageNetMean, imageproc.ImageNetStd, recipe

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, func(p train.Progress) string { return fmt.Sprintf("loss %.4f", p.Loss) })
	run.OnStep = bar.step
	run.OnEpoch = func(r runlog.Row) {
		bar.finish()
		val := ""
		if run.Val != nil {
			val = fmt.Sprintf("  val AP %.2f%%  AP50 %.2f%%", r.ValAP, r.ValAP50)
		}
		fmt.Fprintf(stdout, "epoch %3d/%d  %6.1f min  lr %.4f  loss %.4f%s  %.1f img/s\n",
			r.Epoch, a.Hyper.Epochs, r.Seconds/60, r.LR, r.TrainLoss, val, r.ImagesPerSec)
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
	return finishDetRun(run, stdout)
}

// ssdNetFor makes an SSDNet on a backbone of cfg (random weights from the
// seed) for RGB images and a stride-2 stem.
func ssdNetFor(cfg model.Config, a *detTrainArgs, classes int) (*train.SSDNet, error) {
	cfg.NumClasses, cfg.InChannels, cfg.StemStride, cfg.ResizeShort = 0, 3, 2, 0
	bb, err := model.New(cfg, false)
	if err != nil {
		return nil, err
	}
	bb.InitRandom(a.Hyper.Seed)
	return train.NewSSDNet(bb, train.SSDOptions{NumClasses: classes, Width: a.Width, Seed: a.Hyper.Seed})
}

// finishDetRun re-writes the fused detector from the final weights and
// scores it with the inference graph, as "mobileone eval --task detect"
// does, next to the trainer's own score of the train-time net.
func finishDetRun(run *train.SSDRun, stdout io.Writer) error {
	path := filepath.Join(run.Dir, train.SSDModelName)
	if err := train.WriteSSDModel(path, run.Net, run.Labels, run.Size); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (fused; detect with: mobileone detect -w %s IMAGE...)\n", path, path)
	if run.Val == nil {
		return nil
	}
	det, err := loadDetector(path, run.Size, "")
	if err != nil {
		return err
	}
	_, rep, err := evalDetector(det, run.Val)
	if err != nil {
		return err
	}
	ap, ap50 := run.LastVal()
	fmt.Fprintf(stdout, "validation AP: train-time net %.2f%%, fused detector %.2f%%; AP50 %.2f%% / %.2f%% (%d images)\n",
		ap, 100*max(rep.AP, 0), ap50, 100*max(rep.AP50, 0), run.Val.Len())
	return nil
}
